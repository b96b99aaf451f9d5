"""In-memory twins of the ports in chalicelib/ports.py, for unit tests.

These are small real implementations, not mocks: they store what they are given and answer queries
the way the AWS adapters in chalicelib/adapters/ do (same key layout semantics, same overwrite rules,
same conditional writes), so tests assert on their state.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from chalicelib.bootstrap import UseCases
from chalicelib.domain.bars import Bar
from chalicelib.domain.errors import LeaseLost, NotFound, QueueRejected
from chalicelib.domain.ingestion import (
    NULL_VERSION,
    ChunkFailure,
    ChunkRecord,
    ChunkResult,
    IdempotencyClaim,
    Ingestion,
    Source,
    chunk_from_doc,
    real_version,
)
from chalicelib.domain.listing import IndexPage, Position, day_of, walk_index
from chalicelib.entrypoints.api import read_bars
from chalicelib.ports import (
    GET_BARS_LIMIT,
    HOUR_NS,
    DeadLetter,
    DirtyWindow,
    Lease,
    ListedObject,
    ObjectInfo,
    dirty_marks,
)

SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_MESSAGE_BYTES = 256 * 1024


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    """Documents go through JSON like in DynamoDB, so a non-serialisable doc fails here too."""
    return json.loads(json.dumps(doc))


class MemoryStateStore:
    """Every store port of chalicelib/ports.py, in dicts, under the DynamoDB store's rules: records go through
    JSON, conditional writes win or lose as in DynamoDB, dirty marks are kept per (symbol, hour, mark) and
    handed out whole marks at a time, bar writes are fenced by the symbol's lease. tests/contract runs the same
    suite against both."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self.ingestions: dict[str, dict[str, Any]] = {}  # id -> Ingestion.to_doc()
        self.chunk_results: dict[str, dict[int, dict[str, Any]]] = {}
        self.idempotency: dict[str, tuple[dict[str, Any], int]] = {}
        # (symbol, minute start, source) -> partial; a re-put of the same source overwrites.
        self.partials: dict[tuple[str, int, str], Bar] = {}
        self.object_ingestions: dict[tuple[str, str], set[str]] = {}
        # The time index: (source, received_ns, ingestion id) of every ingestion stored.
        self.ingestion_index: set[tuple[str, int, str]] = set()
        # (symbol, interval, start) -> (bar, revision, updated_ns)
        self.bars: dict[tuple[str, str, int], tuple[Bar, int, int]] = {}
        # (symbol, hour start, token of the mark) -> dirty minutes
        self.dirty: dict[tuple[str, int, str], set[int]] = {}
        self.leases: dict[str, tuple[str, int]] = {}  # symbol -> (token, expires ns)
        self.lease_wanted: set[str] = set()  # leased symbols another run asked for
        self.lease_next_round: dict[str, int] = {}  # symbol -> the earliest its next round starts, kept on release
        self.withdrawals: dict[str, int] = {}  # symbol -> withdrawals noted on it
        self.symbols: dict[str, int] = {}
        self._lock = threading.RLock()

    # -- ingestions ------------------------------------------------------------------------
    def create_ingestion(self, ingestion: Ingestion) -> Ingestion | None:
        if ingestion.ingestion_id in self.ingestions:
            return Ingestion.from_doc(_copy(self.ingestions[ingestion.ingestion_id]))
        self.ingestions[ingestion.ingestion_id] = _copy(ingestion.to_doc())
        self.ingestion_index.add((ingestion.source.value, ingestion.received_ns, ingestion.ingestion_id))
        return None

    def put_ingestion(self, ingestion: Ingestion) -> None:
        self.ingestions[ingestion.ingestion_id] = _copy(ingestion.to_doc())
        self.ingestion_index.add((ingestion.source.value, ingestion.received_ns, ingestion.ingestion_id))

    def put_chunk_result(self, ingestion_id: str, result: ChunkResult) -> None:
        self.chunk_results.setdefault(ingestion_id, {})[result.chunk] = _copy(result.to_doc())

    def put_chunk_results(self, results: Sequence[tuple[str, ChunkResult]]) -> None:
        for ingestion_id, result in results:
            self.put_chunk_result(ingestion_id, result)

    def record_chunk_failure(self, ingestion_id: str, failure: ChunkFailure) -> bool:
        existing = self.chunk_results.get(ingestion_id, {}).get(failure.chunk)
        if existing is not None and "state" not in existing:
            return False  # processed: a failure of a redundant delivery does not replace its result
        self.chunk_results.setdefault(ingestion_id, {})[failure.chunk] = _copy(failure.to_doc())
        return True

    def get_ingestion_meta(self, ingestion_id: str) -> Ingestion | None:
        return self.get_ingestion(ingestion_id)[0]

    def get_ingestion_metas(self, ingestion_ids: Iterable[str]) -> dict[str, Ingestion]:
        found = {i: self.get_ingestion_meta(i) for i in set(ingestion_ids)}
        return {i: ingestion for i, ingestion in found.items() if ingestion is not None}

    def get_ingestion(self, ingestion_id: str) -> tuple[Ingestion | None, list[ChunkRecord]]:
        meta = self.ingestions.get(ingestion_id)
        chunks = self.chunk_results.get(ingestion_id, {})
        return (None if meta is None else Ingestion.from_doc(_copy(meta)),
                [chunk_from_doc(_copy(chunks[c])) for c in sorted(chunks)])

    def add_object_ingestion(self, bucket: str, key: str, ingestion_id: str) -> set[str]:
        ids = self.object_ingestions.setdefault((bucket, key), set())
        ids.add(ingestion_id)
        return set(ids)

    def object_ingestion_ids(self, bucket: str, key: str) -> set[str]:
        return set(self.object_ingestions.get((bucket, key), set()))

    def list_ingestions(self, sources: Sequence[Source], since_ns: int, before: Position | None,
                        limit: int) -> IndexPage:
        def days(source: Source, first_day: str, last_day: str, count: int) -> list[str]:
            held = {day_of(ns) for s, ns, _ in self.ingestion_index if s == source.value}
            return sorted((d for d in held if first_day <= d <= last_day), reverse=True)[:count]

        def refs(source: Source, day: str, since: int, until: Position | None, count: int) -> list[Position]:
            found = [(ns, i) for s, ns, i in self.ingestion_index if s == source.value and day_of(ns) == day
                     and ns >= since and (until is None or (ns, i) < until)]
            return sorted(found, reverse=True)[:count]

        return walk_index(days, refs, sources, since_ns, before, limit)

    # -- idempotency -----------------------------------------------------------------------
    def claim_idempotency_key(self, key: str, claim: IdempotencyClaim, expires_at: int) -> IdempotencyClaim | None:
        existing = self.idempotency.get(key)
        if existing is None or existing[1] < int(self._now()):
            self.idempotency[key] = (_copy(claim.to_doc()), expires_at)
            return None
        return IdempotencyClaim.from_doc(_copy(existing[0]))

    def complete_idempotency_key(self, key: str, claim: IdempotencyClaim, expires_at: int) -> None:
        self.idempotency[key] = (_copy(claim.to_doc()), expires_at)

    # -- partial aggregates ----------------------------------------------------------------
    def put_partials(self, source: str, partials: Iterable[Bar]) -> int:
        count = 0
        for bar in partials:
            self.partials[(bar.symbol, bar.start_ns, source)] = bar
            count += 1
        return count

    def put_partials_of(self, sources: Sequence[tuple[str, Iterable[Bar]]]) -> int:
        stored: set[tuple[str, int, str]] = set()
        for source, partials in sources:
            bars = list(partials)
            self.put_partials(source, bars)
            stored.update((bar.symbol, bar.start_ns, source) for bar in bars)
        return len(stored)

    def query_partials(self, symbol: str, first_minute: int, last_minute: int) -> list[tuple[str, Bar]]:
        keys = sorted(k for k in self.partials if k[0] == symbol and first_minute <= k[1] <= last_minute)
        return [(k[2], self.partials[k]) for k in keys]

    def list_partial_minutes(self, symbol: str, first_minute: int, last_minute: int) -> list[int]:
        return sorted({k[1] for k in self.partials if k[0] == symbol and first_minute <= k[1] <= last_minute})

    # -- dirty windows ---------------------------------------------------------------------
    def mark_dirty(self, windows: Iterable[tuple[str, int]], token: str) -> None:
        with self._lock:
            for symbol, minute in set(windows):
                self.dirty.setdefault((symbol, minute - minute % HOUR_NS, token), set()).add(minute)

    def list_dirty(self, symbols: Iterable[str] | None, limit: int) -> list[DirtyWindow]:
        wanted = None if symbols is None else set(symbols)
        out: list[DirtyWindow] = []
        with self._lock:
            for symbol, hour, token in sorted(self.dirty):
                if wanted is None or symbol in wanted:
                    out.extend((symbol, minute, token) for minute in self.dirty[(symbol, hour, token)])
                    if len(out) >= limit:
                        break
        return sorted(out)

    def clear_dirty(self, entries: Iterable[DirtyWindow]) -> int:
        return self._delete_marks(entries)

    def _delete_marks(self, entries: Iterable[DirtyWindow]) -> int:
        marks = dirty_marks(entries)
        with self._lock:
            for mark in marks:
                self.dirty.pop(mark, None)
        return sum(marks.values())

    def dirty_symbols(self) -> list[str]:
        with self._lock:
            return sorted({symbol for symbol, _, _ in self.dirty})

    def any_dirty(self, symbol: str, first_minute: int, last_minute: int) -> bool:
        with self._lock:
            return any(s == symbol and first_minute - first_minute % HOUR_NS <= hour <= last_minute
                       for s, hour, _ in self.dirty)

    def still_marked(self, marks: Iterable[tuple[str, int, str]]) -> set[str]:
        with self._lock:
            return {symbol for symbol, hour, token in marks if (symbol, hour, token) in self.dirty}

    def dirty_minutes(self) -> set[tuple[str, int]]:
        """Test helper: every dirty (symbol, minute)."""
        return {(symbol, minute) for (symbol, _, _), minutes in self.dirty.items() for minute in minutes}

    # -- leases ----------------------------------------------------------------------------
    def acquire_lease(self, symbol: str, token: str, now_ns: int, ttl_ns: int, ask: bool = True) -> Lease | None:
        with self._lock:
            held = self.leases.get(symbol)
            if held is not None and held[1] >= now_ns:
                if ask:
                    self.lease_wanted.add(symbol)
                return None
            self.leases[symbol] = (token, now_ns + ttl_ns)
            self.lease_wanted.discard(symbol)
            return Lease(symbol, token, self.lease_next_round.get(symbol), self.withdrawals.get(symbol, 0))

    def renew_lease(self, lease: Lease, now_ns: int, ttl_ns: int) -> Lease | None:
        with self._lock:
            if self.leases.get(lease.symbol, ("", 0))[0] != lease.token:
                return None
            self.leases[lease.symbol] = (lease.token, now_ns + ttl_ns)
            return replace(lease, withdrawals=self.withdrawals.get(lease.symbol, 0))

    def note_withdrawals(self, symbols: Iterable[str]) -> None:
        with self._lock:
            for symbol in set(symbols):
                self.withdrawals[symbol] = self.withdrawals.get(symbol, 0) + 1

    def release_lease(self, lease: Lease, next_round_ns: int | None = None) -> bool:
        with self._lock:
            if self.leases.get(lease.symbol, ("", 0))[0] != lease.token:
                return False
            del self.leases[lease.symbol]
            if next_round_ns is not None:
                self.lease_next_round[lease.symbol] = next_round_ns
            wanted = lease.symbol in self.lease_wanted
            self.lease_wanted.discard(lease.symbol)
            return wanted

    # -- bars ------------------------------------------------------------------------------
    def query_bars(
        self, symbol: str, interval: str, first_start: int, last_start: int,
        limit: int | None = None, after: int | None = None, descending: bool = False,
    ) -> tuple[list[tuple[Bar, int]], int | None]:
        lo, hi = first_start, last_start
        if after is not None:
            lo, hi = (lo, min(hi, after - 1)) if descending else (max(lo, after + 1), hi)
        starts = sorted(
            (start for (s, iv, start) in self.bars if s == symbol and iv == interval and lo <= start <= hi),
            reverse=descending)
        if limit is not None and limit < 1:
            return [], None
        out = [(self.bars[(symbol, interval, s)][0], self.bars[(symbol, interval, s)][1]) for s in starts]
        if limit is not None and len(out) > limit:
            return out[:limit], out[limit - 1][0].start_ns
        return out, None

    def get_bars(self, symbol: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], tuple[Bar, int]]:
        assert len(keys) <= GET_BARS_LIMIT, "DynamoDB's BatchGetItem takes at most 100 keys"
        out = {}
        for interval, start in keys:
            row = self.bars.get((symbol, interval, start))
            if row is not None:
                out[(interval, start)] = (row[0], row[1])
        return out

    def write_bars(self, lease: Lease, puts: Sequence[tuple[Bar, int]], deletes: Sequence[tuple[str, int]],
                   updated_ns: int, latest_ns: int | None = None, cleared: Iterable[DirtyWindow] = ()) -> None:
        with self._lock:  # one group: stored whole or not at all
            if self.leases.get(lease.symbol, ("", 0))[0] != lease.token:
                raise LeaseLost(f"the lease on {lease.symbol} passed to another run")
            if latest_ns is not None:
                MemoryStateStore.update_symbol(self, lease.symbol, latest_ns)
            for bar, revision in puts:
                self.bars[(lease.symbol, bar.interval, bar.start_ns)] = (bar, revision, updated_ns)
            for interval, start in deletes:
                self.bars.pop((lease.symbol, interval, start), None)
            self._delete_marks(cleared)

    # -- symbols ---------------------------------------------------------------------------
    def update_symbol(self, symbol: str, latest_bar_ns: int) -> None:
        if symbol not in self.symbols or self.symbols[symbol] < latest_bar_ns:
            self.symbols[symbol] = latest_bar_ns

    def list_symbols(self) -> list[tuple[str, int]]:
        return sorted(self.symbols.items())

    # -- test helpers ----------------------------------------------------------------------
    def bar(self, symbol: str, interval: str, start_ns: int) -> tuple[Bar, int] | None:
        """The stored bar and its revision, or None."""
        row = self.bars.get((symbol, interval, start_ns))
        return None if row is None else (row[0], row[1])

    def bars_of(self, symbol: str, interval: str) -> list[Bar]:
        return [self.bars[k][0] for k in sorted(self.bars) if k[0] == symbol and k[1] == interval]


