"""Real trades through the whole local stack reproduce bars that others computed independently.

- Databento CME ESU4 trades -> Databento's own OHLCV-1m bars (vendor-built), via S3 and via REST.
- Binance XRP/ETH trades -> freqtrade's 1m and 5m candles (library-built), via S3 and via REST.

The data lives outside the repository (../shared/data, see its README); without it these tests skip.
REST deliveries are split into several requests sent in shuffled order: bars must not depend on arrival.
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from localrun.control import REPO_ROOT, LocalStack, unique_symbol, wait_for

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

DATABENTO_TRADES = SHARED_DATA / "databento_GLBX_ESU4_trades_2024-07-01T2358Z_2024-07-02T0002Z.csv"
DATABENTO_BARS = SHARED_DATA / "databento_GLBX_ESU4_NQU4_ohlcv-1m_2024-07-01T2340Z_2024-07-02T0010Z.csv"
XRP_TRADES = SHARED_DATA / "freqtrade_binance_XRPETH_trades_2019-10-11_13.csv"
XRP_1M = SHARED_DATA / "freqtrade_binance_XRPETH_ohlcv-1m_2019-10-11_13.csv"
XRP_5M = SHARED_DATA / "freqtrade_binance_XRPETH_ohlcv-5m_2019-10-11_13.csv"
FILES = (DATABENTO_TRADES, DATABENTO_BARS, XRP_TRADES, XRP_1M, XRP_5M)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not all(f.is_file() for f in FILES), reason=f"reference data not found in {SHARED_DATA}"),
]

ESU4_MINUTES = ("2024-07-01T23:58:00Z", "2024-07-01T23:59:00Z", "2024-07-02T00:00:00Z", "2024-07-02T00:01:00Z")
ESU4_TRADE_COUNTS = (13, 15, 68, 24)
ESU4_VWAP_4DP = ("5528.7361", "5528.7283", "5529.0571", "5529.2568")  # computed from the ticks (data README)
XRP_TRADE_COUNT = 12_477
XRP_VOLUME_TOLERANCE = Decimal("1e-6")
REFERENCE_TIMEOUT_S = 240


@dataclass(frozen=True)
class RefBar:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def iso_minute(epoch_ms: int) -> str:
    """The API's spelling of a window start (whole seconds print without a fraction)."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def databento_reference() -> dict[str, RefBar]:
    out = {}
    for row in read_rows(DATABENTO_BARS):
        start = iso_minute(int(row["ts_event_ns"]) // 1_000_000)
        if row["symbol"] == "ESU4" and start in ESU4_MINUTES:
            out[start] = RefBar(*(Decimal(row[k]) for k in ("open", "high", "low", "close", "volume")))
    assert list(out) == list(ESU4_MINUTES), "the reference file does not hold the expected ESU4 bars"
    return out


def freqtrade_reference(path: Path) -> dict[str, RefBar]:
    """The non-empty candles (freqtrade fills empty minutes with zero-volume copies of the last close)."""
    fields = ("open", "high", "low", "close", "volume")
    return {
        iso_minute(int(row["open_time_ms"])): RefBar(*(Decimal(row[k]) for k in fields))
        for row in read_rows(path) if Decimal(row["volume"]) > 0
    }


def mismatches(bars: list[dict[str, Any]], reference: dict[str, RefBar],
               volume_tolerance: Decimal = Decimal(0)) -> list[str]:
    """How the API's bars differ from the reference: missing or extra windows, or a differing value."""
    got = {b["start"]: b for b in bars}
    problems = [f"missing {s}" for s in reference if s not in got]
    problems += [f"extra {s}" for s in got if s not in reference]
    for start, ref in reference.items():
        bar = got.get(start)
        if bar is None:
            continue
        for name in ("open", "high", "low", "close"):
            if Decimal(bar[name]) != getattr(ref, name):
                problems.append(f"{start} {name} {bar[name]} != {getattr(ref, name)}")
        if abs(Decimal(bar["volume"]) - ref.volume) > volume_tolerance:
            problems.append(f"{start} volume {bar['volume']} != {ref.volume}")
    return problems


def wait_until_bars_match(stack: LocalStack, symbol: str, interval: str, reference: dict[str, RefBar],
                          volume_tolerance: Decimal = Decimal(0),
                          timeout: float = REFERENCE_TIMEOUT_S) -> list[dict[str, Any]]:
    def matched() -> list[dict[str, Any]]:
        bars = stack.bars(symbol, interval)
        problems = mismatches(bars, reference, volume_tolerance)
        assert not problems, f"{len(problems)} difference(s), e.g. {problems[:5]}"
        return bars

    return wait_for(matched, timeout, f"the {interval} bars of {symbol} to match the reference", interval=1.0)


def csv_text(header: list[str], rows: Iterable[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def with_symbol(rows: list[dict[str, str]], symbol: str) -> list[dict[str, str]]:
    return [{**row, "symbol": symbol} for row in rows]


def shuffled_chunks(rows: list[dict[str, str]], parts: int, seed: int) -> list[list[dict[str, str]]]:
    size = -(-len(rows) // parts)
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    random.Random(seed).shuffle(chunks)
    return chunks


def post_csv(stack: LocalStack, body: str, idempotency_key: str | None = None) -> dict[str, Any]:
    resp = stack.post_ingest(body, "text/csv", idempotency_key=idempotency_key)
    assert resp.status == 202, (resp.status, resp.body[:1000])
    return resp.json()


# ---------------------------------------------------------------------------------------------- Databento ESU4


def check_esu4(bars: list[dict[str, Any]]) -> None:
    assert [b["start"] for b in bars] == list(ESU4_MINUTES)
    assert tuple(b["trades"] for b in bars) == ESU4_TRADE_COUNTS
    assert tuple(str(Decimal(b["vwap"]).quantize(Decimal("0.0001"))) for b in bars) == ESU4_VWAP_4DP


def test_databento_trades_via_s3_reproduce_the_vendor_1m_bars(stack: LocalStack) -> None:
    # The file goes up unchanged: its symbol column says ESU4, which no other test uses.
    key = f"reference/{uuid.uuid4().hex}/{DATABENTO_TRADES.name}"
    stack.s3_cp(DATABENTO_TRADES, key)

    status = stack.wait_processed(stack.s3_ingestion_id(key))
    bars = wait_until_bars_match(stack, "ESU4", "1m", databento_reference(), timeout=60)

    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 120, 0)
    check_esu4(bars)


def test_databento_trades_via_rest_in_shuffled_requests_reproduce_the_same_bars(stack: LocalStack) -> None:
    symbol = unique_symbol("ESU4.REST")
    rows = read_rows(DATABENTO_TRADES)
    header = list(rows[0])
    chunks = [csv_text(header, chunk) for chunk in shuffled_chunks(with_symbol(rows, symbol), 5, seed=20240701)]
    key = f"e2e-{uuid.uuid4()}"

    first = post_csv(stack, chunks[0], idempotency_key=key)
    ids = [first["ingestion_id"]] + [post_csv(stack, chunk)["ingestion_id"] for chunk in chunks[1:]]
    replay = post_csv(stack, chunks[0], idempotency_key=key)  # the same request delivered again

    assert replay["ingestion_id"] == first["ingestion_id"] and replay.get("replayed") is True
    assert sum(stack.wait_processed(i)["accepted"] for i in ids) == len(rows)
    bars = wait_until_bars_match(stack, symbol, "1m", databento_reference(), timeout=60)
    check_esu4(bars)


# ---------------------------------------------------------------------------------------------- freqtrade XRP/ETH


@dataclass(frozen=True)
class XrpIngestions:
    s3_symbol: str
    s3_ingestion_id: str
    rest_symbol: str
    rest_ingestion_ids: list[str]


@pytest.fixture(scope="module")
def xrp(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[XrpIngestions]:
    """Send the 12,477 XRP/ETH trades both ways at once, so their processing overlaps; tests then wait."""
    rows = read_rows(XRP_TRADES)
    assert len(rows) == XRP_TRADE_COUNT
    header = list(rows[0])

    # S3: without its symbol column; the object's x-amz-meta-symbol names the instrument.
    s3_symbol = unique_symbol("XRP/ETH.S3")
    path = tmp_path_factory.mktemp("xrp") / "xrp_eth_trades.csv"
    path.write_text(csv_text([h for h in header if h != "symbol"],
                             ({k: v for k, v in row.items() if k != "symbol"} for row in rows)))
    key = f"reference/{uuid.uuid4().hex}/xrp_eth_trades.csv"
    stack.s3_cp(path, key, metadata={"symbol": s3_symbol})

    # REST: the symbol column rewritten, six requests in shuffled order.
    rest_symbol = unique_symbol("XRP/ETH.REST")
    chunks = shuffled_chunks(with_symbol(rows, rest_symbol), 6, seed=20191011)
    rest_ids = [post_csv(stack, csv_text(header, chunk))["ingestion_id"] for chunk in chunks]

    yield XrpIngestions(s3_symbol, stack.s3_ingestion_id(key), rest_symbol, rest_ids)


def check_xrp(stack: LocalStack, symbol: str) -> None:
    minute = wait_until_bars_match(stack, symbol, "1m", freqtrade_reference(XRP_1M), XRP_VOLUME_TOLERANCE)
    wait_until_bars_match(stack, symbol, "5m", freqtrade_reference(XRP_5M), XRP_VOLUME_TOLERANCE)
    assert len(minute) == 2469
    assert sum(b["trades"] for b in minute) == XRP_TRADE_COUNT


def test_freqtrade_trades_via_s3_reproduce_the_1m_and_5m_candles(stack: LocalStack, xrp: XrpIngestions) -> None:
    status = stack.wait_processed(xrp.s3_ingestion_id, timeout=REFERENCE_TIMEOUT_S)

    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", XRP_TRADE_COUNT, 0)
    check_xrp(stack, xrp.s3_symbol)


def test_freqtrade_trades_via_rest_in_shuffled_requests_reproduce_the_candles(stack: LocalStack,
                                                                             xrp: XrpIngestions) -> None:
    accepted = [stack.wait_processed(i, timeout=REFERENCE_TIMEOUT_S)["accepted"] for i in xrp.rest_ingestion_ids]

    assert sum(accepted) == XRP_TRADE_COUNT
    check_xrp(stack, xrp.rest_symbol)
