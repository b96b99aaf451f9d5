"""DataProcessor: turn queued chunks into 1-minute partial aggregates and dirty-window marks.

Each chunk's partials are stored under its own source id, so a redelivered message overwrites what it wrote
instead of adding to it. Only infrastructure failures (throttling, timeouts) fail a message, so that SQS
delivers it again; a message no retry can help (not one of ours, or a bug) is moved to the dead-letter queue
at once, and its chunk's failure is recorded on its ingestion. Bad records are never failures: they are the
chunk's rejects.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..domain.bars import Bar, partials_from_ticks
from ..domain.errors import TransientError
from ..domain.ingestion import MAX_ID_CHARS, ChunkFailure, ChunkResult, source_id
from ..observability import logger
from ..ports import DirtyWindowStore, EventPublisher, IngestionStore, ObjectStore, PartialStore, TickQueue
from ..schemas import (
    TICKS_PROCESSED,
    ObjectPart,
    QueueMessage,
    TicksProcessedDetail,
    WindowChange,
    decode_message,
    to_builtins,
)
from ..settings import Settings
from .chunk_reader import ChunkReader
from .common import Clock, Metric, Transient, describe, no_metric
from .sources import Sources

MAX_TOKENS_LISTED = 20  # mark tokens an event lists (a batch stored together writes one; message by message, one each)
MAX_CHANGES_LISTED = 500  # symbols one TicksProcessed event lists (an event holds at most 256 KB)
MESSAGE_ATTEMPTS = 3  # tries of one message within an invocation, on throttling or timeouts

# An SQS message as the trigger hands it over: (message id, body) or (message id, body, receive count).
Delivered = tuple[str, str] | tuple[str, str, int]


@dataclass
class BatchOutcome:
    """What processing one SQS batch did."""

    failed_message_ids: list[str] = field(default_factory=list)
    ticks: int = 0
    rejected: int = 0
    windows: int = 0
    mark_tokens: list[str] = field(default_factory=list)  # of every mark write tried (see TicksProcessedDetail)


def _message_ids(body: str) -> tuple[str, int] | None:
    """The ingestion id and chunk of a queue message that failed validation, if they can be read at all."""
    try:
        data = json.loads(body)
        ingestion_id, chunk = data["ingestion_id"], data["chunk"]
    except (ValueError, TypeError, KeyError):
        return None
    if isinstance(ingestion_id, str) and 0 < len(ingestion_id) <= MAX_ID_CHARS and type(chunk) is int and chunk >= 0:
        return ingestion_id, chunk
    return None


@dataclass
class _Chunk:
    """One message of the batch, once read: its partials and the result to store for its chunk."""

    message_id: str
    body: str
    attempt: int
    message: QueueMessage
    partials: dict[tuple[str, int], Bar] = field(default_factory=dict)
    result: ChunkResult = field(default_factory=lambda: ChunkResult(0, 0, 0, 0, {}, ()))


class ProcessBatch:
    def __init__(self, ingestions: IngestionStore, partials: PartialStore, dirty: DirtyWindowStore,
                 objects: ObjectStore, sources: Sources, events: EventPublisher, settings: Settings,
                 dead_letters: TickQueue | None = None, clock: Clock = time.time_ns, metric: Metric = no_metric,
                 new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
                 transient: Transient = lambda exc: isinstance(exc, TransientError),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._ingestions = ingestions
        self._partials = partials
        self._dirty = dirty
        self._sources = sources
        self._events = events
        self._settings = settings
        self._dead_letters = dead_letters
        self._clock = clock
        self._metric = metric
        self._new_token = new_token
        self._transient = transient
        self._sleep = sleep
        self._read = ChunkReader(objects, settings)

    def __call__(self, messages: Sequence[Delivered]) -> BatchOutcome:
        """Process SQS messages; failures are isolated per message and reported by id.

        Each message is read and turned into partials on its own; then what the batch's messages produced is
        stored together (all partials, then all dirty marks, then all chunk results: a few requests for the
        whole batch instead of three per message). If that fails, each message is stored on its own, with its
        own retries and verdict, as if it had come alone.
        """
        outcome = BatchOutcome()
        read: list[_Chunk] = []
        for item in messages:
            message_id, body = item[0], item[1]
            attempt = item[2] if len(item) > 2 else 1  # type: ignore[misc]
            with logger.append_context_keys(message_id=message_id):
                chunk = self._one(message_id, body, attempt, outcome)
            if chunk is not None:
                read.append(chunk)
        changes: dict[str, list[int]] = {}
        ingestions: set[str] = set()
        for chunk in self._store_all(read, outcome):
            outcome.ticks += chunk.result.accepted
            outcome.rejected += chunk.result.rejected
            outcome.windows += len(chunk.partials)
            ingestions.add(chunk.message.ingestion_id)
            for (symbol, minute), bar in chunk.partials.items():
                entry = changes.setdefault(symbol, [minute, minute, 0])
                entry[0], entry[1], entry[2] = min(entry[0], minute), max(entry[1], minute), entry[2] + bar.trades
        self._metric("TicksProcessed", outcome.ticks)
        self._metric("TicksRejected", outcome.rejected)
        if changes:
            self._publish(changes, ingestions, outcome.mark_tokens)
        return outcome

    def _one(self, message_id: str, body: str, attempt: int, outcome: BatchOutcome) -> _Chunk | None:
        """The message read into its partials, or None (it was set aside or failed back to the queue)."""
        try:
            message = decode_message(body)
        except ValueError as exc:  # msgspec's DecodeError and ValidationError are ValueErrors
            logger.warning("message is not a pipeline message", extra={"reason": str(exc)[:300]})
            self._set_aside(message_id, body, _message_ids(body), "the queue message cannot be read (not a message "
                            "of this pipeline, or from an incompatible version)", outcome)
            return None
        with logger.append_context_keys(ingestion_id=message.ingestion_id, chunk=message.chunk):
            return self._guarded(_Chunk(message_id, body, attempt, message), self._prepare, outcome)

    def _guarded(self, chunk: _Chunk, step: Callable[[_Chunk], None], outcome: BatchOutcome) -> _Chunk | None:
        """``step(chunk)``, tried again at once after a throttle or timeout (processing is idempotent, and a
        message failed back to SQS waits a whole visibility timeout before its next delivery); None when it
        failed for good: set aside if no retry can help, else failed back to SQS for another delivery."""
        message = chunk.message
        where = (message.ingestion_id, message.chunk)
        try:
            for attempt in range(1, MESSAGE_ATTEMPTS + 1):
                try:
                    step(chunk)
                    return chunk
                except Exception as exc:
                    if attempt == MESSAGE_ATTEMPTS or not self._transient(exc):
                        raise
                    logger.info("retrying a throttled message", extra={"error": repr(exc)[:200], "attempt": attempt})
                    self._sleep(0.05 * 4**attempt)
        except Exception as exc:
            if not self._transient(exc):
                logger.exception("chunk failed")  # the payload is not logged: only where it came from
                self._set_aside(chunk.message_id, chunk.body, where, f"internal error: {describe(exc)}", outcome)
                return None
            # SQS delivers it again; on the last receive, its redrive policy moves it to the DLQ.
            logger.warning("message failed; it will be retried", extra={"error": repr(exc)[:300]})
            last = chunk.attempt >= self._settings.max_receive_count
            reason = (f"{describe(exc)}; moved to the dead-letter queue after {chunk.attempt} attempts" if last
                      else f"{describe(exc)}; retrying (attempt {chunk.attempt})")
            self._record_failure(where, reason, chunk.attempt, final=last)
            outcome.failed_message_ids.append(chunk.message_id)
            self._metric("MessagesFailed", 1)
        return None

    def _prepare(self, chunk: _Chunk) -> None:
        message = chunk.message
        ticks, parsed = self._read(message)
        chunk.partials = partials_from_ticks(ticks, message.rank)
        spans: dict[str, tuple[int, int]] = {}
        for symbol, minute in chunk.partials:
            lo, hi = spans.get(symbol, (minute, minute))
            spans[symbol] = (min(lo, minute), max(hi, minute))
        chunk.result = ChunkResult(message.chunk, len(ticks), parsed.rejected, 0, spans, tuple(parsed.errors))

    def _store_all(self, chunks: list[_Chunk], outcome: BatchOutcome) -> list[_Chunk]:
        """Store the chunks together; the ones stored (on failure, each is tried on its own)."""
        if len(chunks) > 1:
            for attempt in range(1, MESSAGE_ATTEMPTS + 1):
                try:
                    self._store(chunks, outcome)
                    return chunks
                except Exception as exc:
                    if attempt == MESSAGE_ATTEMPTS or not self._transient(exc):
                        logger.warning("storing the batch together failed; storing its messages one by one",
                                       extra={"error": repr(exc)[:300]})
                        break
                    self._sleep(0.05 * 4**attempt)
        stored = []
        for chunk in chunks:
            with logger.append_context_keys(message_id=chunk.message_id, ingestion_id=chunk.message.ingestion_id,
                                            chunk=chunk.message.chunk):
                if self._guarded(chunk, lambda c: self._store([c], outcome), outcome) is not None:
                    stored.append(chunk)
        return stored

    def _store(self, chunks: Sequence[_Chunk], outcome: BatchOutcome) -> None:
        """Partials first, then the marks that send the aggregator to them, then the results that say the chunks
        are processed: each step only once the one before it is stored. Last, an object version replaced or
        failed meanwhile may have been withdrawn without these chunks (its withdrawal reads the stored
        results): their windows are revisited. A request's withdrawal revisits every window of its body."""
        self._partials.put_partials_of([(source_id(c.message.ingestion_id, c.message.chunk), c.partials.values())
                                        for c in chunks])
        token = self._new_token()
        outcome.mark_tokens.append(token)  # before the write: a mark written by a failed attempt is announced too
        self._dirty.mark_dirty([key for c in chunks for key in c.partials], token)
        now = self._clock()
        self._ingestions.put_chunk_results([(c.message.ingestion_id, replace(c.result, processed_ns=now))
                                            for c in chunks])
        files = {c.message.ingestion_id for c in chunks if isinstance(c.message, ObjectPart)}
        gone = self._sources.stopped_counting(files) if files else set()
        if gone:
            # Announced with the batch's marks, so that a run the event starts never takes them for worked off.
            revisit_token = self._new_token()
            outcome.mark_tokens.append(revisit_token)
            self._sources.revisit({key for c in chunks if c.message.ingestion_id in gone for key in c.partials},
                                  revisit_token)

    def _set_aside(self, message_id: str, body: str, where: tuple[str, int] | None, reason: str,
                   outcome: BatchOutcome) -> None:
        """Move a message that no retry can help to the dead-letter queue now, and say so on its ingestion."""
        self._metric("ChunksFailed", 1)
        parked = False
        if self._dead_letters is not None:
            try:
                self._dead_letters.send([body])
                parked = True
            except Exception:
                logger.exception("could not move the message to the dead-letter queue; it will be retried")
        if not parked:
            outcome.failed_message_ids.append(message_id)  # redelivered, and dead-lettered by the redrive policy
        if where is not None:
            self._record_failure(where, f"{reason}; the message is in the dead-letter queue (see dlq list / dlq "
                                 "redrive)", None, final=True)

    def _record_failure(self, where: tuple[str, int], reason: str, attempt: int | None, final: bool) -> None:
        """Note on the ingestion that a chunk failed (unless it was processed already); best effort."""
        ingestion_id, chunk = where
        try:
            self._ingestions.record_chunk_failure(ingestion_id, ChunkFailure(chunk, reason[:500], final,
                                                                             self._clock(), attempt))
        except Exception:
            logger.exception("could not record the chunk's failure", extra={"ingestion_id": ingestion_id})

    def _publish(self, changes: dict[str, list[int]], ingestions: set[str], tokens: list[str]) -> None:
        listed = sorted(changes.items())
        if len(listed) > MAX_CHANGES_LISTED:
            listed = []  # no list means "every dirty window" to the aggregator
        detail = TicksProcessedDetail(
            ingestion_ids=sorted(ingestions)[:MAX_CHANGES_LISTED], symbols_changed=len(changes),
            changes=[WindowChange(symbol=s, first_minute_ns=lo, last_minute_ns=hi, ticks=n)
                     for s, (lo, hi, n) in listed],
            mark_tokens=tokens if listed and len(tokens) <= MAX_TOKENS_LISTED else [])  # all of them, or none
        try:
            self._events.publish(TICKS_PROCESSED, to_builtins(detail))
        except Exception:
            # The dirty windows are stored already; the scheduled run aggregates them.
            logger.exception("could not publish TicksProcessed; the schedule will pick the windows up")
