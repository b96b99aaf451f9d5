"""Real exports that do not describe themselves, through the running local stack as a user sends them:
`aws s3 cp --metadata` and `POST /ingest` with query options. The bars, in the stored interval and in derived
ones (4h, local days), are checked against bars computed here from the same rows."""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from localrun.control import LocalStack, wait_for
from tests.real_exports import BITCOINCHARTS, HL_FORMAT, HYPERLIQUID, KRAKEN, chicago, epoch_rows, reference_bars

pytestmark = pytest.mark.e2e

NS = 1_000_000_000


def as_compared(bar: dict[str, Any]) -> dict[str, Any]:
    start = calendar.timegm(datetime.strptime(bar["start"], "%Y-%m-%dT%H:%M:%SZ").timetuple())
    return {"start": start, **{k: Decimal(bar[k]) for k in ("open", "high", "low", "close", "volume")},
            "trades": bar["trades"], "vwap": None if bar["vwap"] is None else Decimal(bar["vwap"])}


def local_midnight(zone: str) -> Any:
    tz = ZoneInfo(zone)

    def start(ns: int) -> int:
        day = datetime.fromtimestamp(ns // NS, tz).date()
        return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
    return start


def settled_bars(stack: LocalStack, symbol: str, expected: list[dict[str, Any]], interval: str = "1m",
                 **params: Any) -> list[dict[str, Any]]:
    """Poll GET /bars until its bars equal ``expected`` (the aggregator runs on events and the schedule)."""
    def ready() -> list[dict[str, Any]] | None:
        got = [as_compared(b) for b in stack.bars(symbol, interval, **params)]
        return got if got == expected else None
    try:
        return wait_for(ready, 30, f"the {interval} bars of {symbol}")
    except AssertionError:
        assert [as_compared(b) for b in stack.bars(symbol, interval, **params)] == expected
        raise


def test_a_headerless_bitcoincharts_file_by_aws_s3_cp_with_metadata(stack: LocalStack, symbol: str,
                                                                    tmp_path: Path) -> None:
    path = tmp_path / "bitstampUSD.csv"
    path.write_text(BITCOINCHARTS)
    key = f"bitcoincharts/{symbol}/bitstampUSD.csv"
    stack.s3_cp(path, key, metadata={"columns": "timestamp,price,volume", "symbol": symbol})

    status = stack.wait_processed(stack.s3_ingestion_id(key))

    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 10, 0), status
    rows = epoch_rows(BITCOINCHARTS, 0, 1, 2)
    settled_bars(stack, symbol, reference_bars(rows))
    four_hours = reference_bars(rows, lambda ns: ns // NS // 14_400 * 14_400)
    assert len(four_hours) == 2
    settled_bars(stack, symbol, four_hours, "4h")
    tokyo_days = reference_bars(rows, local_midnight("Asia/Tokyo"))  # 22:53 to 04:32 in Tokyo: two days
    assert len(tokyo_days) == 2
    settled_bars(stack, symbol, tokyo_days, "1d", tz="Asia/Tokyo")


def test_a_hyperliquid_export_posted_with_its_time_format_zone_and_a_symbol(stack: LocalStack,
                                                                             symbol: str) -> None:
    query = urlencode({"column_map": "coin=skip", "symbol": symbol, "timestamp_format": HL_FORMAT,
                       "timezone": "America/Chicago"})
    response = stack.request("POST", f"/ingest?{query}", HYPERLIQUID.encode(), {"Content-Type": "text/csv"})
    assert response.status == 202, response.body
    stack.wait_processed(response.json()["ingestion_id"])

    rows = epoch_rows(HYPERLIQUID, 0, 3, 4, chicago, header=True)
    expected = reference_bars(rows)
    assert expected[0]["start"] == calendar.timegm((2024, 8, 7, 14, 51, 0))  # 09:51 CDT is 14:51 UTC
    settled_bars(stack, symbol, expected)
    settled_bars(stack, symbol, reference_bars(rows, local_midnight("America/Chicago")), "1d",
                 tz="America/Chicago")


def test_a_kraken_export_by_aws_s3_cp_with_a_symbol_and_a_bad_option_named(stack: LocalStack, symbol: str,
                                                                            tmp_path: Path) -> None:
    path = tmp_path / "kraken.csv"
    path.write_text(KRAKEN)
    key = f"kraken/{symbol}/trades.csv"
    stack.s3_cp(path, key, metadata={"symbol": symbol})
    assert stack.wait_processed(stack.s3_ingestion_id(key))["accepted"] == 5
    settled_bars(stack, symbol, reference_bars(epoch_rows(KRAKEN, 2, 0, 1, header=True)))

    bad = f"kraken/{symbol}/bad-zone.csv"
    stack.s3_cp(path, bad, metadata={"symbol": symbol, "timezone": "Mars/Olympus"})
    status = stack.wait_processed(stack.s3_ingestion_id(bad))
    assert status["status"] == "rejected" and "x-amz-meta-timezone" in str(status), status
