"""Use cases of the pipeline: ingest (REST body or S3 object), process queued chunks, aggregate bars, read.

Every dependency is passed in (see ports.py); bootstrap.py builds the real ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from .domain.bars import INTERVALS, PARENT, Bar, merge_all, partials_from_ticks, window_start
from .domain.chunking import InflateLimit, LongLine, first_line, gunzip, split_lines
from .domain.errors import (
    IdempotencyConflict,
    InputError,
    InvalidQuery,
    InvalidTicks,
    NotFound,
    PayloadTooLarge,
    RecordError,
    TransientError,
    UnsupportedFormat,
)
from .domain.formats import (
    ColumnMap,
    CsvLineError,
    ParseContext,
    ParseResult,
    binary_format,
    detect_format,
    header_cells,
    header_problem,
    is_one_json_document,
    long_line_error,
    parse_csv_document,
    parse_csv_lines,
    parse_json_document,
    parse_ndjson_lines,
    text_lines,
)
from .domain.text import ascii_digits, parse_whole_number, show, strip_space
from .domain.ticks import FieldError, Tick, parse_symbol
from .domain.timefmt import END_OF_TIME_NS, TimestampError, format_ns, parse_timestamp
from .observability import logger
from .ports import EventPublisher, ObjectStore, StateStore, TickQueue
from .schemas import QUEUE_MESSAGE, ObjectMessage, RangeMessage, TextMessage, TicksMessage
from .settings import Settings

CONTENT_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}
TICKS_PROCESSED = "TicksProcessed"
IN_PROGRESS = frozenset({"scanning", "queued", "processing"})
# Ids this pipeline makes: "api-" + 32 hex digits, "s3-" + 32 hex digits.
INGESTION_ID_RE = re.compile(r"(?:api|s3)-[0-9a-f]{1,64}")
BARS_REVISED = "BarsRevised"
MAX_REVISIONS_LISTED = 500
MAX_CHANGES_LISTED = 500
MESSAGE_ATTEMPTS = 3  # tries of one message within an invocation, on throttling or timeouts
MAX_BAR_LIMIT = 5000
DEFAULT_BAR_LIMIT = 1000
# Windows of one symbol closer than this are read with one query.
RANGE_GAP_NS = 60 * 60 * 1_000_000_000
_SEND_GROUP = 10


def _fmt_decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def bar_to_json(bar: Bar, revision: int) -> dict[str, Any]:
    return {
        "start": format_ns(bar.start_ns),
        "open": _fmt_decimal(bar.open), "high": _fmt_decimal(bar.high), "low": _fmt_decimal(bar.low),
        "close": _fmt_decimal(bar.close), "volume": _fmt_decimal(bar.volume), "vwap": _fmt_decimal(bar.vwap),
        "trades": bar.trades, "first_tick": format_ns(bar.first_ns), "last_tick": format_ns(bar.last_ns),
        "revision": revision,
    }


def parse_query_time(name: str, raw: str | None) -> int | None:
    """A time given as a query parameter or option (ISO 8601 or epoch), None when absent; it must lie
    between the epoch and 2262-04-11 (what a nanosecond count can hold)."""
    if raw is None or raw == "":
        return None
    try:
        ns = parse_timestamp(raw)
    except TimestampError as exc:
        raise InvalidQuery(f"{name} {exc}") from None
    if not 0 <= ns < END_OF_TIME_NS:
        raise InvalidQuery(f"{name} must be between {format_ns(0)} and {format_ns(END_OF_TIME_NS - 1)}, "
                           f"got {show(raw)}")
    return ns


def parse_count(name: str, raw: str | None, default: int, maximum: int) -> int:
    """A whole number given as a query parameter, 1 to ``maximum``."""
    if raw is None:
        return default
    try:
        return parse_whole_number(raw, 1, maximum)
    except ValueError as exc:
        raise InvalidQuery(f"{name} {exc}") from None


def _read_cursor(cursor: str) -> int | None:
    """The bar start a ``next`` cursor carries, or None if it is not one this API made."""
    if not (0 < len(cursor) <= 32 and cursor.isascii()):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode() + b"==").decode("ascii")
    except (ValueError, binascii.Error):
        return None
    if not ascii_digits(text) or len(text) > 19:
        return None
    return int(text)


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


class _Sampler:
    """Keeps up to ``size`` bytes from the first byte that is not white space (or a BOM) on: what the format
    and the binary check look at. Blank bytes before it are dropped as they come, never held."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._sample = bytearray()

    def feed(self, block: bytes) -> bool:
        """Take the next block; True once the sample is full."""
        if not self._sample:
            block = block.lstrip(b"\xef\xbb\xbf \t\r\n\x0b\x0c")
        self._sample += block[: self._size - len(self._sample)]
        return len(self._sample) >= self._size

    def sample(self) -> bytes:
        return bytes(self._sample)


def _sniff(blocks: Iterable[bytes]) -> bytes:
    """The sample of a stream (see _Sampler), reading no further than needed."""
    sampler = _Sampler()
    for block in blocks:
        if sampler.feed(block):
            break
    return sampler.sample()


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _message_ids(body: str) -> tuple[str, int] | None:
    """The ingestion id and chunk of a queue message that failed validation, if they can be read at all."""
    try:
        data = json.loads(body)
        ingestion_id, chunk = data["ingestion_id"], data["chunk"]
    except (ValueError, TypeError, KeyError):
        return None
    if isinstance(ingestion_id, str) and 0 < len(ingestion_id) <= 80 and type(chunk) is int and chunk >= 0:
        return ingestion_id, chunk
    return None


