"""Which sources of partial aggregates count, and making bars forget the ones that stop counting.

A source is one chunk of one ingestion. An object version counts only while no newer version of its key
exists and its scan did not fail; a request counts unless its queueing failed (its client got a 503 and will
retry, perhaps without an Idempotency-Key; a retry under the same key revives it). Which sources count is
decided when bars are built, from the ingestion records and from S3 itself, so racing uploads cannot leave
a replaced version counted.

What stops counting must leave the bars it was counted in. Whoever changes a source's standing does so
first, then makes the aggregator revisit the windows it knows the source is in: a request knows every
window of its body; an object version knows the windows of its chunks' stored results. A chunk whose result
is stored after that read is the processor's to revisit: it reads its ingestion's standing after storing
the result (``stopped_counting``), so of the two reads, one sees the other's write.

A revisit counts a withdrawal on each symbol (LeaseStore.note_withdrawals) before it writes the marks. So an
aggregator may keep what it learnt about requests that count from one round to the next, for as long as the
symbol's count is unchanged: a round that lists a revisit's mark reads the count after that listing, and
finds it changed. Only requests qualify (``lasting``): a request's standing is its record alone, and it only
ever stops counting through a revisit. (A request that stopped counting can count again, retried under its
Idempotency-Key: answers "does not count" are never kept.) An object version's standing also depends on S3,
where a newer version may appear before its ingestion revisits anything: it is read afresh in every round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..domain.ingestion import ChunkResult, Ingestion, Source, Status, ingestion_of, is_request, real_version
from ..ports import DirtyWindowStore, IngestionStore, LeaseStore, ObjectStore, PartialStore


class Sources:
    def __init__(self, ingestions: IngestionStore, partials: PartialStore, dirty: DirtyWindowStore,
                 leases: LeaseStore, objects: ObjectStore, new_token: Callable[[], str]) -> None:
        self._ingestions = ingestions
        self._partials = partials
        self._dirty = dirty
        self._leases = leases
        self._objects = objects
        self._new_token = new_token

    def superseded(self, ingestion: Ingestion, latest: dict[tuple[str, str], str | None] | None = None) -> bool:
        """Whether a newer version of the ingestion's object key exists (then it never counts). ``latest`` keeps
        each (bucket, key)'s newest version for a caller that asks about several versions of a key."""
        version = real_version(ingestion.object.version_id) if ingestion.object else None
        if ingestion.object is None or version is None:
            return False
        place = (ingestion.object.bucket, ingestion.object.key)
        known = {} if latest is None else latest
        if place not in known:
            known[place] = self._objects.latest_version(*place)
        newest = known[place]
        return newest is not None and newest != version

    def counts(self, source: str, known: dict[str, bool]) -> bool:
        """Whether a partial's source counts; ``known`` caches the answer per ingestion for one run."""
        ingestion_id = ingestion_of(source)
        if ingestion_id not in known:
            known[ingestion_id] = self._verdict(self._ingestions.get_ingestion_meta(ingestion_id))
        return known[ingestion_id]

    def learn(self, sources: Iterable[str], known: dict[str, bool]) -> None:
        """Find out at once (batched reads) whether the ingestions of these sources count, into ``known``."""
        wanted = {ingestion_of(source) for source in sources} - set(known)
        if not wanted:
            return
        found = self._ingestions.get_ingestion_metas(wanted)
        for ingestion_id in wanted:
            known[ingestion_id] = self._verdict(found.get(ingestion_id))

    def stopped_counting(self, ingestion_ids: Iterable[str]) -> set[str]:
        """Of these ingestions, the ones that do not count (read now, not from any run's answers)."""
        known: dict[str, bool] = {}
        self.learn(ingestion_ids, known)
        return {ingestion_id for ingestion_id, counts in known.items() if not counts}

    def _verdict(self, ingestion: Ingestion | None) -> bool:
        if ingestion is None:
            return True
        if ingestion.source is Source.S3:
            return ingestion.status is not Status.FAILED and not self.superseded(ingestion)
        return ingestion.status is not Status.FAILED

    def windows_of(self, ingestion_id: str) -> set[tuple[str, int]]:
        """The (symbol, minute) windows holding partials of the ingestion's processed chunks."""
        windows: set[tuple[str, int]] = set()
        _, chunks = self._ingestions.get_ingestion(ingestion_id)
        for chunk in chunks:
            if not isinstance(chunk, ChunkResult):
                continue
            for symbol, (lo, hi) in chunk.windows.items():
                windows.update((symbol, bar.start_ns) for source, bar in self._partials.query_partials(symbol, lo, hi)
                               if ingestion_of(source) == ingestion_id)
        return windows

    @staticmethod
    def lasting(ingestion_id: str) -> bool:
        """Whether an answer that the ingestion counts may be kept while its symbol's withdrawals stay the same."""
        return is_request(ingestion_id)

    def revisit(self, windows: set[tuple[str, int]], token: str | None = None) -> None:
        """Make the aggregator rebuild these windows, whose sources' standing changed: a withdrawal is noted on
        their symbols first, then they are marked dirty (under ``token``, else a new one)."""
        if windows:
            self._leases.note_withdrawals({symbol for symbol, _ in windows})
            self._dirty.mark_dirty(windows, token or self._new_token())

    def withdraw(self, ingestion_id: str) -> None:
        """The ingestion stopped counting: rebuild whatever its processed chunks were counted in."""
        self.revisit(self.windows_of(ingestion_id))
