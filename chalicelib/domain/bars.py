"""OHLCV bars as mergeable aggregates.

A ``Bar`` summarises the ticks of one symbol in one window. Bars merge associatively and commutatively,
so a window's bar is the same whether it is built from one source or from many partial aggregates,
in any order: open and close are chosen by a total order on ticks (``order_key``), not by arrival.

Ticks with the same timestamp are ordered by numeric trade id when they carry one (exchanges number
trades in sequence), then by their source's rank (time of receipt), then by position in the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Context, Decimal, localcontext
from itertools import repeat
from operator import itemgetter, mod, mul, sub
from typing import Any

from .ticks import Tick, TickColumns
from .timefmt import NS_PER_S

MINUTE_NS = 60 * NS_PER_S
INTERVALS: dict[str, int] = {
    "1m": MINUTE_NS,
    "5m": 5 * MINUTE_NS,
    "15m": 15 * MINUTE_NS,
    "1h": 60 * MINUTE_NS,
    "1d": 1440 * MINUTE_NS,
}
# Each interval is built from the next finer one.
PARENT: dict[str, str] = {"5m": "1m", "15m": "5m", "1h": "15m", "1d": "1h"}

EXACT = Context(prec=80)
VWAP_CONTEXT = Context(prec=28)


def window_start(ts_ns: int, interval: str) -> int:
    width = INTERVALS[interval]
    return ts_ns - ts_ns % width


def trade_rank(trade_id: str | None) -> str:
    """Numeric trade ids sort by value; other ids (UUIDs) carry no order and rank as absent."""
    if trade_id and trade_id.isdigit() and len(trade_id) <= 40:
        digits = trade_id.lstrip("0") or "0"
        return f"{len(digits):02d}{digits}"
    return ""


def order_key(ts_ns: int, trade_id: str | None, source_rank: str, seq: int) -> str:
    """A string whose lexicographic order is the ticks' total order (see module docstring)."""
    return f"{ts_ns:020d}|{trade_rank(trade_id):42s}|{source_rank}|{seq:012d}"


@dataclass(frozen=True, slots=True)
class Bar:
    """Aggregate of the ticks of ``symbol`` in [start_ns, start_ns + width of ``interval``)."""

    symbol: str
    interval: str
    start_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    notional: Decimal  # sum of price * volume, exact
    trades: int
    first_ns: int
    last_ns: int
    open_key: str
    close_key: str

    @property
    def vwap(self) -> Decimal | None:
        if self.volume == 0:
            return None
        # Rounding to the context's precision could step outside the true range [low, high]; clamp.
        return min(max(VWAP_CONTEXT.divide(self.notional, self.volume), self.low), self.high)

    def same_values(self, other: Bar) -> bool:
        return (
            self.open == other.open and self.high == other.high and self.low == other.low
            and self.close == other.close and self.volume == other.volume
            and self.notional == other.notional and self.trades == other.trades
            and self.first_ns == other.first_ns and self.last_ns == other.last_ns
        )


def merge(a: Bar, b: Bar) -> Bar:
    """Combine two aggregates of the same symbol and window (associative and commutative)."""
    first = a if a.open_key <= b.open_key else b
    closer = a if a.close_key >= b.close_key else b
    return Bar(
        symbol=a.symbol,
        interval=a.interval,
        start_ns=a.start_ns,
        open=first.open,
        high=max(a.high, b.high),
        low=min(a.low, b.low),
        close=closer.close,
        volume=EXACT.add(a.volume, b.volume),
        notional=EXACT.add(a.notional, b.notional),
        trades=a.trades + b.trades,
        first_ns=min(a.first_ns, b.first_ns),
        last_ns=max(a.last_ns, b.last_ns),
        open_key=first.open_key,
        close_key=closer.close_key,
    )


def merge_all(bars: Iterable[Bar], interval: str, start_ns: int) -> Bar | None:
    """Merge aggregates (of any finer window inside it) into the bar of ``interval`` at ``start_ns``."""
    result: Bar | None = None
    for bar in bars:
        bar = replace(bar, interval=interval, start_ns=start_ns)
        result = bar if result is None else merge(result, bar)
    return result


def _tie(tick: Tick) -> tuple[str, int]:
    return trade_rank(tick.trade_id), tick.seq


