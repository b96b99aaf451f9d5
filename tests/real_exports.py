"""Real exports that do not describe themselves, as quoted publicly, and their bars computed here directly."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

# bitcoincharts.com's bitstampUSD.csv (unixtime, price, amount; no header), its first ten trades, as quoted
# publicly wherever the file is described.
BITCOINCHARTS = """\
1315922016,5.800000000000,1.000000000000
1315922024,5.830000000000,3.000000000000
1315922029,5.900000000000,1.000000000000
1315922034,6.000000000000,20.000000000000
1315924373,5.950000000000,12.452100000000
1315924504,5.880000000000,7.458000000000
1315924614,5.880000000000,0.176882380000
1315925663,5.760000000000,2.267000000000
1315927898,5.650000000000,2.542000000000
1315942379,5.920000000000,0.450000000000
"""
# Kraken's recent-trades export: float epoch seconds, b/s, m/l, an empty miscellaneous column.
KRAKEN = """\
price,volume,time,buy/sell,market/limit,miscellaneous
30243.40000,0.34507674,1688669597.8277369,b,m,
30243.30000,0.00376960,1688669598.2804598,s,l,
30243.30000,0.01235000,1688669599.5231237,s,m,
30248.60000,0.01520000,1688669653.2091510,b,l,
30249.90000,0.65000000,1688669655.0417550,b,m,
"""
# A Hyperliquid fills export: wall-clock times in the exporter's zone, coin/px/sz names.
HYPERLIQUID = """\
time,coin,dir,px,sz,ntl,fee,closedPnl
08/07/2024 - 09:51:49,ETH,Open Long,2471.3,0.5,1235.65,0.556,0.0
08/07/2024 - 09:51:58,ETH,Open Long,2471.9,1.25,3089.875,1.39,0.0
08/07/2024 - 09:52:03,ETH,Close Long,2470.15,1.75,4322.7625,1.945,-1.4
08/07/2024 - 10:00:11,ETH,Open Short,2468.0,2.0,4936.0,2.22,0.0
"""
HL_FORMAT = "%m/%d/%Y - %H:%M:%S"


def reference_bars(rows: list[tuple[int, Decimal, Decimal]],
                   window_start: Callable[[int], int] = lambda ns: ns // 60_000_000_000 * 60) -> list[dict[str, Any]]:
    """The bars of (epoch ns, price, volume) rows with distinct times, computed directly: 1m bars, or the
    windows ``window_start`` (epoch ns -> the window's start in epoch seconds) puts them in."""
    windows: dict[int, list[tuple[int, Decimal, Decimal]]] = {}
    for row in sorted(rows):
        windows.setdefault(window_start(row[0]), []).append(row)
    out = []
    for start, ticks in sorted(windows.items()):
        volume = sum((q for _, _, q in ticks), Decimal(0))
        notional = sum((p * q for _, p, q in ticks), Decimal(0))
        out.append({"start": start, "open": ticks[0][1], "high": max(p for _, p, _ in ticks),
                    "low": min(p for _, p, _ in ticks), "close": ticks[-1][1], "volume": volume,
                    "trades": len(ticks), "vwap": notional / volume if volume else None})
    return out


def epoch_rows(text: str, ts: int, price: int, volume: int, read_time: Callable[[str], int] | None = None,
               header: bool = False) -> list[tuple[int, Decimal, Decimal]]:
    rows = []
    for line in text.splitlines()[1 if header else 0:]:
        cells = line.split(",")
        stamp = read_time(cells[ts]) if read_time else int(Decimal(cells[ts]) * 1_000_000_000)
        rows.append((stamp, Decimal(cells[price]), Decimal(cells[volume])))
    return rows


def chicago(text: str) -> int:
    local = datetime.strptime(text, HL_FORMAT).replace(tzinfo=ZoneInfo("America/Chicago"))
    return calendar.timegm(local.utctimetuple()) * 1_000_000_000
