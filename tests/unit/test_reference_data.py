"""Real market data (../shared/data, see its README) parsed by the project's parsers and aggregated into bars,
compared exactly with independently built reference bars:

- freqtrade: Binance XRP/ETH trades vs freqtrade's 1m and 5m candles (non-empty candles only),
- Databento: CME ESU4 trades vs Databento's own OHLCV-1m bars,
- cryptofeed: Binance futures aggTrades vs Binance's running 1m kline updates (where they line up).
"""

from __future__ import annotations

import csv
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.bootstrap import wire
from chalicelib.domain.bars import Bar, bars_from_ticks
from chalicelib.domain.csv_rows import parse_csv_document
from chalicelib.domain.formats import ParseContext, ParseResult
from chalicelib.settings import Settings
from tests.fakes import MemoryEvents, MemoryObjects, MemoryQueue, MemoryStateStore

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

XRP_TRADES = "freqtrade_binance_XRPETH_trades_2019-10-11_13.csv"
XRP_OHLCV = {"1m": "freqtrade_binance_XRPETH_ohlcv-1m_2019-10-11_13.json",
             "5m": "freqtrade_binance_XRPETH_ohlcv-5m_2019-10-11_13.json"}
ES_TRADES = "databento_GLBX_ESU4_trades_2024-07-01T2358Z_2024-07-02T0002Z.csv"
ES_OHLCV = "databento_GLBX_ESU4_NQU4_ohlcv-1m_2024-07-01T2340Z_2024-07-02T0010Z.csv"
BINANCE_AGG = "cryptofeed_binance-futures_aggTrades_2021-07-22.csv"
BINANCE_KLINES = "cryptofeed_binance-futures_kline1m_updates_2021-07-22.csv"

NS_PER_MS = 1_000_000


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"reference data not present: {path}")
    return path


def parse_file(name: str, default_symbol: str | None = None) -> ParseResult:
    text = data_file(name).read_text(encoding="utf-8")
    return parse_csv_document(text, ParseContext(received_ns=time.time_ns(), default_symbol=default_symbol))


def by_start_ms(bars: list[Bar]) -> dict[int, Bar]:
    return {bar.start_ns // NS_PER_MS: bar for bar in bars}


# ---------------------------------------------------------------------------------- freqtrade XRP/ETH
@pytest.fixture(scope="module")
def xrp_ticks() -> ParseResult:
    return parse_file(XRP_TRADES)


def test_xrp_trades_parse_completely(xrp_ticks: ParseResult) -> None:
    assert xrp_ticks.rejected == 0 and xrp_ticks.errors == []
    assert len(xrp_ticks.ticks) == 12_477
    assert {t.symbol for t in xrp_ticks.ticks} == {"XRP/ETH"}
    assert xrp_ticks.ticks[0].ts_ns == 1_570_752_011_620 * NS_PER_MS  # timestamp_ms read as milliseconds
    assert xrp_ticks.ticks[0].price == Decimal("0.00141342")


@pytest.mark.parametrize(("interval", "expected_bars"), [("1m", 2_469), ("5m", 706)])
def test_xrp_bars_match_freqtrade_candles(xrp_ticks: ParseResult, interval: str, expected_bars: int) -> None:
    candles = json.loads(data_file(XRP_OHLCV[interval]).read_text(), parse_float=Decimal)
    non_empty = {int(c[0]): c for c in candles if Decimal(c[5]) > 0}
    fillers = {int(c[0]) for c in candles if Decimal(c[5]) == 0}
    bars = by_start_ms(bars_from_ticks(xrp_ticks.ticks, interval))

    assert len(non_empty) == expected_bars
    # One bar per non-empty candle and none where the reference only has a zero-volume filler.
    assert set(bars) == set(non_empty)
    assert not fillers & set(bars)
    mismatches = []
    for start_ms, (_, o, h, lo, c, v) in sorted(non_empty.items()):
        bar = bars[start_ms]
        if (bar.open, bar.high, bar.low, bar.close) != (o, h, lo, c) or abs(bar.volume - v) > Decimal("1e-6"):
            mismatches.append((start_ms, (bar.open, bar.high, bar.low, bar.close, bar.volume), (o, h, lo, c, v)))
    assert mismatches == []


# ---------------------------------------------------------------------------------- Databento ESU4
ES_EXPECTED = {
    # bar open (ms): trade count, VWAP to 4 places (from the README)
    1_719_878_280_000: (13, Decimal("5528.7361")),  # 23:58
    1_719_878_340_000: (15, Decimal("5528.7283")),  # 23:59
    1_719_878_400_000: (68, Decimal("5529.0571")),  # 00:00
    1_719_878_460_000: (24, Decimal("5529.2568")),  # 00:01
}


def es_reference_bars() -> dict[int, dict[str, Decimal]]:
    with data_file(ES_OHLCV).open(newline="") as handle:
        return {
            int(row["ts_event_ns"]) // NS_PER_MS: {
                k: Decimal(row[k]) for k in ("open", "high", "low", "close", "volume")
            }
            for row in csv.DictReader(handle)
            if row["symbol"] == "ESU4"
        }


