"""A page of bars for GET /bars: stored bars as they are, other intervals merged from a stored level, over one
or more symbols, in either direction, continuing exactly after a position.

A derived bar is the merge (domain.bars.merge) of the stored bars of its window, so it is the bar its ticks
give: open and close by the ticks' total order, high, low, volume, notional, trades, first and last tick. Its
revision is the sum of its parts' revisions: it goes up whenever a part is revised or a part is added.

Source bars are read in the page's direction, in chunks sized to what the page still needs, and grouped by
window as they come; one source bar of a window past the page's last tells that more follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.bar_requests import BarsPage, BarsQuery, Position
from ..domain.bars import INTERVALS, Bar, merge_all
from ..domain.errors import InvalidQuery
from ..domain.intervals import (
    MINUTE_NS,
    FixedWindows,
    LocalDays,
    Windows,
    ceil_start,
    level_for_boundaries,
    level_for_fixed,
)
from ..domain.timefmt import format_ns
from ..ports import BarStore

SOURCE_CHUNK = 10_000  # source bars per store query at most
HOUR_NS = 60 * MINUTE_NS
Rows = list[tuple[Bar, int]]


@dataclass(frozen=True)
class Plan:
    """How one symbol's bars of a query are read: from stored ``level`` as they are (``windows`` None), or merged
    per window from it; source bars start in [lo, hi); ``parts``: the most source bars a window holds."""

    level: str
    windows: Windows | None
    lo: int
    hi: int
    parts: int = 1


class BarPages:
    def __init__(self, bars: BarStore) -> None:
        self._bars = bars

    def __call__(self, query: BarsQuery) -> BarsPage:
        out: dict[str, Rows] = {symbol: [] for symbol in query.symbols}
        position = query.position
        first = position.index if position is not None else 0
        left = query.limit
        for index in range(first, len(query.symbols)):
            symbol = query.symbols[index]
            after = position.start_ns if position is not None and index == position.index else None
            rows, more = self._symbol_rows(symbol, query, after, left)
            out[symbol] = rows
            left -= len(rows)
            if more:
                return BarsPage(out, Position(index, rows[-1][0].start_ns))
            if left == 0:
                # Full at the end of this symbol's bars: a next page only if a later symbol has any.
                if any(self._has_bars(s, query) for s in query.symbols[index + 1:]):
                    return BarsPage(out, Position(index, rows[-1][0].start_ns))
                break
        return BarsPage(out, None)

    # -- one symbol ------------------------------------------------------------------------
    def plan(self, symbol: str, query: BarsQuery) -> Plan | None:
        """How ``symbol``'s bars are read; None when it has none in the range (known without reading them)."""
        stored = query.interval.stored
        if query.zone is None and stored is not None:
            return Plan(stored, None, query.start_ns, query.end_ns)
        windows = query.windows
        lo, hi = ceil_start(windows, query.start_ns), ceil_start(windows, query.end_ns)
        if isinstance(windows, FixedWindows):
            level = level_for_fixed(windows)
            return Plan(level, windows, lo, hi, windows.width // INTERVALS[level])
        assert isinstance(windows, LocalDays)
        # The level must tile every local day of the range; only the days that hold bars matter.
        first, _ = self._bars.query_bars(symbol, "1m", lo, hi - 1, limit=1)
        last, _ = self._bars.query_bars(symbol, "1m", lo, hi - 1, limit=1, descending=True)
        if not first or not last:
            return None
        tiling = level_for_boundaries(windows.starts(first[0][0].start_ns, last[0][0].start_ns + MINUTE_NS))
        if tiling is None:
            raise InvalidQuery(self._not_on_a_minute(windows, first[0][0].start_ns, last[0][0].start_ns, query))
        longest = windows.span() * (24 * HOUR_NS + HOUR_NS)  # a local day is at most 25 hours
        return Plan(tiling, windows, lo, hi, longest // INTERVALS[tiling] + 1)

    @staticmethod
    def _not_on_a_minute(windows: LocalDays, lo: int, hi: int, query: BarsQuery) -> str:
        odd = next((s for s in windows.starts(lo, hi + MINUTE_NS) if s % MINUTE_NS), None)
        where = f": local midnight of {windows.local_date(odd)} is {format_ns(odd)}" if odd is not None else ""
        return (f"tz {query.zone_name}: bars cannot be built for these days, their local midnight is not on a "
                f"whole minute{where}")

    def _symbol_rows(self, symbol: str, query: BarsQuery, after: int | None, want: int) -> tuple[Rows, bool]:
        """Up to ``want`` bars of ``symbol`` after ``after`` (the start of a bar of the query), and whether more
        follow."""
        plan = self.plan(symbol, query)
        if plan is None:
            return [], False
        if plan.windows is None:
            rows, next_after = self._bars.query_bars(symbol, plan.level, plan.lo, plan.hi - 1, limit=want,
                                                     after=after, descending=query.descending)
            return rows, next_after is not None
        lo, hi = plan.lo, plan.hi
        if after is not None:
            window = plan.windows.start_of(after)
            if query.descending:
                hi = min(hi, window)
            else:
                lo = max(lo, plan.windows.end_of(window))
        return self._merged(symbol, query, plan, lo, hi, want)

    def _merged(self, symbol: str, query: BarsQuery, plan: Plan, lo: int, hi: int, want: int) -> tuple[Rows, bool]:
        assert plan.windows is not None
        windows = plan.windows
        groups: list[tuple[int, Rows]] = []
        window_lo = window_hi = 0
        cursor: int | None = None
        while True:
            chunk = min(SOURCE_CHUNK, plan.parts * (want - len(groups) + 1) + 1)
            rows, cursor = self._bars.query_bars(symbol, plan.level, lo, hi - 1, limit=chunk, after=cursor,
                                                 descending=query.descending)
            for bar, revision in rows:
                start = bar.start_ns
                if not groups or not window_lo <= start < window_hi:
                    if len(groups) == want:
                        return self._built(groups, query), True
                    window_lo = windows.start_of(start)
                    window_hi = windows.end_of(window_lo)
                    groups.append((window_lo, []))
                groups[-1][1].append((bar, revision))
            if cursor is None:
                return self._built(groups, query), False

    @staticmethod
    def _built(groups: list[tuple[int, Rows]], query: BarsQuery) -> Rows:
        out: Rows = []
        for start, parts in groups:
            bar = merge_all((part for part, _ in parts), query.interval.text, start)
            assert bar is not None
            out.append((bar, sum(revision for _, revision in parts)))
        return out

    def _has_bars(self, symbol: str, query: BarsQuery) -> bool:
        plan = self.plan(symbol, query)
        if plan is None:
            return False
        rows, _ = self._bars.query_bars(symbol, plan.level, plan.lo, plan.hi - 1, limit=1)
        return bool(rows)
