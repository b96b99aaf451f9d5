"""One end-to-end test per feature, through the running local stack: real HTTP to the API, real awscli to S3.

Each test owns its symbols (the ``symbol`` fixture), so the tests can share one stack in any order.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from localrun.control import LocalStack, unique_symbol, wait_for

pytestmark = pytest.mark.e2e

BARS_TIMEOUT_S = 30


def wait_bars(stack: LocalStack, symbol: str, interval: str = "1m", count: int = 1,
              timeout: float = BARS_TIMEOUT_S, volume: str | None = None) -> list[dict[str, Any]]:
    """Poll GET /bars until ``count`` bars are there (and, if given, their volumes sum to ``volume``)."""
    def ready() -> list[dict[str, Any]] | None:
        bars = stack.bars(symbol, interval)
        if len(bars) != count:
            return None
        if volume is not None and sum(Decimal(b["volume"]) for b in bars) != Decimal(volume):
            return None
        return bars

    return wait_for(ready, timeout, f"{count} {interval} bar(s) of {symbol}")


def ohlcv(bar: dict[str, Any]) -> tuple[str, Decimal, Decimal, Decimal, Decimal, Decimal, int]:
    return (bar["start"], Decimal(bar["open"]), Decimal(bar["high"]), Decimal(bar["low"]), Decimal(bar["close"]),
            Decimal(bar["volume"]), bar["trades"])


def barrier(stack: LocalStack) -> None:
    """Post a tick of a fresh symbol and wait for its bar: whatever was queued before has been delivered."""
    sentinel = unique_symbol("BARRIER")
    resp = stack.post_ingest({"symbol": sentinel, "price": "1", "volume": "1", "timestamp": "2024-01-01T00:00:00Z"})
    assert resp.status == 202, resp.body
    stack.wait_processed(resp.json()["ingestion_id"])
    wait_bars(stack, sentinel)


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------------------------------------- REST


def test_post_one_json_tick_returns_202_with_status_url(stack: LocalStack, symbol: str) -> None:
    resp = stack.post_ingest({"symbol": symbol, "price": "101.25", "volume": "3", "timestamp": "2024-03-01T10:00:05Z"})

    assert resp.status == 202, resp.body
    body = resp.json()
    assert body["ingestion_id"].startswith("api-")
    assert body["accepted"] == 1
    assert body["status_url"] == f"{stack.api_url}/ingestions/{body['ingestion_id']}"


def test_ingestion_status_follows_the_ingestion_to_processed(stack: LocalStack, symbol: str) -> None:
    ticks = [{"symbol": symbol, "price": "10", "volume": "1", "timestamp": f"2024-03-01T10:00:0{i}Z"} for i in range(3)]
    posted = stack.post_ingest(ticks).json()

    first = stack.request("GET", posted["status_url"])
    assert first.status == 200, first.body
    doc = first.json()
    assert doc["ingestion_id"] == posted["ingestion_id"]
    assert doc["source"] == "api"
    assert doc["accepted"] == 3 and doc["rejected"] == 0
    assert doc["status"] in ("queued", "processing", "processed")

    final = stack.wait_processed(posted["ingestion_id"])
    assert final["status"] == "processed"
    assert final["chunks"]["processed"] == final["chunks"]["total"] >= 1
    assert final["errors"] == []
    assert "completed_at" in final


def test_posted_ticks_become_bars_within_seconds(stack: LocalStack, symbol: str) -> None:
    ticks = [
        {"symbol": symbol, "price": "100.5", "volume": "2", "timestamp": "2024-03-01T10:00:01Z", "trade_id": "1"},
        {"symbol": symbol, "price": "101", "volume": "1", "timestamp": "2024-03-01T10:00:30Z", "trade_id": "2"},
        {"symbol": symbol, "price": "99.75", "volume": "3", "timestamp": "2024-03-01T10:00:59.999Z", "trade_id": "3"},
        {"symbol": symbol, "price": "100", "volume": "0.5", "timestamp": "2024-03-01T10:03:10Z", "trade_id": "4"},
    ]
    started = time.monotonic()
    assert stack.post_ingest(ticks).status == 202

    minute_bars = wait_bars(stack, symbol, "1m", count=2)
    elapsed = time.monotonic() - started

    assert elapsed < 15, f"bars took {elapsed:.1f}s"
    assert [ohlcv(b) for b in minute_bars] == [
        ("2024-03-01T10:00:00Z", Decimal("100.5"), Decimal("101"), Decimal("99.75"), Decimal("99.75"), Decimal("6"), 3),
        ("2024-03-01T10:03:00Z", Decimal("100"), Decimal("100"), Decimal("100"), Decimal("100"), Decimal("0.5"), 1),
    ]
    assert Decimal(minute_bars[0]["vwap"]) == (Decimal("201") + Decimal("101") + Decimal("299.25")) / 6
    assert isinstance(minute_bars[0]["open"], str)  # decimals travel as strings
    five = wait_bars(stack, symbol, "5m", count=1, volume="6.5")
    assert ohlcv(five[0]) == ("2024-03-01T10:00:00Z", Decimal("100.5"), Decimal("101"), Decimal("99.75"),
                              Decimal("100"), Decimal("6.5"), 4)
    day = wait_bars(stack, symbol, "1d", count=1, volume="6.5")
    assert day[0]["start"] == "2024-03-01T00:00:00Z"
    assert symbol in stack.symbols()


def test_ndjson_and_csv_bodies_are_accepted(stack: LocalStack, symbol: str) -> None:
    ndjson = "\n".join(json.dumps({"symbol": symbol, "price": p, "volume": "1", "timestamp": f"2024-03-01T11:00:0{i}Z"})
                       for i, p in enumerate(["5", "7"])) + "\n"
    csv_body = f"timestamp,symbol,price,volume\n2024-03-01T11:00:05Z,{symbol},6,2\n"

    assert stack.post_ingest(ndjson, "application/x-ndjson").status == 202
    assert stack.post_ingest(csv_body, "text/csv; charset=utf-8").status == 202

    bar = wait_bars(stack, symbol, volume="4")[0]
    assert ohlcv(bar) == ("2024-03-01T11:00:00Z", Decimal("5"), Decimal("7"), Decimal("5"), Decimal("6"),
                          Decimal("4"), 3)


def test_invalid_body_is_rejected_whole_with_the_errors(stack: LocalStack, symbol: str) -> None:
    body = [
        {"symbol": symbol, "price": "10", "volume": "1"},  # valid, but must not be ingested alone
        {"symbol": symbol, "price": "abc", "volume": "1"},
        {"symbol": symbol, "price": "10", "volume": "1", "colour": "red"},
    ]
    resp = stack.post_ingest(body)

    assert resp.status == 400, resp.body
    doc = resp.json()
    assert doc["error"] == "InvalidTicks"
    assert doc["error_count"] == 1  # "colour" is not a field: ignored, as in files
    assert {(e["location"], e["field"]) for e in doc["errors"]} == {("record 2", "price")}
    assert all(e["reason"] for e in doc["errors"])
    assert "ingestion_id" not in doc

    broken = stack.post_ingest('{"symbol": "' + symbol + '", "price": ', "application/json")
    assert broken.status == 400 and broken.json()["errors"], broken.body

    barrier(stack)
    assert symbol not in stack.symbols()
    assert stack.bars(symbol) == []


def test_unsupported_content_type_is_415(stack: LocalStack, symbol: str) -> None:
    for content_type in ("text/plain", "application/xml"):
        resp = stack.post_ingest(f"{symbol},10,1", content_type)
        assert resp.status == 415, (content_type, resp.status, resp.body)
    assert symbol not in stack.symbols()


def test_idempotency_key_replay_returns_the_same_ingestion(stack: LocalStack, symbol: str) -> None:
    body = [{"symbol": symbol, "price": "20", "volume": "5", "timestamp": "2024-03-01T12:00:00Z"},
            {"symbol": symbol, "price": "21", "volume": "7", "timestamp": "2024-03-01T12:00:30Z"}]
    key = f"e2e-{uuid.uuid4()}"

    first = stack.post_ingest(body, idempotency_key=key)
    assert first.status == 202, first.body
    stack.wait_processed(first.json()["ingestion_id"])
    wait_bars(stack, symbol, volume="12")
    replay = stack.post_ingest(body, idempotency_key=key)
    conflict = stack.post_ingest(body[:1], idempotency_key=key)

    assert replay.status == 202, replay.body
    assert replay.json()["ingestion_id"] == first.json()["ingestion_id"]
    assert replay.json().get("replayed") is True
    assert conflict.status == 409, conflict.body
    barrier(stack)
    bars = stack.bars(symbol)
    assert [(b["volume"], b["trades"]) for b in bars] == [("12", 2)]


def test_query_errors_are_400_and_unknown_ingestion_is_404(stack: LocalStack, symbol: str) -> None:
    assert stack.get("/bars", symbol=symbol, interval="7m").status == 400
    assert stack.get("/bars", interval="1m").status == 400
    assert stack.get("/bars", symbol=symbol, start="yesterday").status == 400
    missing = stack.ingestion("api-does-not-exist")
    assert missing.status == 404 and missing.json()["error"] == "NotFound"


# ---------------------------------------------------------------------------------------------- S3


def test_csv_upload_via_s3_becomes_bars(stack: LocalStack, symbol: str, tmp_path: Path) -> None:
    # Header aliases: ts / px / size / ticker.
    csv_text = (
        "ts,ticker,px,size,side\n"
        f"2024-03-02T09:30:00.100Z,{symbol},50.10,100,buy\n"
        f"2024-03-02T09:30:20Z,{symbol},50.30,50,sell\n"
        f"2024-03-02T09:30:40Z,{symbol},49.90,25,buy\n"
        f"2024-03-02T09:31:00Z,{symbol},50.00,10,buy\n"
    )
    key = f"incoming/{symbol}/trades.csv"
    stack.s3_cp(write(tmp_path, "trades.csv", csv_text), key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))
    bars = wait_bars(stack, symbol, count=2)

    assert status["source"] == "s3" and status["status"] == "processed"
    assert status["accepted"] == 4 and status["rejected"] == 0
    assert status["object"]["key"] == key
    assert [ohlcv(b) for b in bars] == [
        ("2024-03-02T09:30:00Z", Decimal("50.10"), Decimal("50.30"), Decimal("49.90"), Decimal("49.90"),
         Decimal("175"), 3),
        ("2024-03-02T09:31:00Z", Decimal("50.00"), Decimal("50.00"), Decimal("50.00"), Decimal("50.00"),
         Decimal("10"), 1),
    ]


def test_gzip_upload_via_s3_becomes_bars(stack: LocalStack, symbol: str, tmp_path: Path) -> None:
    start_ms = 1709373600000  # 2024-03-02T10:00:00Z
    lines = [json.dumps({"symbol": symbol, "price": str(100 + i), "amount": "1", "timestamp_ms": start_ms + i * 1000})
             for i in range(30)]
    key = f"incoming/{symbol}/trades.ndjson.gz"
    stack.s3_cp(write(tmp_path, "trades.ndjson.gz", gzip.compress(("\n".join(lines) + "\n").encode())), key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))
    bar = wait_bars(stack, symbol, volume="30")[0]

    assert status["status"] == "processed" and status["accepted"] == 30
    assert ohlcv(bar) == ("2024-03-02T10:00:00Z", Decimal("100"), Decimal("129"), Decimal("100"), Decimal("129"),
                          Decimal("30"), 30)


def test_object_metadata_gives_the_symbol_of_a_file_without_one(stack: LocalStack, symbol: str,
                                                                tmp_path: Path) -> None:
    key = f"incoming/{symbol}/no-symbol-column.csv"
    stack.s3_cp(write(tmp_path, "t.csv", "timestamp,price,volume\n2024-03-02T10:00:01Z,3.5,2\n"), key,
                metadata={"symbol": symbol})

    stack.wait_processed(stack.s3_ingestion_id(key))
    bar = wait_bars(stack, symbol)[0]

    assert (bar["open"], bar["volume"]) == ("3.5", "2")


def test_file_with_bad_rows_ingests_the_good_rows_and_reports_the_bad(stack: LocalStack, symbol: str,
                                                                      tmp_path: Path) -> None:
    csv_text = (
        "timestamp,symbol,price,volume\n"           # line 1
        f"2024-03-02T12:00:01Z,{symbol},10,1\n"     # line 2
        f"2024-03-02T12:00:02Z,{symbol},abc,1\n"    # line 3: price is not a number
        f"2024-03-02T12:00:03Z,{symbol},12,2\n"     # line 4
        f"2024-03-02T12:00:04Z,{symbol},11,-5\n"    # line 5: negative volume
        f"2024-03-02T12:00:05Z,{symbol}\n"          # line 6: too few columns
        f"2024-03-02T12:00:06Z,{symbol},9,3\n"      # line 7
        f"not-a-time,{symbol},10,1\n"               # line 8: bad timestamp
    )
    key = f"incoming/{symbol}/with-bad-rows.csv"
    stack.s3_cp(write(tmp_path, "bad.csv", csv_text), key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))
    bar = wait_bars(stack, symbol, volume="6")[0]

    assert status["status"] == "processed"
    assert status["accepted"] == 3 and status["rejected"] == 4
    assert {(e["location"], e["field"]) for e in status["errors"]} == {
        ("line 3", "price"), ("line 5", "volume"), ("line 6", "-"), ("line 8", "timestamp")}
    assert ohlcv(bar) == ("2024-03-02T12:00:00Z", Decimal("10"), Decimal("12"), Decimal("9"), Decimal("9"),
                          Decimal("6"), 3)


def test_unreadable_file_is_rejected_with_a_reason(stack: LocalStack, symbol: str, tmp_path: Path) -> None:
    key = f"incoming/{symbol}/no-price.csv"
    stack.s3_cp(write(tmp_path, "x.csv", f"timestamp,symbol,qty\n2024-03-02T12:00:01Z,{symbol},1\n"), key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))

    assert status["status"] == "rejected"
    assert "price" in status["errors"][0]["reason"]
    assert symbol not in stack.symbols()


@pytest.mark.parametrize("bad", ["\u00b2", "1_000", "\u0661\u0662\u0663", "\uff11\uff12"])
def test_one_odd_character_never_sinks_the_good_rows_of_its_chunk(stack: LocalStack, symbol: str, tmp_path: Path,
                                                                  bad: str) -> None:
    """1,000 good rows and one whose price Python would call a digit: the 1,000 become bars."""
    rows = [f"{symbol},100.5,1,2024-03-08T10:{i // 60:02d}:{i % 60:02d}Z" for i in range(1000)]
    rows.insert(500, f"{symbol},{bad},1,2024-03-08T10:00:00Z")  # file line 502
    key = f"incoming/{symbol}/odd.csv"
    stack.s3_cp(write(tmp_path, "odd.csv", "symbol,price,volume,timestamp\n" + "\n".join(rows) + "\n"), key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))

    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 1000, 1)
    assert [(e["location"], e["field"]) for e in status["errors"]] == [("line 502", "price")]
    bars = wait_bars(stack, symbol, count=17, volume="1000")
    assert sum(b["trades"] for b in bars) == 1000
    # The same row in a request body is a 400 naming it, never a 500.
    resp = stack.post_ingest(f"symbol,price,volume\n{symbol},{bad},1\n".encode(), content_type="text/csv")
    assert resp.status == 400, resp.body
    assert resp.json()["errors"][0]["location"] == "line 2"


def test_a_decompression_bomb_is_refused_and_its_status_says_why(stack: LocalStack, symbol: str,
                                                                 tmp_path: Path) -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    path = tmp_path / "bomb.csv.gz"
    with path.open("wb") as out:
        for _ in range(256):  # 256 MiB of spaces and no newline, from about 250 KB
            out.write(deflate.compress(b" " * (1 << 20)))
        out.write(deflate.flush())
    key = f"incoming/{symbol}/bomb.csv.gz"
    stack.s3_cp(path, key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))

    assert status["status"] == "rejected"
    assert "decompression bomb" in status["errors"][0]["reason"]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "error"), [
    ("GET", "/no/such/route", None, {}, 404, "NotFound"),
    ("DELETE", "/bars", None, {}, 405, "MethodNotAllowed"),
    ("PUT", "/ingest", b"{}", {"Content-Type": "application/json"}, 405, "MethodNotAllowed"),
    ("POST", "/ingest", b"x", {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType"),
    ("GET", "/ingestions/s3-nope", None, {}, 404, "NotFound"),
    ("GET", "/bars?symbol=A&colour=red", None, {}, 400, "InvalidQuery"),
])
def test_every_error_of_the_local_stack_has_the_one_shape(stack: LocalStack, method: str, path: str,
                                                          body: bytes | None, headers: dict[str, str],
                                                          status: int, error: str) -> None:
    resp = stack.request(method, path, body, headers)
    assert resp.status == status, resp.body
    doc = resp.json()
    assert set(doc) >= {"error", "message", "request_id"} and doc["error"] == error, doc
    assert doc["message"] and doc["request_id"], doc
