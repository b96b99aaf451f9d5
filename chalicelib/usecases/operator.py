"""The operator's commands: an ingestion's status, the dead-letter queue (look, redrive), replaying S3 objects
and recomputing a symbol's bars. Every dependency is passed in; entrypoints/cli.py is the entry point.

Each use case returns one JSON-ready dict. Those that change state preview unless ``confirm`` is given. (The
``chart`` command reads bars with the API's own use case, queries.ReadBars.)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain.bars import MINUTE_NS
from ..domain.errors import InvalidQuery, NotFound, OperationIncomplete
from ..domain.ingestion import object_ingestion_id
from ..domain.queries import parse_query_symbol, parse_query_time
from ..domain.timefmt import END_OF_TIME_NS, format_ns
from ..observability import logger
from ..ports import (
    BarStore,
    DeadLetter,
    DeadLetterQueue,
    DirtyWindowStore,
    ListedObject,
    ObjectLister,
    PartialStore,
    TickQueue,
)
from ..schemas import decode_message
from ..settings import Settings
from .aggregate import Aggregate
from .ingest_object import IngestObject
from .queries import IngestionStatus, ReadBars

DEFAULT_MAX = 10
MAX_MESSAGES = 1000
MAX_OBJECTS = 10_000
# How long looked-at dead letters stay hidden from other consumers if this process dies before releasing them.
PREVIEW_HOLD_SECONDS = 60
REDRIVE_HOLD_SECONDS = 60
REDRIVE_ROUND = 10
_SHOWN_CHARS = 100


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return value[:_SHOWN_CHARS] + "..."
    return value if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def summarize_body(body: str) -> dict[str, Any]:
    """What a queue message is about (kind, ingestion, chunk, sizes), never the ticks or text it carries,
    and whether the processor would accept its shape (a message that fails this fails again if redriven)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {"kind": None, "valid": False, "problem": "not JSON", "preview": _short(body[:60])}
    if not isinstance(doc, dict):
        return {"kind": None, "valid": False, "problem": f"not a JSON object ({type(doc).__name__})"}
    summary: dict[str, Any] = {"kind": _short(doc.get("kind")), "ingestion_id": _short(doc.get("ingestion_id")),
                               "chunk": _short(doc.get("chunk"))}
    if isinstance(doc.get("ticks"), list):
        summary["ticks"] = len(doc["ticks"])
    elif doc.get("kind") == "columns" and isinstance(doc.get("t"), list):
        summary["ticks"] = len(doc["t"])
    if isinstance(doc.get("text"), str):
        summary["text_chars"] = len(doc["text"])
    if "key" in doc:
        summary["object"] = _short(f"s3://{doc.get('bucket')}/{doc.get('key')}")
        if doc.get("version_id"):
            summary["version_id"] = _short(doc["version_id"])
    if "start" in doc and "end" in doc:
        summary["bytes"] = [_short(doc["start"]), _short(doc["end"])]
    try:
        decode_message(body)
        summary["valid"] = True
    except ValueError as exc:
        summary["valid"] = False
        summary["problem"] = _problem(str(exc))
    return summary


def _problem(error: str) -> str:
    """``where: what`` of a decoding error. msgspec names the path and quotes a mismatched literal (``kind``,
    ``format``), never a whole value such as the ticks; that quote is shortened all the same."""
    what, found, path = error.rpartition(" - at `")
    if not found:
        return f"body: {_short(error)}"
    where = path.rstrip("`").removeprefix("$").removeprefix(".")
    return f"{where or 'body'}: {_short(what)}"


def describe_letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "message_id": letter.message_id,
        "receive_count": letter.receive_count,
        "sent_at": None if letter.sent_ns is None else format_ns(letter.sent_ns),
        "size": len(letter.body.encode()),
        "body": summarize_body(letter.body),
    }


def _count(option: str, value: int, limit: int) -> int:
    if not 1 <= value <= limit:
        raise InvalidQuery(f"{option} must be between 1 and {limit}, got {value}")
    return value