def test_esu4_trades_rebuild_databento_bars() -> None:
    parsed = parse_file(ES_TRADES)
    assert parsed.rejected == 0 and len(parsed.ticks) == 120
    # ts_event_ns is read as exact nanoseconds.
    assert parsed.ticks[0].ts_ns == 1_719_878_281_218_218_853
    reference = es_reference_bars()
    bars = by_start_ms(bars_from_ticks(parsed.ticks, "1m"))
    assert set(bars) == set(ES_EXPECTED)
    for start_ms, (trades, vwap) in ES_EXPECTED.items():
        bar, ref = bars[start_ms], reference[start_ms]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
            ref["open"], ref["high"], ref["low"], ref["close"], ref["volume"]
        ), start_ms
        assert bar.trades == trades
        assert bar.vwap is not None and bar.vwap.quantize(Decimal("0.0001")) == vwap
    assert sum(b.volume for b in bars.values()) == 253


# ---------------------------------------------------------------------------------- Binance futures klines
def test_binance_aggtrades_match_kline_updates_where_they_line_up() -> None:
    parsed = parse_file(BINANCE_AGG)
    assert parsed.rejected == 0 and len(parsed.ticks) == 91
    with data_file(BINANCE_AGG).open(newline="") as handle:
        last_trade = {row["agg_trade_id"]: int(row["last_trade_id"]) for row in csv.DictReader(handle)}
    aligned_ends = {(t.symbol, last_trade[t.trade_id or ""]) for t in parsed.ticks}
    minute_ms = 1_626_992_760_000  # 22:26, where the capture has the whole minute
    with data_file(BINANCE_KLINES).open(newline="") as handle:
        updates = [
            row for row in csv.DictReader(handle)
            if int(row["open_time_ms"]) == minute_ms and (row["symbol"], int(row["last_trade_id"])) in aligned_ends
        ]
    assert {row["symbol"] for row in updates} == {"CTKUSDT", "KEEPUSDT", "SUSHIUSDT"}
    final_vwap: dict[str, Decimal] = {}
    for row in updates:
        upto = int(row["last_trade_id"])
        ticks = [
            t for t in parsed.ticks
            if t.symbol == row["symbol"] and t.ts_ns >= minute_ms * NS_PER_MS and last_trade[t.trade_id or ""] <= upto
        ]
        [bar] = bars_from_ticks(ticks, "1m")
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.notional) == tuple(
            Decimal(row[k]) for k in ("open", "high", "low", "close", "volume", "quote_volume")
        ), row
        assert bar.vwap is not None
        final_vwap[row["symbol"]] = bar.vwap
    assert {s: v.quantize(Decimal("0.000001")) for s, v in final_vwap.items()} == {
        "CTKUSDT": Decimal("1.010999"), "KEEPUSDT": Decimal("0.246788"), "SUSHIUSDT": Decimal("7.617864"),
    }