class HeldResults:
    """Processes the queued messages in a thread that stops just before it stores their chunk results (their
    partials and dirty marks are stored), until ``finish``: the moment a withdrawal may miss the chunks."""

    def __init__(self, store: MemoryStateStore, receive: Callable[[], list[tuple[str, str]]],
                 process: Callable[[list[tuple[str, str]]], Any]) -> None:
        self.receive, self.process = receive, process
        self.paused, self.go = threading.Event(), threading.Event()
        self.outcomes: list[Any] = []
        self.thread: threading.Thread | None = None
        real = store.put_chunk_results

        def held(results: Sequence[tuple[str, ChunkResult]]) -> None:
            self.paused.set()
            assert self.go.wait(10)
            real(results)

        store.put_chunk_results = held  # type: ignore[method-assign]

    def start(self) -> None:
        messages = self.receive()
        self.thread = threading.Thread(target=lambda: self.outcomes.append(self.process(messages)))
        self.thread.start()
        assert self.paused.wait(10)

    def finish(self) -> None:
        assert self.thread is not None
        self.go.set()
        self.thread.join(10)
        assert [outcome.failed_message_ids for outcome in self.outcomes] == [[]]


class MemoryQueue:
    """An SQS queue as a list of message bodies, with SQS's per-message size limit."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._next_id = 0

    def send(self, bodies: Sequence[str]) -> int:
        for body in bodies:
            if len(body.encode()) > SQS_MAX_MESSAGE_BYTES:
                raise QueueRejected(f"message of {len(body.encode())} bytes is over the SQS limit")
        self.messages.extend(bodies)
        return -(-len(bodies) // SQS_MAX_BATCH_ENTRIES)

    def receive_all(self) -> list[tuple[str, str]]:
        """Take every message off the queue as (message id, body) pairs, like one big receive."""
        out = []
        for body in self.messages:
            out.append((f"m-{self._next_id}", body))
            self._next_id += 1
        self.messages = []
        return out


class MemoryDeadLetterQueue:
    """A dead-letter queue: a received message stays hidden until released or deleted (holds never expire)."""

    def __init__(self, now: Callable[[], int] = time.time_ns) -> None:
        self._now = now
        self._next_id = 0
        # message id -> (body, receive count, sent_ns); dict order is arrival order, as SQS roughly is
        self.messages: dict[str, tuple[str, int, int]] = {}
        self.hidden: dict[str, str] = {}  # message id -> receipt of the receive that hides it

    def send(self, bodies: Sequence[str]) -> int:
        """What the processor does with a message no retry can help (the TickQueue side of the queue)."""
        for body in bodies:
            self.put(body)
        return -(-len(bodies) // SQS_MAX_BATCH_ENTRIES)

    def put(self, body: str) -> str:
        self._next_id += 1
        message_id = f"dl-{self._next_id}"
        self.messages[message_id] = (body, 0, self._now())
        return message_id

    def receive(self, max_messages: int, hold_seconds: int) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for message_id, (body, count, sent_ns) in list(self.messages.items()):
            if len(out) >= max_messages:
                break
            if message_id in self.hidden:
                continue
            self.messages[message_id] = (body, count + 1, sent_ns)
            receipt = f"{message_id}#{count + 1}"
            self.hidden[message_id] = receipt
            out.append(DeadLetter(message_id, body, count + 1, sent_ns, receipt))
        return out

    def release(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            if self.hidden.get(letter.message_id) == letter.receipt:
                del self.hidden[letter.message_id]

    def delete(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self.messages.pop(letter.message_id, None)
            self.hidden.pop(letter.message_id, None)

    def approximate_depth(self) -> int:
        return len(self.messages) - len(self.hidden)

    def bodies(self) -> list[str]:
        return [body for body, _, _ in self.messages.values()]


class MemoryEvents:
    """An event bus that keeps what was published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, json.loads(json.dumps(detail))))


