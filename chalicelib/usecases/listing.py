"""Finding ingestions without their ids: the ingestions of an object key, or those received since a time, each
summed up with the status GET /ingestions/{id} would answer at the same moment.

A page examines at most ``limit`` ingestions (each costs the reads of its record and chunk results, and for a
file one S3 request per key for whether a newer version replaced it); a status filter then keeps those with
that status, so a filtered page may hold fewer, even none, while more follow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..domain.errors import InvalidQuery
from ..domain.ingestion import ChunkRecord, Ingestion, Source, Status, view
from ..domain.listing import IngestionQuery, Position
from ..domain.text import show
from ..ports import IngestionStore
from ..settings import Settings
from .common import Clock
from .sources import Sources


@dataclass(frozen=True)
class IngestionListing:
    items: list[dict[str, Any]]  # summaries, newest first
    more: Position | None  # where the next page starts (exclusive); None when nothing is left


class ListIngestions:
    def __init__(self, ingestions: IngestionStore, sources: Sources, settings: Settings,
                 clock: Clock = time.time_ns) -> None:
        self._ingestions = ingestions
        self._sources = sources
        self._settings = settings
        self._clock = clock

    def __call__(self, query: IngestionQuery) -> IngestionListing:
        refs, more = self._of_key(query) if query.key is not None else self._by_time(query)
        now = self._clock()
        latest: dict[tuple[str, str], str | None] = {}  # each key's newest version, asked of S3 once per page
        items = []
        for received_ns, ingestion_id in refs:
            ingestion, chunks = self._ingestions.get_ingestion(ingestion_id)
            # An entry whose record was never written (a write that failed part-way) is no ingestion; one of
            # another receipt time than its record's is not this ingestion's place in the order.
            if ingestion is None or ingestion.received_ns != received_ns:
                continue
            summary = self._summary(ingestion, chunks, query.status, now, latest)
            if summary is not None:
                items.append(summary)
        return IngestionListing(items, more)

    def _by_time(self, query: IngestionQuery) -> tuple[list[Position], Position | None]:
        page = self._ingestions.list_ingestions(query.sources, query.since_ns or 0, query.before, query.limit)
        return page.refs, page.more

    def _of_key(self, query: IngestionQuery) -> tuple[list[Position], Position | None]:
        """The key's ingestions in the newest-first order. Every one is in one index item, so ordering them
        costs one batched read of their records (100 per request)."""
        assert query.key is not None
        bucket = self._settings.bucket_name
        if query.bucket is not None and query.bucket != bucket:
            raise InvalidQuery(f"bucket must be {bucket}, the stage's bucket (the only one it ingests), "
                               f"got {show(query.bucket)}")
        records = self._ingestions.get_ingestion_metas(self._ingestions.object_ingestion_ids(bucket, query.key))
        since = query.since_ns or 0
        refs = sorted(((r.received_ns, r.ingestion_id) for r in records.values() if r.received_ns >= since
                       and (query.before is None or (r.received_ns, r.ingestion_id) < query.before)), reverse=True)
        page = refs[: query.limit]
        return page, (page[-1] if len(refs) > query.limit else None)

    def _summary(self, ingestion: Ingestion, chunks: list[ChunkRecord], wanted: Status | None, now: int,
                 latest: dict[tuple[str, str], str | None]) -> dict[str, Any] | None:
        """The ingestion's summary, None when its status is not ``wanted``. Whether a newer version replaced a
        file is asked of S3 only when the answer can change whether it is listed."""
        stalled_after = self._settings.stalled_after_seconds
        out = view(ingestion, chunks, False, now, stalled_after, 0)
        replaceable = ingestion.source is Source.S3 and ingestion.status is not Status.SUPERSEDED
        if wanted is not None and out["status"] != wanted.value and not (wanted is Status.SUPERSEDED and replaceable):
            return None  # superseded or not, its status is another
        if replaceable and self._sources.superseded(ingestion, latest):
            out = view(ingestion, chunks, True, now, stalled_after, 0)
        if wanted is not None and out["status"] != wanted.value:
            return None
        summary = {key: out[key] for key in ("ingestion_id", "source", "status", "received_at", "accepted",
                                              "rejected")}
        summary["format"] = ingestion.format
        if "object" in out:
            summary["object"] = out["object"]
        return summary