class DeadLetters:
    """The processing queue's dead-letter queue: look at it, and move messages back."""

    def __init__(self, letters: DeadLetterQueue, queue: TickQueue, settings: Settings) -> None:
        self._letters = letters
        self._queue = queue
        self._settings = settings

    def list(self, max_messages: int = DEFAULT_MAX) -> dict[str, Any]:
        """Show up to ``max_messages`` dead letters and leave them in the queue."""
        _count("--max", max_messages, MAX_MESSAGES)
        letters = self._letters.receive(max_messages, PREVIEW_HOLD_SECONDS)
        try:
            shown = [describe_letter(letter) for letter in letters]
        finally:
            self._letters.release(letters)
        settings = self._settings
        return {
            "queue": settings.dead_letter_queue_name, "approximate_depth": self._letters.approximate_depth(),
            "shown": len(shown), "messages": shown,
        }

    def redrive(self, max_messages: int = DEFAULT_MAX, confirm: bool = False) -> dict[str, Any]:
        """Move up to ``max_messages`` dead letters back to the processing queue (a preview unless ``confirm``).

        Each round sends before it deletes: a failure in between leaves a message in both queues, never in
        none, and processing a message twice overwrites rather than adds.
        """
        _count("--max", max_messages, MAX_MESSAGES)
        settings = self._settings
        route = {"from": settings.dead_letter_queue_name, "to": settings.queue_name}
        if not confirm:
            preview = self.list(max_messages)
            return {"dry_run": True, **route, "would_move": preview["shown"],
                    "approximate_depth": preview["approximate_depth"], "messages": preview["messages"],
                    "confirm": f"nothing was moved; run again with --yes to move {preview['shown']} message(s)"}
        moved: list[dict[str, Any]] = []
        while len(moved) < max_messages:
            letters = self._letters.receive(min(REDRIVE_ROUND, max_messages - len(moved)), REDRIVE_HOLD_SECONDS)
            if not letters:
                break
            result = {"dry_run": False, **route, "moved": len(moved), "messages": moved}
            try:
                self._queue.send([letter.body for letter in letters])
            except Exception as exc:
                self._letters.release(letters)
                raise OperationIncomplete(
                    f"moved {len(moved)} message(s), then could not send the next {len(letters)}: {exc}", result
                ) from exc
            try:
                self._letters.delete(letters)
            except Exception as exc:
                raise OperationIncomplete(
                    f"moved {len(moved)} message(s); the next {len(letters)} were sent but not deleted from the "
                    f"dead-letter queue, so they are in both queues (processing twice is harmless): {exc}", result
                ) from exc
            moved.extend(describe_letter(letter) for letter in letters)
            logger.info("dead letters redriven", extra={"count": len(letters), **route})
        return {"dry_run": False, **route, "moved": len(moved),
                "approximate_depth": self._letters.approximate_depth(), "messages": moved}


class Replay:
    """Ingest the current version of objects again, as the S3 trigger would (even ones ingested already)."""

    def __init__(self, listing: ObjectLister, ingest: IngestObject, status: IngestionStatus,
                 settings: Settings) -> None:
        self._listing = listing
        self._ingest = ingest
        self._status = status
        self._settings = settings

    def __call__(
        self, prefix: str, since: str | None = None, until: str | None = None,
        max_objects: int = DEFAULT_MAX, confirm: bool = False,
    ) -> dict[str, Any]:
        """Ingest again the current version of the objects under ``prefix`` whose LastModified is in
        [since, until), as the S3 trigger would, even those ingested already (a preview unless ``confirm``)."""
        _count("--max", max_objects, MAX_OBJECTS)
        since_ns, until_ns = parse_query_time("--since", since), parse_query_time("--until", until)
        if since_ns is not None and until_ns is not None and until_ns <= since_ns:
            raise InvalidQuery("--until must be after --since")
        bucket = self._settings.bucket_name
        selected: list[ListedObject] = []
        more = False
        for obj in self._listing.current_objects(bucket, prefix):
            if obj.key.endswith("/"):
                continue  # a console "folder", not data
            if since_ns is not None and obj.last_modified_ns < since_ns:
                continue
            if until_ns is not None and obj.last_modified_ns >= until_ns:
                continue
            if len(selected) == max_objects:
                more = True
                break
            selected.append(obj)
        base: dict[str, Any] = {
            "bucket": bucket, "prefix": prefix,
            "since": None if since_ns is None else format_ns(since_ns),
            "until": None if until_ns is None else format_ns(until_ns),
            "selected": len(selected), "more_beyond_max": more,
        }
        if not confirm:
            return {**base, "dry_run": True, "objects": [self._describe_object(bucket, o) for o in selected],
                    "confirm": f"nothing was queued; run again with --yes to replay {len(selected)} object(s)"}
        results: list[dict[str, Any]] = []
        failed = 0
        for obj in selected:
            try:
                outcome = self._ingest(bucket, obj.key, obj.version_id, force=True)
            except Exception as exc:
                logger.exception("replay failed", extra={"object_key": obj.key})
                failed += 1
                outcome = {"status": "error", "error": str(exc)[:300]}
            results.append({"key": obj.key, "version_id": obj.version_id, **outcome})
        result = {**base, "dry_run": False, "replayed": len(selected) - failed, "objects": results}
        if failed:
            raise OperationIncomplete(f"{failed} of {len(selected)} object(s) could not be replayed", result)
        return result

    def _describe_object(self, bucket: str, obj: ListedObject) -> dict[str, Any]:
        ingestion_id = object_ingestion_id(bucket, obj.key, obj.version_id or obj.etag)
        try:
            previous = self._status(ingestion_id)["status"]
        except NotFound:
            previous = None  # never ingested (no S3 event reached the pipeline)
        return {"key": obj.key, "version_id": obj.version_id, "size": obj.size,
                "last_modified": format_ns(obj.last_modified_ns), "ingestion_id": ingestion_id,
                "previous_status": previous}