# ---------------------------------------------------------------------------------- the other tick files
@pytest.mark.parametrize(
    ("name", "default_symbol", "count", "symbols"),
    [
        ("tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv", None, 9_999, {"BTCUSDT"}),
        ("tardis_bitmex_XBTUSD_trades_2020-03-01.csv", None, 10, {"XBTUSD"}),
        ("mlfinlab_ES_imbalance_sample_data.csv", "ES", 11_101, {"ES"}),
        ("mlfinlab_ES_tick_data_with_outliers.csv", "ES", 100, {"ES"}),
        ("freqtrade_binance_ETHUSDT_public_trades_list.csv", "ETH/USDT", 1_000, {"ETH/USDT"}),
        ("freqtrade_public_trades_list_simple_example_MESSY.csv", "BTC/USDT", 7, {"BTC/USDT"}),
    ],
)
def test_other_tick_files_parse_completely(name: str, default_symbol: str | None, count: int, symbols: set) -> None:
    parsed = parse_file(name, default_symbol)
    assert parsed.errors == [] and parsed.rejected == 0
    assert len(parsed.ticks) == count
    assert {t.symbol for t in parsed.ticks} == symbols
    bars = bars_from_ticks(parsed.ticks, "1m")
    assert sum(b.trades for b in bars) == count


def test_tardis_microsecond_timestamps() -> None:
    parsed = parse_file("tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv")
    assert parsed.ticks[0].ts_ns == 1_582_329_602_111_000 * 1_000


def test_mlfinlab_duplicate_rows_are_kept_as_separate_fills() -> None:
    parsed = parse_file("mlfinlab_ES_imbalance_sample_data.csv", "ES")
    with data_file("mlfinlab_ES_imbalance_sample_data.csv").open(newline="") as handle:
        total = sum(Decimal(row["Volume"]) for row in csv.DictReader(handle))
    assert sum(t.volume for t in parsed.ticks) == total


def test_backtrader_bar_file_is_rejected_for_lack_of_a_price_column() -> None:
    parsed = parse_file("backtrader_ticksample.csv", "ES")
    assert parsed.ticks == []
    assert [(e.location, e.field) for e in parsed.errors] == [("line 1", "header")]
    assert "price" in parsed.errors[0].reason


# ---------------------------------------------------------------------------------- through the pipeline
def test_xrp_file_through_the_pipeline_matches_freqtrade_5m_candles() -> None:
    """S3 object -> range chunks -> partials -> 1m bars -> 5m bars built from the 1m bars."""
    body = data_file(XRP_TRADES).read_bytes()
    candles = json.loads(data_file(XRP_OHLCV["5m"]).read_text(), parse_float=Decimal)
    store, queue, objects = MemoryStateStore(), MemoryQueue(), MemoryObjects(block_size=64 * 1024)
    pipeline = wire(store, queue, MemoryEvents(), objects, Settings(chunk_bytes=100_000))
    version = objects.put("bucket", "trades/xrp.csv", body, "text/csv")
    assert pipeline.ingest_object("bucket", "trades/xrp.csv", version)["status"] == "queued"
    assert len(queue.messages) > 5
    outcome = pipeline.process_batch(queue.receive_all())
    assert outcome.failed_message_ids == [] and outcome.ticks == 12_477
    pipeline.aggregate()

    non_empty = {int(c[0]) * NS_PER_MS: c for c in candles if Decimal(c[5]) > 0}
    stored = {bar.start_ns: bar for bar in store.bars_of("XRP/ETH", "5m")}
    assert set(stored) == set(non_empty)
    for start, (_, o, h, lo, c, v) in non_empty.items():
        bar = stored[start]
        assert (bar.open, bar.high, bar.low, bar.close) == (o, h, lo, c)
        assert abs(bar.volume - v) <= Decimal("1e-6")
