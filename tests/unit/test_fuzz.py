"""Property-based fuzzing of every parser, on the services with in-memory fakes.

- Any request body, of any content type, is answered: 202 with exactly the ticks it queued, or an InputError
  (a 4xx) that queues nothing. Never another exception.
- A file made of good rows with arbitrary lines inserted anywhere gives exactly the good rows (and those
  inserted lines that are valid rows on their own) as ticks and bars, and every other non-blank line as a
  reject located at its line, whatever the chunking, compression and line ends.
- The field parsers raise only their own errors, for any value.

``FUZZ_EXAMPLES`` scales the examples per property (default 200; `FUZZ_EXAMPLES=5000 make test ARGS=-k fuzz`
for a long run). The examples that found bugs are kept as @example cases.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from chalicelib.bootstrap import UseCases, wire
from chalicelib.domain.bars import bars_from_ticks
from chalicelib.domain.columns import ColumnMap
from chalicelib.domain.csv_rows import parse_csv_lines
from chalicelib.domain.errors import InputError
from chalicelib.domain.files import BINARY_SIGNATURES
from chalicelib.domain.formats import ParseContext, long_line_error, parse_ndjson_lines
from chalicelib.domain.media import MEDIA_TYPES
from chalicelib.domain.ticks import FieldError, parse_decimal, parse_symbol, parse_token, tick_from_record
from chalicelib.domain.timefmt import TimestampError, parse_timestamp
from chalicelib.entrypoints.api import http_error
from chalicelib.schemas import ColumnsMessage, decode_message
from chalicelib.settings import Settings
from tests.fakes import MemoryDeadLetterQueue, MemoryEvents, MemoryObjects, MemoryQueue, MemoryStateStore

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
RECEIVED_NS = 1_719_900_000 * 1_000_000_000  # 2024-07-02T06:00:00Z
BUCKET = "market-data-bucket-dev"
HEADER = "symbol,price,volume,timestamp"

# Characters that Python's own parsers treat as digits, spaces or signs, and the usual syntax of numbers,
# times and records: the material bugs are made of.
TRICKY = ["\u00b2", "\u2460", "\u0661", "\u0662", "\uff11", "\uff12", "\u00a0", "\u2003", "\u200b", "\ufeff", "_",
          "\x00", "\r", "\t", " ", ",", '"', "'", ".", "-", "+", "e", "E", "T", "t", "Z", "z", ":", "/", "{", "}",
          "[", "]", "NaN", "Infinity", "inf", "1e999999999", "9" * 25, "0", "1", "7", "2024-07-01", "10:00:00"]
tricky_text = st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=3)), max_size=12).map("".join)
any_text = st.one_of(st.text(max_size=60), tricky_text)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text,
                    st.decimals(allow_nan=False).map(str))


def make_pipeline(**overrides: Any) -> tuple[UseCases, MemoryQueue, MemoryObjects, MemoryStateStore]:
    store, queue, objects = MemoryStateStore(), MemoryQueue(), MemoryObjects(block_size=97)
    pipeline = wire(store, queue, MemoryEvents(), objects, Settings(**{"max_errors": 100_000, **overrides}),
                    clock=lambda: RECEIVED_NS, dead_letters=MemoryDeadLetterQueue())
    return pipeline, queue, objects, store


# ------------------------------------------------------------------------------------------ field parsers
@FUZZ
@given(raw=st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(any_text, scalars, max_size=2)))
@example(raw="\u00b2")
@example(raw="1_000")
@example(raw="1e99999999999999999999")
@example(raw="2024-03-08T1\u00b2:00:00Z")
def test_field_parsers_raise_only_their_own_errors(raw: Any) -> None:
    for allow_zero in (True, False):
        try:
            value = parse_decimal("price", raw, allow_zero=allow_zero)
        except FieldError:
            pass
        else:
            assert value.is_finite() and value >= 0 and value == Decimal(str(value))
            assert str(value).isascii()
    for parse in (parse_symbol, lambda r: parse_token("trade_id", r)):
        with contextlib.suppress(FieldError):
            parse(raw)
    for unit in (None, "ms"):
        with contextlib.suppress(TimestampError):
            assert isinstance(parse_timestamp(raw, unit), int)


@FUZZ
@given(record=st.dictionaries(st.sampled_from(["symbol", "price", "volume", "timestamp", "trade_id", "side",
                                               "exchange", "venue"]), scalars, max_size=8))
def test_one_record_is_a_tick_or_located_rejects(record: dict[str, Any]) -> None:
    tick, errors = tick_from_record(record, location="record 7", seq=7, received_ns=RECEIVED_NS)
    assert (tick is None) == bool(errors)
    assert all(e.location == "record 7" and e.reason for e in errors)


# ------------------------------------------------------------------------------------------ request bodies
def _json_value() -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(any_text, inner, max_size=4)), max_leaves=12)


tick_like = st.fixed_dictionaries({"symbol": st.one_of(st.sampled_from(["AAPL", "BTC/USDT"]), any_text),
                                   "price": scalars, "volume": scalars},
                                  optional={"timestamp": scalars, "trade_id": scalars, "side": scalars,
                                            "venue": scalars})


def _bodies() -> st.SearchStrategy[bytes]:
    json_docs = st.one_of(_json_value(), tick_like, st.lists(tick_like, max_size=5)).map(
        lambda v: json.dumps(v, default=str).encode())
    ndjson = st.lists(st.one_of(tick_like.map(json.dumps), any_text), max_size=6).map(
        lambda rows: "\n".join(rows).encode())
    csv = st.lists(st.lists(any_text, max_size=5).map(",".join), max_size=6).map(
        lambda rows: (HEADER + "\n" + "\n".join(rows)).encode())
    return st.one_of(st.binary(max_size=300), any_text.map(str.encode), json_docs, ndjson, csv)


@FUZZ
@given(body=_bodies(), content_type=st.sampled_from([*MEDIA_TYPES, "text/csv; charset=utf-8", None, "text/plain"]),
       key=st.one_of(st.none(), any_text))
@example(body=b'{"symbol":"X","price":"\xc2\xb2","volume":1}', content_type="application/json", key=None)
@example(body=b"symbol,price,volume\nX,\xc2\xb2,1\n", content_type="text/csv", key=None)
@example(body=b'{"symbol":"X","price":1,"volume":1,"timestamp":"2024-03-08T1\xc2\xb2:00:00Z"}',
         content_type="application/json", key=None)
@example(body=b'{"symbol":"X","price":1e99999999999999999999,"volume":1}', content_type="application/json", key=None)
def test_any_body_is_answered_with_its_ticks_queued_or_an_input_error(
    body: bytes, content_type: str | None, key: str | None
) -> None:
    pipeline, queue, _, store = make_pipeline()
    try:
        response = pipeline.ingest_body(body, content_type, key)
    except InputError as exc:
        assert 400 <= http_error(exc)[0] < 500 and exc.message
        assert queue.messages == [] and store.ingestions == {}
        return
    queued = [decode_message(m) for m in queue.messages]
    assert response["accepted"] == sum(len(m.t) for m in queued if isinstance(m, ColumnsMessage)) > 0


# ------------------------------------------------------------------------------------------ files
good_rows = st.lists(st.tuples(st.sampled_from(["ESU4", "BTC/USDT"]), st.integers(1, 10**6), st.integers(0, 50),
                               st.integers(0, 7200)), min_size=1, max_size=25)
inserted_lines = st.lists(st.tuples(st.integers(0, 30), st.one_of(any_text, st.binary(max_size=40))), max_size=12)


def _good_line(fmt: str, row: tuple[str, int, int, int]) -> bytes:
    symbol, price, volume, second = row
    ts = RECEIVED_NS // 1_000_000_000 - 86_400 + second
    if fmt == "csv":
        return f"{symbol},{price / 100},{volume},{ts}".encode()
    return json.dumps({"symbol": symbol, "price": str(price / 100), "volume": volume, "timestamp": ts}).encode()


def _expected(fmt: str, lines: list[bytes], eol: bytes, limit: int) -> tuple[list[Any], list[str]]:
    """What each line alone gives (ticks, and the locations of rejects): the file must give the union."""
    ticks, rejects = [], []
    ctx = ParseContext(received_ns=RECEIVED_NS, max_errors=100_000)
    column_map = ColumnMap.from_header(HEADER.split(","))
    first = 2 if fmt == "csv" else 1
    for offset, raw in enumerate(lines):
        number = first + offset
        content = raw + eol[:-1]  # the bytes before its "\n"; a CRLF's CR is the line's end, not its text
        if len(content[:-1] if content.endswith(b"\r") else content) > limit:
            rejects.append(long_line_error(f"line {number}", limit).location)
            continue
        text = (raw + eol).decode("utf-8", "replace")[:-1]
        text = text[:-1] if text.endswith("\r") else text
        if fmt == "csv":
            result = parse_csv_lines([text], number, column_map, ctx)
        else:
            result = parse_ndjson_lines([text], number, ctx)
        ticks += result.ticks
        rejects += sorted({e.location for e in result.errors})
    return ticks, rejects


def _bars(store: MemoryStateStore) -> dict[tuple[str, int], tuple[Any, ...]]:
    return {(k[0], k[2]): (b.open, b.high, b.low, b.close, b.volume, b.trades, b.open_key, b.close_key)
            for k, (b, _, _) in store.bars.items() if k[1] == "1m"}


@FUZZ
@given(fmt=st.sampled_from(["csv", "ndjson"]), rows=good_rows, inserted=inserted_lines,
       eol=st.sampled_from([b"\n", b"\r\n"]), gz=st.booleans(), chunk_bytes=st.integers(40, 3000),
       limit=st.sampled_from([120, 1 << 20]))
@example(fmt="csv", rows=[("ESU4", 100, 1, 0)] * 3, inserted=[(1, "ESU4,\u00b2,1,1719800000")], eol=b"\n", gz=False,
         chunk_bytes=60, limit=1 << 20)
@example(fmt="ndjson", rows=[("ESU4", 100, 1, 0)] * 3,
         inserted=[(2, '{"symbol":"ESU4","price":1,"volume":1,"timestamp":"2024-07-01T1\u00b2:00:00Z"}')],
         eol=b"\n", gz=True, chunk_bytes=60, limit=1 << 20)
@example(fmt="ndjson", rows=[("ESU4", 100, 1, 0)], inserted=[(0, "\x00\x01junk")], eol=b"\n", gz=False,
         chunk_bytes=60, limit=1 << 20)
@example(fmt="csv", rows=[("ESU4", 100, 1, 0)], inserted=[(0, "x" * 500)], eol=b"\r\n", gz=False, chunk_bytes=40,
         limit=120)
def test_good_rows_survive_any_lines_inserted_among_them(
    fmt: str, rows: list[tuple[str, int, int, int]], inserted: list[tuple[int, str | bytes]], eol: bytes, gz: bool,
    chunk_bytes: int, limit: int,
) -> None:
    lines = [_good_line(fmt, row) for row in rows]
    for position, junk in inserted:
        raw = junk.encode() if isinstance(junk, str) else junk
        lines[min(position, len(lines)):min(position, len(lines))] = raw.split(b"\n")
    body = b"".join(line + eol for line in lines)
    if fmt == "csv":
        body = HEADER.encode() + eol + body
    elif body.lstrip(b"\xef\xbb\xbf \t\r\n\x0b\x0c").startswith(tuple(s for s, _ in BINARY_SIGNATURES)):
        assume(False)  # a file that begins like a PNG or a ZIP is refused as such, whatever follows
    pipeline, queue, objects, store = make_pipeline(chunk_bytes=chunk_bytes, inline_chunk_bytes=chunk_bytes,
                                                    max_line_bytes=limit)
    key = f"incoming/fuzz.{fmt}" + (".gz" if gz else "")
    version = objects.put(BUCKET, key, gzip.compress(body) if gz else body)
    result = pipeline.ingest_object(BUCKET, key, version)
    assert result["status"] == "queued", result
    outcome = pipeline.process_batch(queue.receive_all())
    assert outcome.failed_message_ids == []
    pipeline.aggregate()

    ticks, rejects = _expected(fmt, lines, eol, limit)
    status = pipeline.ingestion_status(result["ingestion_id"])
    assert status["status"] == "processed"
    assert status["accepted"] == len(ticks) and status["rejected"] == len(rejects)
    assert sorted({e["location"] for e in status["errors"]}, key=_line_number) == rejects
    rank = f"{RECEIVED_NS:020d}:{result['ingestion_id']}"
    reference = {(b.symbol, b.start_ns): (b.open, b.high, b.low, b.close, b.volume, b.trades, b.open_key, b.close_key)
                 for b in bars_from_ticks(ticks, "1m", rank)}
    assert _bars(store) == reference


def _line_number(location: str) -> int:
    return int(location.split()[1])


@FUZZ
@given(rows=good_rows, inserted=st.lists(st.tuples(st.integers(0, 30), _json_value()), max_size=8))
def test_good_records_of_a_json_array_file_survive_any_values_among_them(
    rows: list[tuple[str, int, int, int]], inserted: list[tuple[int, Any]]
) -> None:
    records: list[Any] = [json.loads(_good_line("json", row)) for row in rows]
    for position, value in inserted:
        records.insert(min(position, len(records)), value)
    pipeline, queue, objects, _ = make_pipeline()
    version = objects.put(BUCKET, "incoming/fuzz.json", json.dumps(records, default=str).encode())
    result = pipeline.ingest_object(BUCKET, "incoming/fuzz.json", version)
    assert pipeline.process_batch(queue.receive_all()).failed_message_ids == []
    status = pipeline.ingestion_status(result["ingestion_id"])
    assert status["status"] == "processed"
    assert status["accepted"] + status["rejected"] == len(records)
    assert status["accepted"] >= len(rows)


@FUZZ
@given(data=st.one_of(st.binary(max_size=600), _bodies(), st.lists(any_text, max_size=8).map(
           lambda lines: "\n".join(lines).encode())),
       suffix=st.sampled_from([".csv", ".ndjson", ".json", ".jsonl", ".txt", ".csv.gz", ".ndjson.gz", ".json.gz"]),
       gz_data=st.booleans(), symbol=st.one_of(st.none(), any_text), chunk_bytes=st.integers(16, 2000))
@example(data=b"\n" * 50 + b"symbol,price,volume\nA,1,1\n", suffix=".csv", gz_data=False, symbol=None,
         chunk_bytes=16)
@example(data=b"price,volume\n1,1\n", suffix=".csv", gz_data=False, symbol="\u00b2", chunk_bytes=16)
def test_any_object_ends_processed_or_rejected_and_never_fails_a_message(
    data: bytes, suffix: str, gz_data: bool, symbol: str | None, chunk_bytes: int
) -> None:
    pipeline, queue, objects, _ = make_pipeline(chunk_bytes=chunk_bytes, inline_chunk_bytes=chunk_bytes)
    body = gzip.compress(data) if gz_data or (suffix.endswith(".gz") and len(data) % 2) else data
    key = "incoming/any" + suffix
    version = objects.put(BUCKET, key, body, metadata={"symbol": symbol} if symbol is not None else None)
    result = pipeline.ingest_object(BUCKET, key, version)
    assert result["status"] in ("queued", "rejected"), result
    outcome = pipeline.process_batch(queue.receive_all())
    assert outcome.failed_message_ids == []
    pipeline.aggregate()
    status = pipeline.ingestion_status(result["ingestion_id"])
    assert status["status"] in ("processed", "rejected"), status
    assert all(set(e) == {"location", "field", "reason"} and e["reason"] for e in status["errors"])
