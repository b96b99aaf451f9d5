"""The benchmark's ticks and its reference bars, computed here from the ticks alone (no pipeline code).

A tick is a plain tuple (symbol, price, volume, timestamp in ms, trade id). ``expected_minute_bars`` gives the
OHLCV of each (symbol, minute) of ticks in time order; ``merge_minute_bars`` folds the bars of later ticks into
those of earlier ones, so a reference can be built batch by batch while a large file is streamed to disk;
``roll_up`` makes the coarser intervals from minute bars (open of the first minute, close of the last).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO

BASE_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
MINUTE_MS = 60_000
INTERVAL_MS = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "1h": 60 * MINUTE_MS,
               "1d": 1440 * MINUTE_MS}
CSV_HEADER = "timestamp,symbol,price,volume,trade_id\n"

TickRow = tuple[str, str, str, int, int]  # (symbol, price, volume, timestamp ms, trade id)
Window = tuple[str, int]  # (symbol, window start in epoch ms)
Ohlcv = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


# ---------------------------------------------------------------------------------------------- ticks


def symbol_ticks(rng: random.Random, index: int, count: int, span_ms: int, base_ms: int = BASE_MS,
                 prefix: str = "BENCH") -> Iterator[TickRow]:
    """``count`` ticks of symbol number ``index`` at unique timestamps in [base, base + span), in time order:
    a random walk of the price in cents, volumes of 0.001 to 4."""
    symbol = f"{prefix}{index}"
    cents = 10_000 + 5_000 * index
    for i, offset in enumerate(sorted(rng.sample(range(span_ms), count))):
        cents = max(1, cents + rng.randint(-5, 5))
        volume = Decimal(rng.randint(1, 4000)) / 1000
        yield symbol, f"{cents // 100}.{cents % 100:02d}", str(volume), base_ms + offset, i + 1


def _counts(n: int, symbols: int) -> list[int]:
    return [n // symbols + (1 if s < n % symbols else 0) for s in range(symbols)]


def synthetic_ticks(n: int, symbols: int, hours: float, seed: int = 7) -> list[TickRow]:
    """``n`` ticks over ``symbols`` symbols and ``hours`` hours, in time order; timestamps unique per symbol."""
    rng = random.Random(seed)
    span = int(hours * 3600 * 1000)
    ticks = [tick for s, count in enumerate(_counts(n, symbols)) for tick in symbol_ticks(rng, s, count, span)]
    ticks.sort(key=lambda t: (t[3], t[0]))
    return ticks


def streamed_ticks(n: int, symbols: int, days: float, seed: int = 11) -> Iterator[TickRow]:
    """Like ``synthetic_ticks`` over ``days`` days, generated lazily (one random generator per symbol, merged by
    time), so that millions of ticks are never all in memory."""
    span = int(days * 86_400 * 1000)
    streams = [symbol_ticks(random.Random(seed * 1000 + s), s, count, span)
               for s, count in enumerate(_counts(n, symbols))]
    return heapq.merge(*streams, key=lambda t: (t[3], t[0]))


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def json_body(ticks: Iterable[TickRow]) -> str:
    return "[" + ",".join(
        f'{{"symbol":"{s}","price":{p},"volume":{v},"timestamp":"{iso_ms(ts)}","trade_id":"{tid}"}}'
        for s, p, v, ts, tid in ticks) + "]"


def csv_lines(ticks: Iterable[TickRow]) -> str:
    return "".join(f"{iso_ms(ts)},{s},{p},{v},{tid}\n" for s, p, v, ts, tid in ticks)


def csv_body(ticks: list[TickRow]) -> str:
    return CSV_HEADER + csv_lines(ticks)


def write_csv(out: TextIO, ticks: Iterable[TickRow], batch: int = 50_000) -> tuple[int, dict[Window, Ohlcv]]:
    """Write ticks in time order as CSV (with its header) and return their count and minute bars, holding
    one batch of ticks at a time."""
    out.write(CSV_HEADER)
    bars: dict[Window, Ohlcv] = {}
    pending: list[TickRow] = []
    count = 0

    def flush() -> None:
        out.write(csv_lines(pending))
        merge_minute_bars(bars, expected_minute_bars(pending))
        pending.clear()

    for tick in ticks:
        pending.append(tick)
        count += 1
        if len(pending) >= batch:
            flush()
    flush()
    return count, bars


# ---------------------------------------------------------------------------------------------- reference bars


def expected_minute_bars(ticks: Iterable[TickRow]) -> dict[Window, Ohlcv]:
    """Plain OHLCV per (symbol, minute) of ticks in time order."""
    out: dict[Window, list[Decimal]] = {}
    for s, p, v, ts, _ in ticks:
        price, volume = Decimal(p), Decimal(v)
        key = (s, ts - ts % MINUTE_MS)
        acc = out.get(key)
        if acc is None:
            out[key] = [price, price, price, price, volume]
        else:
            acc[1], acc[2], acc[3], acc[4] = max(acc[1], price), min(acc[2], price), price, acc[4] + volume
    return {k: (a[0], a[1], a[2], a[3], a[4]) for k, a in out.items()}


def _combine(first: Ohlcv, then: Ohlcv) -> Ohlcv:
    return first[0], max(first[1], then[1]), min(first[2], then[2]), then[3], first[4] + then[4]


def merge_minute_bars(into: dict[Window, Ohlcv], later: dict[Window, Ohlcv]) -> None:
    """Fold the bars of later ticks into ``into`` (the bars of the ticks before them)."""
    for key, bar in later.items():
        earlier = into.get(key)
        into[key] = bar if earlier is None else _combine(earlier, bar)


def roll_up(minute_bars: dict[Window, Ohlcv], interval: str) -> dict[Window, Ohlcv]:
    """The bars of ``interval`` made from minute bars: open of the first minute, close of the last."""
    width = INTERVAL_MS[interval]
    out: dict[Window, Ohlcv] = {}
    for symbol, start in sorted(minute_bars):
        key = (symbol, start - start % width)
        bar = minute_bars[(symbol, start)]
        earlier = out.get(key)
        out[key] = bar if earlier is None else _combine(earlier, bar)
    return out
