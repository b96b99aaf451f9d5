"""DataAggregator: rebuild the bars of dirty windows, 1m from partials and each coarser interval from the next
finer one; a published bar that changes gets its revision bumped, and BarsRevised tells consumers which.

Only the sources that count (see sources.py) are merged.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..domain.bars import INTERVALS, PARENT, Bar, merge_all, window_start
from ..domain.timefmt import format_ns
from ..observability import logger
from ..ports import BarStore, DirtyWindowStore, EventPublisher, PartialStore, SymbolStore
from ..schemas import BARS_REVISED, BarsRevisedDetail, RevisedBar
from ..settings import Settings
from .common import Clock, Metric, no_metric
from .sources import Sources

MAX_REVISIONS_LISTED = 500
# Windows of one symbol closer than this are read with one query.
RANGE_GAP_NS = INTERVALS["1h"]


def _ranges(points: Sequence[int], gap: int) -> Iterator[tuple[int, int]]:
    """Group sorted points into [lo, hi] ranges whose neighbours are at most ``gap`` apart."""
    if not points:
        return
    lo = hi = points[0]
    for p in points[1:]:
        if p - hi > gap:
            yield lo, hi
            lo = p
        hi = p
    yield lo, hi


class Aggregate:
    def __init__(self, dirty: DirtyWindowStore, partials: PartialStore, bars: BarStore, symbols: SymbolStore,
                 sources: Sources, events: EventPublisher, settings: Settings, clock: Clock = time.time_ns,
                 metric: Metric = no_metric) -> None:
        self._dirty = dirty
        self._partials = partials
        self._bars = bars
        self._symbols = symbols
        self._sources = sources
        self._events = events
        self._settings = settings
        self._clock = clock
        self._metric = metric

    def __call__(self, symbols: Iterable[str] | None = None) -> dict[str, int]:
        """Rebuild the bars of every dirty window (of ``symbols``, or all), then clear what was done."""
        dirty = self._dirty.list_dirty(symbols, self._settings.max_windows_per_run)
        by_symbol: dict[str, set[int]] = defaultdict(set)
        for symbol, minute, _ in dirty:
            by_symbol[symbol].add(minute)
        written = 0
        revised: list[dict[str, Any]] = []
        live: dict[str, bool] = {}
        for symbol, minutes in sorted(by_symbol.items()):
            written += self._aggregate_symbol(symbol, sorted(minutes), revised, live)
        cleared = self._dirty.clear_dirty(dirty)
        if revised:
            # Bars that had been published changed (late or replaced ticks): tell consumers which.
            try:
                detail = BarsRevisedDetail(count=len(revised), bars=[RevisedBar(**bar) for bar in
                                                                     revised[:MAX_REVISIONS_LISTED]])
                self._events.publish(BARS_REVISED, detail.model_dump(mode="json"))
            except Exception:
                logger.exception("could not publish BarsRevised")
        self._metric("BarsWritten", written)
        self._metric("BarsRevised", len(revised))
        summary = {"windows": len(dirty), "symbols": len(by_symbol), "bars_written": written,
                   "bars_revised": len(revised), "still_dirty": len(dirty) - cleared}
        if dirty:
            logger.info("aggregated", extra=summary)
        return summary

    def _aggregate_symbol(
        self, symbol: str, minutes: list[int], revised: list[dict[str, Any]], live: dict[str, bool]
    ) -> int:
        wanted = set(minutes)
        fresh: dict[int, Bar | None] = {m: None for m in minutes}
        grouped: dict[int, list[Bar]] = defaultdict(list)
        for lo, hi in _ranges(minutes, RANGE_GAP_NS):
            for source, partial in self._partials.query_partials(symbol, lo, hi):
                if partial.start_ns in wanted and self._sources.counts(source, live):
                    grouped[partial.start_ns].append(partial)
        for minute, parts in grouped.items():
            fresh[minute] = merge_all(parts, "1m", minute)
        written = self._write_level(symbol, "1m", fresh, revised)
        latest = max((m for m, b in fresh.items() if b is not None), default=None)
        starts = minutes
        for interval in ("5m", "15m", "1h", "1d"):
            child, width = PARENT[interval], INTERVALS[interval]
            starts = sorted({window_start(s, interval) for s in starts})
            wanted = set(starts)
            children: dict[int, list[Bar]] = defaultdict(list)
            for lo, hi in _ranges(starts, max(RANGE_GAP_NS, 2 * width)):
                rows, _ = self._bars.query_bars(symbol, child, lo, hi + width - 1)
                for bar, _rev in rows:
                    start = window_start(bar.start_ns, interval)
                    if start in wanted:
                        children[start].append(bar)
            level = {s: merge_all(children.get(s, []), interval, s) for s in starts}
            written += self._write_level(symbol, interval, level, revised)
        if latest is not None:
            self._symbols.update_symbol(symbol, latest)
        return written

    def _write_level(
        self, symbol: str, interval: str, fresh: dict[int, Bar | None], revised: list[dict[str, Any]]
    ) -> int:
        """Write bars that changed (bumping their revision) and delete bars whose window is now empty.

        Every change to a bar that existed already is appended to ``revised``.
        """
        if not fresh:
            return 0
        starts = sorted(fresh)
        existing: dict[int, tuple[Bar, int]] = {}
        for lo, hi in _ranges(starts, max(RANGE_GAP_NS, 2 * INTERVALS[interval])):
            rows, _ = self._bars.query_bars(symbol, interval, lo, hi)
            existing.update({bar.start_ns: (bar, rev) for bar, rev in rows})
        writes: list[tuple[Bar, int]] = []
        deletes: list[tuple[str, str, int]] = []
        for start in starts:
            bar, old = fresh[start], existing.get(start)
            if bar is None:
                if old is not None:
                    deletes.append((symbol, interval, start))
                    revised.append({"symbol": symbol, "interval": interval, "start": format_ns(start),
                                    "revision": None})
            elif old is None:
                writes.append((bar, 1))
            elif not bar.same_values(old[0]) or bar.open_key != old[0].open_key or bar.close_key != old[0].close_key:
                writes.append((bar, old[1] + 1))
                revised.append({"symbol": symbol, "interval": interval, "start": format_ns(start),
                                "revision": old[1] + 1})
        if writes:
            self._bars.put_bars(writes, self._clock())
        if deletes:
            self._bars.delete_bars(deletes)
        return len(writes)
