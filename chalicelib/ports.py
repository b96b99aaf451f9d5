"""What the use cases need from the outside world, one small port per kind of record or service.

Adapters (chalicelib/adapters: one DynamoDB store implements every store port) and the in-memory fakes of the
tests implement these; tests/contract runs one suite of tests against both stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .domain.bars import INTERVALS, Bar
from .domain.ingestion import ChunkFailure, ChunkRecord, ChunkResult, IdempotencyClaim, Ingestion, Source
from .domain.listing import IndexPage, Position

# A dirty window as the store hands it out: (symbol, minute start, token of the mark it was read from).
DirtyWindow = tuple[str, int, str]
HOUR_NS = INTERVALS["1h"]  # a mark holds the dirty minutes of one (symbol, hour)
GET_BARS_LIMIT = 100  # keys per BarStore.get_bars (DynamoDB's BatchGetItem takes 100)


def dirty_marks(entries: Iterable[DirtyWindow]) -> dict[tuple[str, int, str], int]:
    """Dirty windows by the (symbol, hour, token) of the mark that holds them, with their count of distinct
    minutes: what a store deletes as one (see DirtyWindowStore)."""
    marks: dict[tuple[str, int, str], set[int]] = {}
    for symbol, minute, token in entries:
        marks.setdefault((symbol, minute - minute % HOUR_NS, token), set()).add(minute)
    return {key: len(minutes) for key, minutes in marks.items()}


# A symbol whose change in a processed batch spans more hours than this is not announced (see announced_marks).
ANNOUNCED_HOURS = 3


def announced_marks(changes: Iterable[tuple[str, int, int]], tokens: Sequence[str]) -> list[tuple[str, int, str]]:
    """The marks (symbol, hour, token) a processed batch announced: for each changed symbol and its minutes
    [first, last], the mark of each hour under each of the batch's tokens. Not every one need exist (an hour
    without ticks in between), but each that was written is among them. A symbol whose change spans more than
    ANNOUNCED_HOURS hours is left out: an aggregator run looks at it as at any other."""
    marks: list[tuple[str, int, str]] = []
    for symbol, first, last in changes:
        hours = range(first - first % HOUR_NS, last + 1, HOUR_NS)
        if len(hours) <= ANNOUNCED_HOURS:
            marks += [(symbol, hour, token) for hour in hours for token in tokens]
    return marks


@dataclass(frozen=True)
class ObjectInfo:
    """What an S3 HEAD tells about an object."""

    size: int
    content_type: str | None
    metadata: dict[str, str]
    version_id: str | None
    etag: str


@dataclass(frozen=True)
class ListedObject:
    """The current version of an object, as a listing tells it."""

    key: str
    version_id: str | None
    size: int
    last_modified_ns: int
    etag: str


@dataclass(frozen=True)
class DeadLetter:
    """A message received from the dead-letter queue; ``receipt`` releases or deletes it."""

    message_id: str
    body: str
    receive_count: int
    sent_ns: int | None
    receipt: str


class IngestionStore(Protocol):
    def create_ingestion(self, ingestion: Ingestion) -> Ingestion | None:
        """Store a new ingestion; if one with its id exists, store nothing and return the existing one."""
        ...

    def put_ingestion(self, ingestion: Ingestion) -> None: ...
    def get_ingestion_meta(self, ingestion_id: str) -> Ingestion | None: ...
    def get_ingestion_metas(self, ingestion_ids: Iterable[str]) -> dict[str, Ingestion]:
        """The ingestion records of these ids (strongly consistent, in as few requests as the store allows);
        unknown ids are left out."""
        ...

    def get_ingestion(self, ingestion_id: str) -> tuple[Ingestion | None, list[ChunkRecord]]:
        """The ingestion (None if unknown) and its chunks' records, in chunk order."""
        ...

    def put_chunk_result(self, ingestion_id: str, result: ChunkResult) -> None: ...
    def put_chunk_results(self, results: Sequence[tuple[str, ChunkResult]]) -> None:
        """Several chunks' results, of one ingestion or several, in as few requests as the store allows (the same
        chunk twice: the last one stands)."""
        ...

    def record_chunk_failure(self, ingestion_id: str, failure: ChunkFailure) -> bool:
        """Store a chunk's failure unless the chunk was processed; returns whether it was stored."""
        ...

    def add_object_ingestion(self, bucket: str, key: str, ingestion_id: str) -> set[str]:
        """Record an ingestion of an object key; return every ingestion recorded for that key."""
        ...

    def object_ingestion_ids(self, bucket: str, key: str) -> set[str]:
        """Every ingestion recorded for an object key (strongly consistent); empty when none is."""
        ...

    def list_ingestions(self, sources: Sequence[Source], since_ns: int, before: Position | None,
                        limit: int) -> IndexPage:
        """The time index: (received_ns, id) of the ingestions of these sources received in [since_ns, before),
        newest first, as domain.listing.walk_index walks it (strongly consistent). create_ingestion and
        put_ingestion index every ingestion they store under its received_ns, once however often it is stored."""
        ...