def partials_from_ticks(ticks: Iterable[Tick] | TickColumns, source_rank: str) -> dict[tuple[str, int], Bar]:
    """One-minute partial aggregates of a batch of ticks, keyed by (symbol, minute start).

    Columns go to ``partials_from_columns``. Tick values take a single pass with plain comparisons: ticks are
    compared by timestamp, and the full order key is only consulted on a tie; keys are built for the winners
    only. The two give the same bars (tests/unit/test_fastpath_differential.py).
    """
    if isinstance(ticks, TickColumns):
        return partials_from_columns(ticks, source_rank)
    out: dict[tuple[str, int], list[Any]] = {}
    with localcontext(EXACT):
        for tick in ticks:
            ts = tick.ts_ns
            key = (tick.symbol, ts - ts % MINUTE_NS)
            price = tick.price
            volume = tick.volume
            acc = out.get(key)
            if acc is None:
                out[key] = [tick, price, price, tick, volume, price * volume, 1]
                continue
            first = acc[0]
            if ts < first.ts_ns or (ts == first.ts_ns and _tie(tick) < _tie(first)):
                acc[0] = tick
            if price > acc[1]:
                acc[1] = price
            elif price < acc[2]:
                acc[2] = price
            last = acc[3]
            if ts > last.ts_ns or (ts == last.ts_ns and _tie(tick) > _tie(last)):
                acc[3] = tick
            acc[4] += volume
            acc[5] += price * volume
            acc[6] += 1
    partials = {}
    for (symbol, minute), (first, high, low, last, volume, notional, count) in out.items():
        partials[(symbol, minute)] = Bar(
            symbol, "1m", minute, first.price, high, low, last.price, volume, notional, count,
            first.ts_ns, last.ts_ns,
            order_key(first.ts_ns, first.trade_id, source_rank, first.seq),
            order_key(last.ts_ns, last.trade_id, source_rank, last.seq),
        )
    return partials


def minute_windows(columns: TickColumns) -> set[tuple[str, int]]:
    """The (symbol, minute start) windows that ticks given column by column fall in."""
    stamps = columns.ts_ns
    return set(zip(columns.symbols, map(sub, stamps, map(mod, stamps, repeat(MINUTE_NS))), strict=True))


def partials_from_columns(columns: TickColumns, source_rank: str) -> dict[tuple[str, int], Bar]:
    """One-minute partial aggregates of ticks given column by column, keyed by (symbol, minute start).

    This is the hot path of processing. The ticks are grouped by window in one pass; each window is then
    summed with C loops over its columns (sum, max, min over the window's prices and volumes), in the ticks'
    order, so the exact Decimal results (their digits and exponent too) are those of adding tick by tick. Open
    and close are the first and last ticks by timestamp; the full order (trade id, then position) decides a tie.
    """
    stamps = columns.ts_ns
    groups: dict[tuple[str, int], list[int]] = {}
    get = groups.get
    minutes = map(sub, stamps, map(mod, stamps, repeat(MINUTE_NS)))
    for index, key in enumerate(zip(columns.symbols, minutes, strict=False)):
        group = get(key)
        if group is None:
            groups[key] = [index]
        else:
            group.append(index)
    prices, volumes, trade_ids, seqs = columns.prices, columns.volumes, columns.trade_ids, columns.seqs

    def key_of(index: int) -> str:
        return order_key(stamps[index], trade_ids[index], source_rank, seqs[index])

    def pick(candidates: list[int], times: Sequence[int], at: int, last: bool) -> int:
        if times.count(at) == 1:
            return candidates[times.index(at)]
        tied = [candidates[i] for i, t in enumerate(times) if t == at]
        rank = lambda i: (trade_rank(trade_ids[i]), seqs[i])  # noqa: E731
        return max(tied, key=rank) if last else min(tied, key=rank)

    partials: dict[tuple[str, int], Bar] = {}
    with localcontext(EXACT):
        for (symbol, minute), members in groups.items():
            if len(members) == 1:
                i = members[0]
                price, volume = prices[i], volumes[i]
                only = key_of(i)
                partials[(symbol, minute)] = Bar(symbol, "1m", minute, price, price, price, price, volume,
                                                 price * volume, 1, stamps[i], stamps[i], only, only)
                continue
            take = itemgetter(*members)
            ps, vs, ts = take(prices), take(volumes), take(stamps)
            notional = list(map(mul, ps, vs))
            first_ns, last_ns = min(ts), max(ts)
            first = pick(members, ts, first_ns, last=False)
            last = pick(members, ts, last_ns, last=True)
            partials[(symbol, minute)] = Bar(
                symbol, "1m", minute, prices[first], max(ps), min(ps), prices[last], sum(vs[1:], vs[0]),
                sum(notional[1:], notional[0]), len(members), first_ns, last_ns, key_of(first), key_of(last))
    return partials


def bars_from_ticks(ticks: Iterable[Tick], interval: str, source_rank: str = "") -> list[Bar]:
    """Reference computation straight from ticks (used by tests and the benchmark)."""
    by_window: dict[tuple[str, int], Bar] = {}
    for (symbol, minute), partial in partials_from_ticks(ticks, source_rank).items():
        start = window_start(minute, interval)
        bar = replace(partial, interval=interval, start_ns=start)
        key = (symbol, start)
        by_window[key] = bar if key not in by_window else merge(by_window[key], bar)
    return [by_window[k] for k in sorted(by_window)]