class Recompute:
    """Rebuild a symbol's bars over a time range from its partial aggregates."""

    def __init__(self, partials: PartialStore, bars: BarStore, dirty: DirtyWindowStore, aggregate: Aggregate,
                 settings: Settings, new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._partials = partials
        self._bars = bars
        self._dirty = dirty
        self._aggregate = aggregate
        self._settings = settings
        self._new_token = new_token
        self._sleep = sleep

    def __call__(self, symbol: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        """Rebuild the bars of ``symbol`` for the minutes in [start, end) from its partial aggregates.

        Every minute with a partial is marked dirty, and so is every 1-minute bar without one (the
        aggregation then deletes it: bars are derived from partials only). The aggregation runs here, under
        the symbol's lease like any other run, until no mark of the range is left.
        """
        symbol = parse_query_symbol("--symbol", symbol)
        lo, hi = parse_query_time("--start", start), parse_query_time("--end", end)
        if lo is not None and hi is not None and hi <= lo:
            raise InvalidQuery("--end must be after --start")
        first = 0 if lo is None else lo - lo % MINUTE_NS
        last = (END_OF_TIME_NS if hi is None else hi) - 1
        with_partials = self._partials.list_partial_minutes(symbol, first, last)
        rows, _ = self._bars.query_bars(symbol, "1m", first, last)
        orphans = sorted({bar.start_ns for bar, _ in rows} - set(with_partials))
        minutes = sorted({*with_partials, *orphans})
        result: dict[str, Any] = {
            "symbol": symbol, "start": None if lo is None else format_ns(first),
            "end": None if hi is None else format_ns(hi),
            "minutes_with_partials": len(with_partials), "bars_without_partials": len(orphans),
            "minutes_marked": len(minutes),
            "first_minute": format_ns(minutes[0]) if minutes else None,
            "last_minute": format_ns(minutes[-1]) if minutes else None,
        }
        if not minutes:
            return {**result, "aggregation": None,
                    "note": f"nothing to recompute: no partial aggregates or 1m bars of {symbol} in the range"}
        self._dirty.mark_dirty([(symbol, m) for m in minutes], self._new_token())
        totals: dict[str, Any] = {"runs": 0, "windows": 0, "bars_written": 0, "bars_revised": 0, "complete": False}
        # Each run works the symbol off for a time slice; runs elsewhere (events, the schedule) may hold its
        # lease meanwhile, and then this waits for them. Done when no mark of the range is left.
        for _ in range(len(minutes) // max(1, self._settings.max_windows_per_run) + 30):
            summary = self._aggregate([symbol])
            totals["runs"] += 1
            for name in ("windows", "bars_written", "bars_revised"):
                totals[name] += summary[name]
            if not self._dirty.any_dirty(symbol, first, last):
                totals["complete"] = True
                break
            if summary["skipped_leased"]:
                self._sleep(1.0)
        return {**result, "aggregation": totals}


@dataclass(frozen=True)
class Operations:
    """The operator's commands (chalicelib/entrypoints/cli.py): each one a use case of its own."""

    status: IngestionStatus
    dlq: DeadLetters
    replay: Replay
    recompute: Recompute
    read_bars: ReadBars