class MemoryObjects:
    """A versioned S3 bucket set: bytes per (bucket, key, version), read the way S3ObjectStore reads.

    Like S3, a key's versions are kept newest last, a delete without a version id stacks a delete marker on
    them, and a write while versioning is suspended (``versioned=False``) replaces the key's "null" version."""

    def __init__(self, block_size: int = 1024 * 1024, now: Callable[[], int] = time.time_ns) -> None:
        self.block_size = block_size
        self._now = now
        # Per key, oldest first: (version id, bytes or None for a delete marker, content type, metadata).
        self._objects: dict[tuple[str, str], list[tuple[str, bytes | None, str | None, dict[str, str]]]] = {}
        self._modified: dict[tuple[str, str, str], int] = {}
        self._counter = 0

    def _stack(self, bucket: str, key: str, data: bytes | None, content_type: str | None,
               metadata: dict[str, str], versioned: bool) -> str:
        if versioned:
            self._counter += 1
            version = f"v{self._counter}"
        else:
            version = NULL_VERSION
        versions = self._objects.setdefault((bucket, key), [])
        versions[:] = [entry for entry in versions if entry[0] != version]
        versions.append((version, data, content_type, metadata))
        self._modified[(bucket, key, version)] = self._now()
        return version

    def put(
        self, bucket: str, key: str, data: bytes, content_type: str | None = None,
        metadata: dict[str, str] | None = None, versioned: bool = True,
    ) -> str:
        """Store a new version (the "null" one when not ``versioned``); returns its version id."""
        meta = {k.lower(): v for k, v in (metadata or {}).items()}
        return self._stack(bucket, key, bytes(data), content_type, meta, versioned)

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> str:
        """Without ``version_id``, stack a delete marker and return its id; with one, remove that version (or
        marker) for good."""
        if version_id is None:
            return self._stack(bucket, key, None, None, {}, versioned=True)
        versions = self._objects.get((bucket, key), [])
        versions[:] = [entry for entry in versions if entry[0] != version_id]
        return version_id

    def _get(self, bucket: str, key: str, version_id: str | None) -> tuple[str, bytes, str | None, dict[str, str]]:
        versions = self._objects.get((bucket, key)) or []
        if not version_id or version_id == NULL_VERSION:
            entry = versions[-1] if versions else None  # read without a VersionId: the current version
        else:
            entry = next((e for e in versions if e[0] == version_id), None)
        if entry is None or entry[1] is None:  # none, or a delete marker
            raise NotFound(f"s3://{bucket}/{key} (version {version_id}) no longer exists")
        version, data, content_type, meta = entry
        assert data is not None
        return version, data, content_type, meta

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectInfo:
        version, data, content_type, meta = self._get(bucket, key, version_id)
        return ObjectInfo(size=len(data), content_type=content_type, metadata=dict(meta),
                          version_id=version, etag=hashlib.md5(data).hexdigest())

    def stream(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]:
        data = self._get(bucket, key, version_id)[1]
        for i in range(0, len(data), self.block_size):
            yield data[i : i + self.block_size]

    def read_range(self, bucket: str, key: str, version_id: str | None, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        return self._get(bucket, key, version_id)[1][start:end]

    def read_all(self, bucket: str, key: str, version_id: str | None) -> bytes:
        return self._get(bucket, key, version_id)[1]

    def latest_version(self, bucket: str, key: str) -> str | None:
        """The newest version that is not a delete marker (what S3ObjectStore tells)."""
        for version, data, _, _ in reversed(self._objects.get((bucket, key), [])):
            if data is not None:
                return real_version(version)
        return None

    def current_objects(self, bucket: str, prefix: str) -> Iterator[ListedObject]:
        """The current version of each key under ``prefix``, in key order, leaving out keys whose current
        version is a delete marker (what S3ObjectLister lists)."""
        for (b, key), versions in sorted(self._objects.items()):
            if b == bucket and key.startswith(prefix) and versions and versions[-1][1] is not None:
                version, data, _, _ = versions[-1]
                assert data is not None
                yield ListedObject(key, real_version(version), len(data), self._modified[(bucket, key, version)],
                                   hashlib.md5(data).hexdigest())


def bars_json(use_cases: UseCases, symbol: str | None, interval: str | None = None, start: str | None = None,
              end: str | None = None, limit: str | None = None, cursor: str | None = None) -> dict[str, Any]:
    """What GET /bars answers for these parameters (through the API's own query parsing and JSON)."""
    params = {"symbol": symbol, "interval": interval, "start": start, "end": end, "limit": limit, "next": cursor}
    return read_bars({k: v for k, v in params.items() if v is not None}, use_cases.read_bars)


def seed_bars(store: Any, rows: Iterable[tuple[Bar, int]], updated_ns: int = 0) -> None:
    """Test helper: store bars (with revision) directly, under a lease of each symbol, on either store."""
    by_symbol: dict[str, list[tuple[Bar, int]]] = {}
    for bar, revision in rows:
        by_symbol.setdefault(bar.symbol, []).append((bar, revision))
    for symbol, puts in by_symbol.items():
        lease = store.acquire_lease(symbol, "seed", time.time_ns(), 60 * 10**9)
        assert lease is not None, f"{symbol} is leased"
        store.write_bars(lease, puts, [], updated_ns)
        store.release_lease(lease)


def drop_bars(store: Any, keys: Iterable[tuple[str, str, int]]) -> None:
    """Test helper: delete (symbol, interval, start) bars directly, on either store."""
    for symbol, interval, start in keys:
        lease = store.acquire_lease(symbol, "seed", time.time_ns(), 60 * 10**9)
        assert lease is not None, f"{symbol} is leased"
        store.write_bars(lease, [], [(interval, start)], 0)
        store.release_lease(lease)