def queue_body(message: BaseModel) -> str:
    """A queue message's body, in ASCII: SQS refuses some characters (U+FFFE, U+FFFF) that a file's text or
    an object key may hold, and JSON can spell every character as an escape."""
    return json.dumps(message.model_dump(mode="json"), separators=(",", ":"))


def _inline_messages(
    data: bytes, first_line: int, first_chunk: int, common: dict[str, Any], limit: int
) -> tuple[list[str], list[int]]:
    """Text messages carrying the lines ``data`` (from line ``first_line``), each within ``limit`` bytes:
    split by lines where the encoded text grows past it (escaped control characters take 6 bytes each).
    Returns the message bodies, numbered from ``first_chunk``, and the numbers of the lines that alone
    do not fit."""
    bodies: list[str] = []
    too_big: list[int] = []
    pending = [(data, first_line)]
    while pending:
        piece, line = pending.pop(0)
        body = queue_body(TextMessage(chunk=first_chunk + len(bodies), first_line=line,
                                      text=piece.decode("utf-8", "replace"), **common))
        if len(body.encode()) <= limit:
            bodies.append(body)
            continue
        lines = piece.split(b"\n")  # LF only: a lone CR is data, as the parsers and line numbers count
        lines = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        if len(lines) == 1:
            too_big.append(line)
            continue
        half = b"".join(lines[: len(lines) // 2])
        pending[:0] = [(half, line), (piece[len(half):], line + half.count(b"\n"))]
    return bodies, too_big


class FileRejected(Exception):
    """A whole file cannot be ingested (format, header, compression); the message says why."""


@dataclass
class BatchOutcome:
    """What processing one SQS batch did."""

    failed_message_ids: list[str] = field(default_factory=list)
    ticks: int = 0
    rejected: int = 0
    windows: int = 0


@dataclass
class Pipeline:
    store: StateStore
    queue: TickQueue
    events: EventPublisher
    objects: ObjectStore
    settings: Settings
    clock: Callable[[], int] = time.time_ns
    metric: Callable[[str, float], None] = lambda name, value: None
    new_token: Callable[[], str] = lambda: uuid.uuid4().hex
    # Where a message goes that no retry can help (the processing queue's dead-letter queue).
    dead_letters: TickQueue | None = None
    # Whether an exception is the infrastructure's (throttling, timeouts): worth retrying.
    transient: Callable[[BaseException], bool] = lambda exc: isinstance(exc, TransientError)
    sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ ingest: REST
    def ingest_body(self, body: bytes, content_type: str | None, idempotency_key: str | None = None) -> dict[str, Any]:
        """Validate a whole request body and queue its ticks; raises an InputError for anything invalid."""
        limit = self.settings.max_body_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {limit} bytes")
        media_type = (content_type or "").split(";")[0].strip().lower()
        fmt = CONTENT_TYPES.get(media_type)
        if fmt is None:
            raise UnsupportedFormat(
                f"content type {media_type or '(none)'!r} is not supported; use one of: " + ", ".join(CONTENT_TYPES)
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTicks([RecordError(f"byte {exc.start}", "-", "body is not valid UTF-8")]) from None

        received_ns = self.clock()
        ingestion_id = f"api-{received_ns // 1_000_000:012x}{self.new_token()[:20]}"
        key = None
        if idempotency_key is not None:
            key = strip_space(idempotency_key)
            if not 1 <= len(key) <= 128 or not (key.isascii() and key.isprintable()):
                raise InputError("Idempotency-Key must be 1-128 printable ASCII characters")
        # Validate before claiming the key, so that a corrected retry under the same key is not refused.
        parsed = self._parse_body(text, fmt, received_ns)
        body_hash = hashlib.sha256(media_type.encode() + b"\n" + body).hexdigest()
        expires_at = received_ns // 1_000_000_000 + self.settings.idempotency_ttl_seconds
        if key is not None:
            claim = {"hash": body_hash, "ingestion_id": ingestion_id, "received_ns": received_ns, "state": "pending"}
            existing = self.store.claim_idempotency_key(key, claim, expires_at)
            if existing is not None:
                if existing["hash"] != body_hash:
                    raise IdempotencyConflict("this Idempotency-Key was used with a different body")
                if existing["state"] == "done":
                    self.metric("DuplicateRequests", 1)
                    return {**existing["response"], "replayed": True}
                # An earlier attempt did not finish: redo it under the same id and receipt time, so
                # the chunks it may have queued are overwritten rather than added.
                ingestion_id, received_ns = existing["ingestion_id"], existing["received_ns"]
                parsed = self._parse_body(text, fmt, received_ns)

        rank = f"{received_ns:020d}:{ingestion_id}"
        messages = encode_tick_messages(parsed.ticks, ingestion_id, rank, received_ns, self.settings.message_bytes)
        doc = {
            "ingestion_id": ingestion_id, "source": "api", "format": fmt, "status": "queued",
            "received_ns": received_ns, "accepted": len(parsed.ticks), "rejected": 0, "chunks": len(messages),
            "errors": [],
        }
        self.store.put_ingestion(ingestion_id, doc)
        try:
            self.queue.send(messages)
        except Exception as exc:
            logger.exception("queueing failed", extra={"ingestion_id": ingestion_id})
            self.store.put_ingestion(ingestion_id, {**doc, "status": "failed",
                                                    "errors": [{"location": "queue", "field": "-",
                                                                "reason": "could not queue the ticks"}]})
            try:
                self._revisit(self._windows_of(ingestion_id))  # messages that got through may be aggregated
            except Exception:
                logger.exception("could not withdraw the queued part: its windows keep it until recomputed")
            raise TransientError(
                "could not queue the ticks; retry the request (with the same Idempotency-Key)"
            ) from exc
        response = {
            "ingestion_id": ingestion_id, "accepted": len(parsed.ticks), "status": "queued",
            "status_path": f"/ingestions/{ingestion_id}",
        }
        if key is not None:
            self.store.complete_idempotency_key(
                key,
                {"hash": body_hash, "ingestion_id": ingestion_id, "received_ns": received_ns, "state": "done",
                 "response": response},
                expires_at,
            )
        self.metric("TicksAccepted", len(parsed.ticks))
        logger.info("ingestion queued", extra={"ingestion_id": ingestion_id, "ticks": len(parsed.ticks),
                                              "messages": len(messages)})
        return response

    def _parse_body(self, text: str, fmt: str, received_ns: int) -> ParseResult:
        ctx = ParseContext(received_ns=received_ns, strict=fmt != "csv", max_errors=self.settings.max_errors,
                           max_line_chars=self.settings.max_line_bytes)
        if fmt == "json":
            parsed = parse_json_document(text, ctx)
        elif fmt == "ndjson":
            parsed = parse_ndjson_lines(text_lines(text), 1, ctx)
        else:
            parsed = parse_csv_document(text, ctx)
        if parsed.rejected:
            raise InvalidTicks(parsed.errors, parsed.rejected)
        if not parsed.ticks:
            raise InvalidTicks([RecordError("body", "-", "contains no records")])
        return parsed

    # ------------------------------------------------------------------ ingest: S3 object
    def ingest_object(self, bucket: str, key: str, version_id: str | None, force: bool = False) -> dict[str, Any]:
        """Plan the ingestion of one object version: scan it once, queue line-aligned chunks.

        A version ingested already is skipped (``duplicate``) unless ``force``: then it is queued again
        under the same id and receipt time, so its chunks overwrite their partials instead of adding to them.
        """
        try:
            info = self.objects.head(bucket, key, version_id)
        except NotFound as exc:
            # Deleted (or replaced by a delete marker) before its event was handled: nothing left to ingest.
            logger.info("object gone before ingestion", extra={"object_key": key, "reason": exc.message})
            return {"status": "gone", "reason": exc.message}
        version = info.version_id if info.version_id not in (None, "null") else None
        ingestion_id = self.object_ingestion_id(bucket, key, version or info.etag)
        received_ns = self.clock()
        doc: dict[str, Any] = {
            "ingestion_id": ingestion_id, "source": "s3", "status": "scanning", "received_ns": received_ns,
            "object": {"bucket": bucket, "key": key, "version_id": version, "etag": info.etag, "size": info.size},
            "accepted": None, "rejected": 0, "chunks": None, "errors": [],
        }
        existing = self.store.create_ingestion(ingestion_id, doc)
        if existing is not None:
            if existing.get("status") == "scanning":
                doc = existing  # an earlier attempt stopped part-way: redo it with the same receipt time
            elif force:
                doc["received_ns"] = existing["received_ns"]  # same ranks as the first run: chunks overwrite
                logger.info("object ingested again (forced)", extra={"ingestion_id": ingestion_id, "object_key": key})
            else:
                logger.info("object already ingested", extra={"ingestion_id": ingestion_id, "object_key": key})
                self.metric("DuplicateObjects", 1)
                return {"ingestion_id": ingestion_id, "duplicate": True, "status": existing.get("status")}
            received_ns = doc["received_ns"]
        log_extra = {"ingestion_id": ingestion_id, "object_key": key}
        if version is not None and self.objects.latest_version(bucket, key) not in (None, version):
            # A newer version of the key exists: it is the truth, this one is never counted.
            doc.update(status="superseded", accepted=0, chunks=0)
            self.store.put_ingestion(ingestion_id, doc)
            logger.info("older object version skipped", extra=log_extra)
            return {"ingestion_id": ingestion_id, "status": "superseded"}
        try:
            chunks, fmt, line_rejects, rejected = self._queue_object(
                ingestion_id, received_ns, bucket, key, version, info)
        except FileRejected as exc:
            doc.update(status="rejected", accepted=0, chunks=0,
                       errors=[{"location": "file", "field": "-", "reason": str(exc)}])
            self.store.put_ingestion(ingestion_id, doc)
            logger.warning("file rejected", extra={**log_extra, "reason": str(exc)})
            self.metric("FilesRejected", 1)
            self._record_version(bucket, key, ingestion_id)
            return {"ingestion_id": ingestion_id, "status": "rejected", "reason": str(exc)}
        except Exception as exc:
            if self.transient(exc):
                raise  # the trigger retries; a retry redoes the scan under the same receipt time
            # A bug: no retry would help, and the status must not stay "scanning".
            logger.exception("scan failed", extra=log_extra)
            self.metric("IngestionsFailed", 1)
            reason = f"internal error while reading the file: {_describe(exc)}; replay it after the fix"
            doc.update(status="failed", errors=[{"location": "file", "field": "-", "reason": reason}])
            self.store.put_ingestion(ingestion_id, doc)
            self._revisit(self._windows_of(ingestion_id))  # chunks queued before the failure stop counting
            return {"ingestion_id": ingestion_id, "status": "failed", "reason": reason}
        doc.update(status="queued", chunks=chunks, format=fmt, rejected=rejected,
                   errors=[e.as_dict() for e in line_rejects])
        self.store.put_ingestion(ingestion_id, doc)
        self._record_version(bucket, key, ingestion_id)
        logger.info("object queued", extra={**log_extra, "chunks": chunks, "format": fmt})
        return {"ingestion_id": ingestion_id, "status": "queued", "chunks": chunks}

    @staticmethod
    def object_ingestion_id(bucket: str, key: str, version_or_etag: str) -> str:
        return "s3-" + hashlib.sha256(f"{bucket}/{key}#{version_or_etag}".encode()).hexdigest()[:32]

    def _record_version(self, bucket: str, key: str, ingestion_id: str) -> None:
        """A key's newest version is its truth: make the aggregator revisit the windows of the others.

        Which version counts is decided when bars are built (``_is_live``), from S3 itself, so uploads
        racing each other cannot leave a replaced version counted.
        """
        windows: set[tuple[str, int]] = set()
        for other in self.store.add_object_ingestion(bucket, key, ingestion_id) - {ingestion_id}:
            windows |= self._windows_of(other)
        if windows:
            self._revisit(windows)
            logger.info("object replaced", extra={"ingestion_id": ingestion_id, "object_key": key,
                                                  "windows": len(windows)})

    def _windows_of(self, ingestion_id: str) -> set[tuple[str, int]]:
        """The (symbol, minute) windows holding partials of the ingestion's processed chunks."""
        windows: set[tuple[str, int]] = set()
        _, chunks = self.store.get_ingestion(ingestion_id)
        prefix = ingestion_id + "#"
        for chunk in chunks:
            for symbol, (lo, hi) in chunk.get("windows", {}).items():
                windows.update((symbol, bar.start_ns) for source, bar in self.store.query_partials(symbol, lo, hi)
                               if source.startswith(prefix))
        return windows

    def _revisit(self, windows: set[tuple[str, int]]) -> None:
        """Make the aggregator rebuild these windows (whose sources' standing changed)."""
        if windows:
            self.store.mark_dirty(windows, self.new_token())

    def _inflate_limit(self, compressed_size: int) -> tuple[int, str]:
        """How far a gzip object may inflate, and the reject's reason past that."""
        s = self.settings
        by_ratio = max(s.gzip_ratio_floor_bytes, s.gzip_max_ratio * compressed_size)
        if by_ratio < s.max_object_bytes:
            return by_ratio, (f"the file inflates to more than {s.gzip_max_ratio} times its compressed size of "
                              f"{compressed_size} bytes (GZIP_MAX_RATIO): refused as a likely decompression bomb")
        return s.max_object_bytes, f"the file inflates to more than {s.max_object_bytes} bytes (MAX_OBJECT_BYTES)"

    def _queue_object(
        self, ingestion_id: str, received_ns: int, bucket: str, key: str, version: str | None, info: Any
    ) -> tuple[int, str, list[RecordError], int]:
        """Scan the object and queue its chunks; returns the chunk count, the format, and the lines rejected
        at this stage (longer than MAX_LINE_BYTES: first ones, and how many)."""
        settings = self.settings
        default_symbol = info.metadata.get("symbol") or None
        if default_symbol is not None:
            try:
                default_symbol = parse_symbol(default_symbol)
            except FieldError as exc:
                raise FileRejected(f"object metadata symbol {exc.reason}") from None
        gz = key.lower().endswith(".gz")
        inflate_limit, inflate_reason = self._inflate_limit(info.size)
        if not gz and info.size > settings.max_object_bytes:
            raise FileRejected(f"the file is {info.size} bytes; the limit is {settings.max_object_bytes} bytes "
                               "(MAX_OBJECT_BYTES)")

        def read() -> Iterator[bytes]:
            blocks = self.objects.stream(bucket, key, version)
            return gunzip(blocks, inflate_limit) if gz else blocks

        inflated = info.size
        try:
            if gz:
                # A damaged gzip shows only at its end, a bomb only once inflated: check it all before
                # queueing any of it (streamed, so in bounded memory).
                inflated = 0
                sampler = _Sampler()
                for block in read():
                    inflated += len(block)
                    sampler.feed(block)
                head = sampler.sample()
            else:
                head = _sniff(read())
        except zlib.error as exc:
            raise FileRejected(f"the file is not valid gzip: {exc}") from None
        except InflateLimit:
            raise FileRejected(inflate_reason) from None
        if not head:
            raise FileRejected("the file is empty")
        fmt = detect_format(key, info.content_type, head)
        if fmt is None:
            raise FileRejected("unsupported file type (use .csv, .ndjson, .jsonl or .json, optionally .gz)")
        binary = binary_format(head)
        if binary is not None:
            raise FileRejected(f"the file is not text: it is {binary}")
        base: dict[str, Any] = {
            "ingestion_id": ingestion_id, "rank": f"{received_ns:020d}:{ingestion_id}",
            "received_ns": received_ns, "bucket": bucket, "key": key, "version_id": version,
            "default_symbol": default_symbol,
        }
        if fmt == "json":
            if inflated > settings.json_object_max_bytes:
                raise FileRejected(
                    f"JSON array files are limited to {settings.json_object_max_bytes} bytes; "
                    "send large files as NDJSON or CSV, which are split and processed in parallel"
                )
            message = ObjectMessage(chunk=0, format="json", first_line=1, gzip=gz, **base)
            self.queue.send([queue_body(message)])
            return 1, fmt, [], 0
        stream = read()
        header_map = None
        start = 0
        first = 1
        if fmt == "csv":
            stream, header_map, start, first = self._read_header(stream, default_symbol)
        target = settings.inline_chunk_bytes if gz else settings.chunk_bytes
        count = 0
        rejects: list[RecordError] = []
        rejected = 0
        pending: list[str] = []
        try:
            for part in split_lines(stream, target, keep_data=gz, start=start, first_line=first,
                                    max_line_bytes=settings.max_line_bytes):
                if isinstance(part, LongLine):
                    rejected += 1
                    if len(rejects) < settings.max_errors:
                        rejects.append(long_line_error(f"line {part.number}", settings.max_line_bytes))
                    continue
                if part.blank:
                    continue  # only blank lines: nothing to process, so no message
                common: dict[str, Any] = {"format": fmt, "header": header_map, **base}
                if gz:
                    assert part.data is not None
                    bodies, too_big = _inline_messages(part.data, part.first_line, count, common,
                                                       settings.message_bytes)
                    for number in too_big:
                        rejected += 1
                        if len(rejects) < settings.max_errors:
                            rejects.append(RecordError(f"line {number}", "-", (
                                f"is too long to queue from a compressed file (over {settings.message_bytes} bytes "
                                "as a message); upload the file uncompressed")))
                else:
                    bodies = [queue_body(RangeMessage(chunk=count, first_line=part.first_line, start=part.start,
                                                      end=part.end, **common))]
                pending.extend(bodies)
                count += len(bodies)
                if len(pending) >= _SEND_GROUP:
                    self.queue.send(pending)
                    pending = []
        except zlib.error as exc:  # the object changed under us (it was checked above)
            raise FileRejected(f"the file is not valid gzip: {exc}") from None
        except InflateLimit:
            raise FileRejected(inflate_reason) from None
        if pending:
            self.queue.send(pending)
        return count, fmt, rejects, rejected

    def _read_header(
        self, stream: Iterator[bytes], default_symbol: str | None
    ) -> tuple[Iterator[bytes], dict[str, Any], int, int]:
        """Consume the CSV header line (after any blank lines); return the rest of the stream, the column
        map, and the offset and line number of the first data line."""
        start = 0
        blocks = iter(stream)
        opening = next(blocks, b"")
        if opening.startswith(b"\xef\xbb\xbf"):
            opening, start = opening[3:], 3
        found, rest = first_line(itertools.chain([opening], blocks), self.settings.max_line_bytes, start)
        if found is None:
            raise FileRejected("the file is empty")
        if isinstance(found, LongLine):
            raise FileRejected(f"line {found.number}: the header is longer than the limit of "
                               f"{self.settings.max_line_bytes} bytes for one line (MAX_LINE_BYTES)")
        if b"\x00" in found.text:
            raise FileRejected(f"line {found.number}: the header contains a NUL byte (binary data, not text)")
        try:
            header = header_cells(found.text.decode("utf-8"))
        except UnicodeDecodeError:
            raise FileRejected(f"line {found.number}: the header line is not UTF-8 text") from None
        except CsvLineError as exc:
            raise FileRejected(f"line {found.number}: the header {exc}") from None
        if not header:
            raise FileRejected("the file is empty")
        column_map = ColumnMap.from_header(header)
        problem = header_problem(column_map, default_symbol)
        if problem:
            raise FileRejected(f"line {found.number}: {problem} (a CSV file needs a header row)")
        return rest, column_map.to_dict(), found.end, found.number + 1

    # ------------------------------------------------------------------ process
    def process_batch(self, messages: Sequence[tuple[str, str] | tuple[str, str, int]]) -> BatchOutcome:
        """Process SQS messages (id, body[, receive count]); failures are isolated per message.

        Only infrastructure failures (throttling, timeouts: ``transient``) fail a message, so that SQS
        delivers it again. A message that cannot be processed at all (not one of ours, or a bug) would fail
        the same way on every delivery: it is moved to the dead-letter queue at once (``dlq redrive`` brings
        it back after a fix), and the chunk's failure is recorded on its ingestion. Bad records are never
        failures: they are the chunk's rejects.
        """
        outcome = BatchOutcome()
        changes: dict[str, list[int]] = {}
        ingestions: set[str] = set()
        for item in messages:
            message_id, body = item[0], item[1]
            attempt = item[2] if len(item) > 2 else 1  # type: ignore[misc]
            with logger.append_context_keys(message_id=message_id):
                try:
                    message = QUEUE_MESSAGE.validate_json(body)
                except ValueError as exc:  # pydantic's ValidationError is a ValueError
                    logger.warning("message is not a pipeline message", extra={"reason": str(exc)[:300]})
                    self._set_aside(message_id, body, _message_ids(body), "the queue message cannot be read "
                                    "(not a message of this pipeline, or from an incompatible version)", outcome)
                    continue
                where = (message.ingestion_id, message.chunk)
                try:
                    with logger.append_context_keys(ingestion_id=message.ingestion_id, chunk=message.chunk):
                        windows, accepted, rejected = self._process_with_retries(message)
                except Exception as exc:
                    if self.transient(exc):
                        # SQS delivers it again; on the last receive, its redrive policy moves it to the DLQ.
                        logger.warning("message failed; it will be retried", extra={"error": repr(exc)[:300]})
                        last = attempt >= self.settings.max_receive_count
                        reason = (f"{_describe(exc)}; moved to the dead-letter queue after {attempt} attempts"
                                  if last else f"{_describe(exc)}; retrying (attempt {attempt})")
                        self._record_chunk_failure(where, reason, attempt, final=last)
                        outcome.failed_message_ids.append(message_id)
                        self.metric("MessagesFailed", 1)
                        continue
                    logger.exception("chunk failed")  # the payload is not logged: only where it came from
                    self._set_aside(message_id, body, where, f"internal error: {_describe(exc)}", outcome)
                    continue
            ingestions.add(message.ingestion_id)
            outcome.ticks += accepted
            outcome.rejected += rejected
            outcome.windows += len(windows)
            for (symbol, minute), count in windows.items():
                entry = changes.setdefault(symbol, [minute, minute, 0])
                entry[0] = min(entry[0], minute)
                entry[1] = max(entry[1], minute)
                entry[2] += count
        self.metric("TicksProcessed", outcome.ticks)
        self.metric("TicksRejected", outcome.rejected)
        if changes:
            listed = sorted(changes.items())
            if len(listed) > MAX_CHANGES_LISTED:
                listed = []  # an event holds at most 256 KB: no list means "every dirty window" to the aggregator
            detail = {
                "ingestion_ids": sorted(ingestions)[:MAX_CHANGES_LISTED],
                "symbols_changed": len(changes),
                "changes": [
                    {"symbol": s, "first_minute_ns": lo, "last_minute_ns": hi, "ticks": n}
                    for s, (lo, hi, n) in listed
                ],
            }
            try:
                self.events.publish(TICKS_PROCESSED, detail)
            except Exception:
                # The dirty windows are stored already; the scheduled run aggregates them.
                logger.exception("could not publish TicksProcessed; the schedule will pick the windows up")
        return outcome

    def _process_with_retries(self, message: Any) -> tuple[dict[tuple[str, int], int], int, int]:
        """Process one message, trying again at once after a throttle or timeout: processing is idempotent,
        and a message failed back to SQS waits a whole visibility timeout before its next delivery."""
        for attempt in range(1, MESSAGE_ATTEMPTS + 1):
            try:
                return self._process_message(message)
            except Exception as exc:
                if attempt == MESSAGE_ATTEMPTS or not self.transient(exc):
                    raise
                logger.info("retrying a throttled message", extra={"error": repr(exc)[:200], "attempt": attempt})
                self.sleep(0.05 * 4**attempt)
        raise AssertionError("unreachable")

    def _set_aside(
        self, message_id: str, body: str, where: tuple[str, int] | None, reason: str, outcome: BatchOutcome
    ) -> None:
        """Move a message that no retry can help to the dead-letter queue now, and say so on its ingestion."""
        self.metric("ChunksFailed", 1)
        parked = False
        if self.dead_letters is not None:
            try:
                self.dead_letters.send([body])
                parked = True
            except Exception:
                logger.exception("could not move the message to the dead-letter queue; it will be retried")
        if not parked:
            outcome.failed_message_ids.append(message_id)  # redelivered, and dead-lettered by the redrive policy
        if where is not None:
            self._record_chunk_failure(where, f"{reason}; the message is in the dead-letter queue "
                                       "(see dlq list / dlq redrive)", None, final=True)

    def _record_chunk_failure(self, where: tuple[str, int], reason: str, attempt: int | None, final: bool) -> None:
        """Note on the ingestion that a chunk failed (unless it was processed already); best effort."""
        ingestion_id, chunk = where
        doc = {"chunk": chunk, "state": "failed" if final else "retrying", "reason": reason[:500],
               "attempts": attempt, "failed_ns": self.clock()}
        try:
            self.store.record_chunk_failure(ingestion_id, chunk, doc)
        except Exception:
            logger.exception("could not record the chunk's failure", extra={"ingestion_id": ingestion_id})

    def _process_message(self, message: Any) -> tuple[dict[tuple[str, int], int], int, int]:
        ticks, parsed = self._ticks_of(message)
        partials = partials_from_ticks(ticks, message.rank)
        source = f"{message.ingestion_id}#{message.chunk:06d}"
        self.store.put_partials(source, partials.values())
        self.store.mark_dirty(partials.keys(), self.new_token())
        spans: dict[str, list[int]] = {}
        for symbol, minute in partials:
            span = spans.setdefault(symbol, [minute, minute])
            span[0], span[1] = min(span[0], minute), max(span[1], minute)
        self.store.put_chunk_result(message.ingestion_id, message.chunk, {
            "chunk": message.chunk, "accepted": len(ticks), "rejected": parsed.rejected, "windows": spans,
            "errors": [e.as_dict() for e in parsed.errors], "processed_ns": self.clock(),
        })
        return {key: bar.trades for key, bar in partials.items()}, len(ticks), parsed.rejected

    def _ticks_of(self, message: Any) -> tuple[list[Tick], ParseResult]:
        if isinstance(message, TicksMessage):
            seq0 = message.seq0
            ticks = [
                Tick(s, Decimal(p), Decimal(v), ts, seq0 + i, tid, side, ex)
                for i, (s, p, v, ts, tid, side, ex) in enumerate(message.ticks)
            ]
            return ticks, ParseResult()
        ctx = ParseContext(received_ns=message.received_ns, default_symbol=message.default_symbol,
                           max_errors=self.settings.max_errors, max_line_chars=self.settings.max_line_bytes)
        if isinstance(message, ObjectMessage):
            raw = self.objects.read_all(message.bucket, message.key, message.version_id)
            if message.gzip:
                raw = b"".join(gunzip([raw], self.settings.json_object_max_bytes))
            text = raw.decode("utf-8", "replace")
            if text.lstrip("\ufeff \r\n\t").startswith("{") and not is_one_json_document(text):
                as_lines = parse_ndjson_lines(text_lines(text), 1, ctx)  # objects one per line, named .json
                return as_lines.ticks, as_lines
            parsed = parse_json_document(text, ctx)
            return parsed.ticks, parsed
        if isinstance(message, RangeMessage):
            data = self.objects.read_range(message.bucket, message.key, message.version_id, message.start, message.end)
            text = data.decode("utf-8", "replace")
        else:
            text = message.text
        lines = text_lines(text)
        if message.format == "csv":
            column_map = ColumnMap.from_dict(message.header or {})
            parsed = parse_csv_lines(lines, message.first_line, column_map, ctx)
        else:
            parsed = parse_ndjson_lines(lines, message.first_line, ctx)
        return parsed.ticks, parsed

    # ------------------------------------------------------------------ aggregate
    def aggregate(self, symbols: Iterable[str] | None = None) -> dict[str, int]:
        """Rebuild the bars of every dirty window (of ``symbols``, or all), then clear what was done."""
        dirty = self.store.list_dirty(symbols, self.settings.max_windows_per_run)
        by_symbol: dict[str, set[int]] = defaultdict(set)
        for symbol, minute, _ in dirty:
            by_symbol[symbol].add(minute)
        written = 0
        revised: list[dict[str, Any]] = []
        live: dict[str, bool] = {}
        for symbol, minutes in sorted(by_symbol.items()):
            written += self._aggregate_symbol(symbol, sorted(minutes), revised, live)
        cleared = self.store.clear_dirty(dirty)
        if revised:
            # Bars that had been published changed (late or replaced ticks): tell consumers which.
            try:
                self.events.publish(BARS_REVISED, {"count": len(revised), "bars": revised[:MAX_REVISIONS_LISTED]})
            except Exception:
                logger.exception("could not publish BarsRevised")
        self.metric("BarsWritten", written)
        self.metric("BarsRevised", len(revised))
        summary = {"windows": len(dirty), "symbols": len(by_symbol), "bars_written": written,
                   "bars_revised": len(revised), "still_dirty": len(dirty) - cleared}
        if dirty:
            logger.info("aggregated", extra=summary)
        return summary

    def _is_live(self, source: str, live: dict[str, bool]) -> bool:
        """Whether a partial's source counts.

        An object version counts only while no newer version exists. A request whose queueing failed
        (the client got a 503 and will retry, perhaps without an Idempotency-Key) counts not at all,
        even for the chunks that did reach the queue; its retry under the same key revives it.
        """
        ingestion_id = source.split("#", 1)[0]
        if ingestion_id not in live:
            meta = self.store.get_ingestion_meta(ingestion_id)
            if meta is None:
                live[ingestion_id] = True
            elif meta.get("source") == "s3":
                # A file whose scan failed counts not at all until it is replayed (same id, same chunks).
                live[ingestion_id] = meta.get("status") != "failed" and not self._superseded(meta)
            else:
                live[ingestion_id] = meta.get("status") != "failed"
        return live[ingestion_id]

    def _superseded(self, meta: dict[str, Any]) -> bool:
        obj = meta.get("object") or {}
        version = obj.get("version_id")
        if version is None:
            return False
        latest = self.objects.latest_version(obj["bucket"], obj["key"])
        return latest is not None and latest != version

    def _aggregate_symbol(
        self, symbol: str, minutes: list[int], revised: list[dict[str, Any]], live: dict[str, bool]
    ) -> int:
        wanted = set(minutes)
        fresh: dict[int, Bar | None] = {m: None for m in minutes}
        grouped: dict[int, list[Bar]] = defaultdict(list)
        for lo, hi in _ranges(minutes, RANGE_GAP_NS):
            for source, partial in self.store.query_partials(symbol, lo, hi):
                if partial.start_ns in wanted and self._is_live(source, live):
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
                rows, _ = self.store.query_bars(symbol, child, lo, hi + width - 1)
                for bar, _rev in rows:
                    start = window_start(bar.start_ns, interval)
                    if start in wanted:
                        children[start].append(bar)
            level = {s: merge_all(children.get(s, []), interval, s) for s in starts}
            written += self._write_level(symbol, interval, level, revised)
        if latest is not None:
            self.store.update_symbol(symbol, latest)
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
            rows, _ = self.store.query_bars(symbol, interval, lo, hi)
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
            self.store.put_bars(writes, self.clock())
        if deletes:
            self.store.delete_bars(deletes)
        return len(writes)

    # ------------------------------------------------------------------ read
    def get_bars(
        self, symbol: str | None, interval: str | None, start: str | None = None, end: str | None = None,
        limit: str | None = None, cursor: str | None = None,
    ) -> dict[str, Any]:
        if not symbol:
            raise InvalidQuery("symbol is required, e.g. ?symbol=AAPL&interval=1m")
        try:
            symbol = parse_symbol(symbol)
        except FieldError as exc:
            raise InvalidQuery(f"symbol {exc.reason}") from None
        interval = interval or "1m"
        if interval not in INTERVALS:
            raise InvalidQuery(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
        lo = parse_query_time("start", start)
        hi = parse_query_time("end", end)
        lo = 0 if lo is None else lo
        hi = END_OF_TIME_NS if hi is None else hi
        if hi <= lo:
            raise InvalidQuery(f"end must be after start (start {format_ns(lo)}, end {format_ns(hi)})")
        count = parse_count("limit", limit, DEFAULT_BAR_LIMIT, MAX_BAR_LIMIT)
        after = None
        if cursor:
            after = _read_cursor(cursor)
            if after is None:
                raise InvalidQuery("next is not a cursor this API returned; pass back the \"next\" of a response")
            if not lo <= after < hi:
                raise InvalidQuery("next is not a cursor of this query: it points outside [start, end); "
                                   "pass it back with the same start and end")
        rows, next_after = self.store.query_bars(symbol, interval, lo, hi - 1, count, after)
        token = None if next_after is None else base64.urlsafe_b64encode(str(next_after).encode()).decode().rstrip("=")
        return {"symbol": symbol, "interval": interval,
                "bars": [bar_to_json(bar, rev) for bar, rev in rows], "next": token}

    def ingestion_status(self, ingestion_id: str) -> dict[str, Any]:
        """What became of an ingestion. Never "in progress" forever: a chunk that failed for good (it is in
        the dead-letter queue) makes it ``failed``, and one that made no progress for
        ``stalled_after_seconds`` (a crashed function leaves no record) is reported ``stalled``."""
        if not INGESTION_ID_RE.fullmatch(ingestion_id):
            raise NotFound(f"no ingestion with id {show(ingestion_id, 90)}")
        meta, chunks = self.store.get_ingestion(ingestion_id)
        if meta is None:
            raise NotFound(f"no ingestion with id {ingestion_id!r}")
        done = [c for c in chunks if "state" not in c]
        failed = [c for c in chunks if c.get("state") == "failed"]
        total = meta.get("chunks")
        status = meta["status"]
        if meta["source"] == "s3" and status != "superseded" and self._superseded(meta):
            status = "superseded"
        elif status == "queued" and total is not None:
            if len(done) >= total:
                status = "processed"
            elif failed:
                status = "failed"
            elif chunks:
                status = "processing"
        accepted = meta["accepted"] if meta["source"] == "api" else sum(c["accepted"] for c in done)
        rejected = meta.get("rejected", 0) + sum(c["rejected"] for c in done)
        errors = list(meta.get("errors", []))
        errors.extend({"location": f"chunk {c['chunk']}", "field": "-", "reason": c["reason"]}
                      for c in chunks if "state" in c)
        for chunk in done:
            errors.extend(chunk["errors"])
        if status in IN_PROGRESS:
            last = max([meta["received_ns"], *(c.get("processed_ns") or c.get("failed_ns") or 0 for c in chunks)])
            idle_s = (self.clock() - last) // 1_000_000_000
            if idle_s > self.settings.stalled_after_seconds:
                errors.insert(0, {"location": "ingestion", "field": "-", "reason": (
                    f"no progress for {idle_s} s while {status}: a function may have crashed; see the dead-letter "
                    "queues (dlq list), and replay the file or send the request again")})
                status = "stalled"
        out = {
            "ingestion_id": ingestion_id, "source": meta["source"], "status": status,
            "received_at": format_ns(meta["received_ns"]), "accepted": accepted, "rejected": rejected,
            "chunks": {"total": total, "processed": len(done), "failed": len(failed)},
            "errors": errors[: self.settings.max_errors],
        }
        if done and status == "processed":
            out["completed_at"] = format_ns(max(c["processed_ns"] for c in done))
        if "object" in meta:
            out["object"] = meta["object"]
        return out

    def list_symbols(self) -> dict[str, Any]:
        return {"symbols": [{"symbol": s, "latest_bar": format_ns(ns)} for s, ns in sorted(self.store.list_symbols())]}


def encode_tick_messages(
    ticks: Sequence[Tick], ingestion_id: str, rank: str, received_ns: int, limit: int
) -> list[str]:
    """Pack validated ticks into as few queue messages as the size limit allows."""
    messages: list[str] = []
    rows: list[str] = []
    size = 0
    seq0 = 0
    dumps = json.dumps

    def flush(next_seq: int) -> None:
        nonlocal rows, size, seq0
        head = (f'{{"v":1,"kind":"ticks","ingestion_id":{dumps(ingestion_id)},"rank":{dumps(rank)},'
                f'"received_ns":{received_ns},"chunk":{len(messages)},"seq0":{seq0},"ticks":[')
        messages.append(head + ",".join(rows) + "]}")
        rows, size, seq0 = [], 0, next_seq

    for index, t in enumerate(ticks):
        row = dumps([t.symbol, str(t.price), str(t.volume), t.ts_ns, t.trade_id, t.side, t.exchange],
                    separators=(",", ":"))
        if rows and size + len(row) + 1 > limit - 400:
            flush(index)
        rows.append(row)
        size += len(row.encode()) + 1
    if rows:
        flush(len(ticks))
    return messages