class IdempotencyStore(Protocol):
    def claim_idempotency_key(self, key: str, claim: IdempotencyClaim, expires_at: int) -> IdempotencyClaim | None:
        """Record ``claim`` under ``key`` unless a live claim exists: None when this call claimed the key,
        else the claim that holds it (read in the same request that lost the race)."""
        ...

    def complete_idempotency_key(self, key: str, claim: IdempotencyClaim, expires_at: int) -> None: ...


class PartialStore(Protocol):
    def put_partials(self, source: str, partials: Iterable[Bar]) -> int: ...
    def put_partials_of(self, sources: Sequence[tuple[str, Iterable[Bar]]]) -> int:
        """``put_partials`` of several sources in as few requests as the store allows (a source given twice: the
        last one stands); returns the partials stored."""
        ...

    def query_partials(self, symbol: str, first_minute: int, last_minute: int) -> list[tuple[str, Bar]]:
        """Partials of ``symbol`` in the minutes [first, last], each with its source id."""
        ...

    def list_partial_minutes(self, symbol: str, first_minute: int, last_minute: int) -> list[int]: ...


class DirtyWindowStore(Protocol):
    """Windows to rebuild. Each ``mark_dirty`` call stores marks of its own (one per symbol and hour, under its
    token) that nothing changes afterwards; ``clear_dirty`` deletes exactly the marks that were read. A window
    marked while a run works is therefore left dirty, and the next run redoes only the windows it names."""

    def mark_dirty(self, windows: Iterable[tuple[str, int]], token: str) -> None: ...
    def list_dirty(self, symbols: Iterable[str] | None, limit: int) -> list[DirtyWindow]:
        """Dirty minutes, whole marks at a time, sorted, stopping once ``limit`` entries are reached. A minute
        marked by several marks is listed once per mark."""
        ...

    def clear_dirty(self, entries: Iterable[DirtyWindow]) -> int:
        """Delete the marks these entries came from; returns how many distinct entries that cleared."""
        ...

    def dirty_symbols(self) -> list[str]:
        """Every symbol with a dirty window, sorted."""
        ...

    def any_dirty(self, symbol: str, first_minute: int, last_minute: int) -> bool:
        """Whether a mark of ``symbol`` covers an hour that overlaps [first_minute, last_minute]."""
        ...

    def still_marked(self, marks: Iterable[tuple[str, int, str]]) -> set[str]:
        """The symbols of which one of these marks, each (symbol, hour start, token), still exists; strongly
        consistent (a mark is deleted only after the run that read it rebuilt its windows)."""
        ...


@dataclass(frozen=True)
class Lease:
    """A run's exclusive right to rebuild one symbol's bars; ``token`` is unique to the acquisition and
    fences every bar write (a write under a lease that passed to another run is refused)."""

    symbol: str
    token: str
    # When the symbol's last round started (epoch ns), as the previous holder left it on release.
    next_round_ns: int | None = field(default=None, compare=False)
    # How many withdrawals were noted on the symbol (note_withdrawals) when the lease was taken or last renewed.
    withdrawals: int = field(default=0, compare=False)


