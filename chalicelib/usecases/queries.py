"""The read side: a page of bars, what became of an ingestion, the symbols there are."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..domain.bars import Bar
from ..domain.errors import NotFound
from ..domain.ingestion import INGESTION_ID_RE, Source, Status, view
from ..domain.queries import BarQuery
from ..domain.text import show
from ..ports import BarStore, IngestionStore, SymbolStore
from ..settings import Settings
from .common import Clock
from .sources import Sources


@dataclass(frozen=True)
class BarPage:
    bars: list[tuple[Bar, int]]  # with their revisions
    next_after: int | None  # the start of the last bar when more follow


class ReadBars:
    def __init__(self, bars: BarStore) -> None:
        self._bars = bars

    def __call__(self, query: BarQuery) -> BarPage:
        rows, next_after = self._bars.query_bars(query.symbol, query.interval, query.start_ns, query.end_ns - 1,
                                                 query.limit, query.after)
        return BarPage(rows, next_after)


class IngestionStatus:
    def __init__(self, ingestions: IngestionStore, sources: Sources, settings: Settings,
                 clock: Clock = time.time_ns) -> None:
        self._ingestions = ingestions
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
        return view(ingestion, chunks, superseded, self._clock(),
                    self._settings.stalled_after_seconds, self._settings.max_errors)


class ListSymbols:
    def __init__(self, symbols: SymbolStore) -> None:
        self._symbols = symbols

    def __call__(self) -> list[tuple[str, int]]:
        """Every symbol with the start of its latest 1m bar, by symbol."""
        return sorted(self._symbols.list_symbols())
