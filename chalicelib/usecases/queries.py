"""The read side: a page of bars, what became of an ingestion, the symbols there are."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..domain.bar_requests import BarsPage, BarsQuery
from ..domain.bars import Bar
from ..domain.errors import NotFound
from ..domain.ingestion import IN_PROGRESS, INGESTION_ID_RE, ChunkRecord, ChunkResult, Source, Status, view
from ..domain.queries import BarQuery
from ..domain.text import show
from ..ports import BarStore, DirtyWindowStore, IngestionStore, SymbolStore
from ..settings import Settings
from .bar_pages import BarPages
from .common import Clock
from .sources import Sources

IN_PROGRESS_VALUES = frozenset(status.value for status in IN_PROGRESS)
# Above this many symbols, the bars check lists the symbols with marks first (one query per shard).
BARS_CHECK_PER_SYMBOL = 32


@dataclass(frozen=True)
class BarPage:
    bars: list[tuple[Bar, int]]  # with their revisions
    next_after: int | None  # the start of the last bar when more follow


class ReadBars:
    def __init__(self, bars: BarStore) -> None:
        self._bars = bars
        self._pages = BarPages(bars)

    def __call__(self, query: BarQuery) -> BarPage:
        rows, next_after = self._bars.query_bars(query.symbol, query.interval, query.start_ns, query.end_ns - 1,
                                                 query.limit, query.after)
        return BarPage(rows, next_after)

    def page(self, query: BarsQuery) -> BarsPage:
        """A page of GET /bars: any interval, one or more symbols, either direction (see bar_pages.py)."""
        return self._pages(query)


class IngestionStatus:
    def __init__(self, ingestions: IngestionStore, dirty: DirtyWindowStore, sources: Sources, settings: Settings,
                 clock: Clock = time.time_ns) -> None:
        self._ingestions = ingestions
        self._dirty = dirty
        self._sources = sources
        self._settings = settings
        self._clock = clock

    def __call__(self, ingestion_id: str) -> dict[str, Any]:
        """What GET /ingestions/{id} answers (see domain.ingestion.view)."""
        if not INGESTION_ID_RE.fullmatch(ingestion_id):
            raise NotFound(f"no ingestion with id {show(ingestion_id, 90)}")
        ingestion, chunks = self._ingestions.get_ingestion(ingestion_id)
        if ingestion is None:
            raise NotFound(f"no ingestion with id {ingestion_id!r}")
        # Only a file whose status does not say so already may have been replaced (one S3 request).
        superseded = (ingestion.source is Source.S3 and ingestion.status is not Status.SUPERSEDED
                      and self._sources.superseded(ingestion))
        out = view(ingestion, chunks, superseded, self._clock(),
                   self._settings.stalled_after_seconds, self._settings.max_errors)
        out["bars"] = self._bars_state(out["status"], chunks)
        return out

    def _bars_state(self, status: str, chunks: list[ChunkRecord]) -> str:
        """``ready`` once every window the ingestion's ticks touched was aggregated since they were processed
        (no dirty mark of their symbols covers them: the processor marks before it records a chunk, and the
        aggregator deletes a mark only after writing the bars); ``pending`` before; ``none`` when no bars
        will come from it (rejected, failed, superseded, stalled, gone)."""
        if status in IN_PROGRESS_VALUES:
            return "pending"
        if status != Status.PROCESSED.value:
            return "none"
        spans: dict[str, tuple[int, int]] = {}
        for chunk in chunks:
            if isinstance(chunk, ChunkResult):
                for symbol, (lo, hi) in chunk.windows.items():
                    old = spans.get(symbol, (lo, hi))
                    spans[symbol] = (min(old[0], lo), max(old[1], hi))
        if len(spans) > BARS_CHECK_PER_SYMBOL:
            dirty = set(self._dirty.dirty_symbols())  # one query per shard instead of one per symbol
            spans = {s: span for s, span in spans.items() if s in dirty}
        pending = any(self._dirty.any_dirty(symbol, lo, hi) for symbol, (lo, hi) in sorted(spans.items()))
        return "pending" if pending else "ready"


class ListSymbols:
    def __init__(self, symbols: SymbolStore) -> None:
        self._symbols = symbols

    def __call__(self) -> list[tuple[str, int]]:
        """Every symbol with the start of its latest 1m bar, by symbol."""
        return sorted(self._symbols.list_symbols())