class LeaseStore(Protocol):
    def acquire_lease(self, symbol: str, token: str, now_ns: int, ttl_ns: int, ask: bool = True) -> Lease | None:
        """Take the symbol's lease unless another run holds it unexpired. None when one does: that run is then
        asked to look for work again when it releases the lease (see release_lease), unless ``ask`` is False.
        TransientError when the lease kept changing hands and neither could be done."""
        ...

    def renew_lease(self, lease: Lease, now_ns: int, ttl_ns: int) -> Lease | None:
        """Extend the lease: the lease with the symbol's withdrawals as of now; None when it is no longer this
        run's."""
        ...

    def note_withdrawals(self, symbols: Iterable[str]) -> None:
        """Count one withdrawal on each symbol (a source in its bars stopped counting); the count shows on the
        symbol's next lease, taken or renewed. It never goes down."""
        ...

    def release_lease(self, lease: Lease, next_round_ns: int | None = None) -> bool:
        """Give the lease up (if still held); True when another run asked for it meanwhile. ``next_round_ns``
        (the earliest the symbol's next round should start) is kept for the next holder (Lease.next_round_ns)."""
        ...


class BarStore(Protocol):
    def query_bars(
        self, symbol: str, interval: str, first_start: int, last_start: int,
        limit: int | None = None, after: int | None = None, descending: bool = False,
    ) -> tuple[list[tuple[Bar, int]], int | None]:
        """Bars (with revision) starting in [first_start, last_start], oldest first (newest first when
        ``descending``), after ``after`` in that order (starting later, or earlier when descending), at most
        ``limit``, and the start of the last one returned when more follow. Strongly consistent; reads no more
        than ``limit`` + 1 bars."""
        ...

    def get_bars(self, symbol: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], tuple[Bar, int]]:
        """The stored bars (with revision) of these (interval, start) keys, at most GET_BARS_LIMIT of them;
        strongly consistent. Keys without a bar are left out."""
        ...

    def write_bars(self, lease: Lease, puts: Sequence[tuple[Bar, int]], deletes: Sequence[tuple[str, int]],
                   updated_ns: int, latest_ns: int | None = None, cleared: Iterable[DirtyWindow] = ()) -> None:
        """Store bars (with revision) of ``lease.symbol`` and delete (interval, start) bars, only while the lease
        is this run's: LeaseLost otherwise. Writes are grouped; a group is stored whole or not at all, and the
        groups in order. With them, fenced alike and after every bar (so never unless every bar was stored): the
        symbol's latest bar start raised to ``latest_ns`` (as SymbolStore.update_symbol), and the marks of
        ``cleared`` deleted (as DirtyWindowStore.clear_dirty)."""
        ...


class SymbolStore(Protocol):
    def update_symbol(self, symbol: str, latest_bar_ns: int) -> None: ...
    def list_symbols(self) -> list[tuple[str, int]]: ...


class TickQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> int: ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectInfo:
        """NotFound when the object version does not exist (any more)."""
        ...

    def stream(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]: ...
    def read_range(self, bucket: str, key: str, version_id: str | None, start: int, end: int) -> bytes: ...
    def read_all(self, bucket: str, key: str, version_id: str | None) -> bytes: ...
    def latest_version(self, bucket: str, key: str) -> str | None:
        """The id of the key's newest version that is not a delete marker: a key deleted (its current version a
        delete marker) still names the newest version under the marker. None for an unversioned object, for the
        "null" version, and for a key with no version. Called per ingestion and per counted file source, so
        its cost must not grow with the bucket."""
        ...


class ObjectLister(Protocol):
    def current_objects(self, bucket: str, prefix: str) -> Iterator[ListedObject]: ...


class DeadLetterQueue(Protocol):
    def receive(self, max_messages: int, hold_seconds: int) -> list[DeadLetter]: ...
    def release(self, letters: Sequence[DeadLetter]) -> None: ...
    def delete(self, letters: Sequence[DeadLetter]) -> None: ...
    def approximate_depth(self) -> int: ...
