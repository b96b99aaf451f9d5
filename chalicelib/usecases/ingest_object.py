"""An S3 object created: scan it once, in bounded memory, into line-aligned chunks and queue them.

Uncompressed objects are queued as byte ranges that processors read themselves; gzip cannot be range-read,
so its chunks travel as text. A version ingested already is not ingested again; a newer version of the same
key makes the older ones stop counting.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from ..domain.chunking import InflateLimit, LongLine, gunzip, split_lines
from ..domain.errors import FileRejected, NotFound, RecordError, TransientError
from ..domain.files import InflateLimits, Sampler, binary_format, detect_format, is_gzip_name, read_csv_header, sniff
from ..domain.formats import long_line_error
from ..domain.ingestion import (
    Ingestion,
    Source,
    Status,
    StoredObject,
    object_ingestion_id,
    real_version,
    source_rank,
)
from ..domain.options import METADATA, OptionError, ReadOptions, read_options
from ..observability import logger
from ..ports import IngestionStore, ObjectInfo, ObjectStore, TickQueue
from ..schemas import ObjectMessage, RangeMessage, TextMessage, queue_body
from ..settings import Settings
from .common import Clock, Metric, Transient, describe, no_metric
from .sources import Sources

SEND_GROUP = 10  # chunk messages queued per request while the scan goes on


def inline_messages(data: bytes, first_line: int, first_chunk: int, common: dict[str, Any], limit: int,
                    ) -> tuple[list[str], list[int]]:
    """Text messages carrying the lines ``data`` (from line ``first_line``), each within ``limit`` bytes:
    split at line feeds where the encoded text grows past it (escaped characters take up to 6 bytes each).
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
        lines = [part + b"\n" for part in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        if len(lines) == 1:
            too_big.append(line)
            continue
        half = b"".join(lines[: len(lines) // 2])
        pending[:0] = [(half, line), (piece[len(half):], line + half.count(b"\n"))]
    return bodies, too_big


class _Plan:
    """What a scan queued, and the lines it rejected itself (the first ones kept, all counted)."""

    def __init__(self, fmt: str, max_errors: int) -> None:
        self.fmt = fmt
        self.chunks = 0
        self.rejected = 0
        self.rejects: list[RecordError] = []
        self._max_errors = max_errors

    def reject(self, error: RecordError) -> None:
        self.rejected += 1
        if len(self.rejects) < self._max_errors:
            self.rejects.append(error)


class IngestObject:
    def __init__(self, ingestions: IngestionStore, objects: ObjectStore, queue: TickQueue, sources: Sources,
                 settings: Settings, clock: Clock = time.time_ns, metric: Metric = no_metric,
                 transient: Transient = lambda exc: isinstance(exc, TransientError)) -> None:
        self._ingestions = ingestions
        self._objects = objects
        self._queue = queue
        self._sources = sources
        self._settings = settings
        self._clock = clock
        self._metric = metric
        self._transient = transient
        self._limits = InflateLimits(settings.max_object_bytes, settings.gzip_max_ratio,
                                     settings.gzip_ratio_floor_bytes)

    def __call__(self, bucket: str, key: str, version_id: str | None, force: bool = False) -> dict[str, Any]:
        """Plan the ingestion of one object version. A version ingested already is skipped (``duplicate``)
        unless ``force``: then it is queued again under the same id and receipt time, so its chunks overwrite
        their partials instead of adding to them."""
        try:
            info = self._objects.head(bucket, key, version_id)
        except NotFound as exc:
            # Deleted (or replaced by a delete marker) before its event was handled: nothing left to ingest.
            logger.info("object gone before ingestion", extra={"object_key": key, "reason": exc.message})
            return {"status": "gone", "reason": exc.message}
        version = real_version(info.version_id)
        ingestion_id = object_ingestion_id(bucket, key, version or info.etag)
        ingestion = Ingestion(ingestion_id, Source.S3, Status.SCANNING, self._clock(),
                              object=StoredObject(bucket, key, version, info.etag, info.size))
        log_extra = {"ingestion_id": ingestion_id, "object_key": key}
        existing = self._ingestions.create_ingestion(ingestion)
        if existing is None or existing.status is Status.SCANNING:
            # Listed under its key from the start, whatever becomes of it (GET /ingestions?key=...).
            self._ingestions.add_object_ingestion(bucket, key, ingestion_id)
        if existing is not None:
            if existing.status is Status.SCANNING:
                ingestion = existing  # an earlier attempt stopped part-way: redo it with the same receipt time
            elif force:
                ingestion = ingestion.but(received_ns=existing.received_ns)  # same ranks: chunks overwrite
                logger.info("object ingested again (forced)", extra=log_extra)
            else:
                logger.info("object already ingested", extra=log_extra)
                self._metric("DuplicateObjects", 1)
                return {"ingestion_id": ingestion_id, "duplicate": True, "status": existing.status.value}
        if version is not None and self._objects.latest_version(bucket, key) not in (None, version):
            # A newer version of the key exists: it is the truth, this one is never counted.
            self._ingestions.put_ingestion(ingestion.but(status=Status.SUPERSEDED, accepted=0, chunks=0))
            logger.info("older object version skipped", extra=log_extra)
            return {"ingestion_id": ingestion_id, "status": Status.SUPERSEDED.value}
        try:
            plan = self._scan(ingestion, info)
        except FileRejected as exc:
            self._ingestions.put_ingestion(ingestion.but(status=Status.REJECTED, accepted=0, chunks=0,
                                                         errors=(RecordError("file", "-", exc.message),)))
            logger.warning("file rejected", extra={**log_extra, "reason": exc.message})
            self._metric("FilesRejected", 1)
            self._replaces_others(bucket, key, ingestion_id)
            return {"ingestion_id": ingestion_id, "status": Status.REJECTED.value, "reason": exc.message}
        except Exception as exc:
            if self._transient(exc):
                raise  # the trigger retries; a retry redoes the scan under the same receipt time
            # A bug: no retry would help, and the status must not stay "scanning".
            logger.exception("scan failed", extra=log_extra)
            self._metric("IngestionsFailed", 1)
            reason = f"internal error while reading the file: {describe(exc)}; replay it after the fix"
            self._ingestions.put_ingestion(ingestion.but(status=Status.FAILED,
                                                         errors=(RecordError("file", "-", reason),)))
            self._sources.withdraw(ingestion_id)  # chunks queued before the failure stop counting
            return {"ingestion_id": ingestion_id, "status": Status.FAILED.value, "reason": reason}
        self._ingestions.put_ingestion(ingestion.but(status=Status.QUEUED, chunks=plan.chunks, format=plan.fmt,
                                                     rejected=plan.rejected, errors=tuple(plan.rejects)))
        self._replaces_others(bucket, key, ingestion_id)
        logger.info("object queued", extra={**log_extra, "chunks": plan.chunks, "format": plan.fmt})
        return {"ingestion_id": ingestion_id, "status": Status.QUEUED.value, "chunks": plan.chunks}

    def _replaces_others(self, bucket: str, key: str, ingestion_id: str) -> None:
        """A key's newest version is its truth: make the aggregator revisit the windows of the others."""
        windows: set[tuple[str, int]] = set()
        for other in self._ingestions.add_object_ingestion(bucket, key, ingestion_id) - {ingestion_id}:
            windows |= self._sources.windows_of(other)
        if windows:
            self._sources.revisit(windows)
            logger.info("object replaced", extra={"ingestion_id": ingestion_id, "object_key": key,
                                                  "windows": len(windows)})

    def _scan(self, ingestion: Ingestion, info: ObjectInfo) -> _Plan:
        """Read the object, and queue its chunks; FileRejected when it cannot be read at all."""
        settings = self._settings
        assert ingestion.object is not None
        obj = ingestion.object
        try:
            options = read_options(info.metadata, METADATA)
        except OptionError as exc:
            raise FileRejected(f"object metadata x-amz-meta-{exc.name} {exc.reason}") from None
        default_symbol = options.symbol
        gz = is_gzip_name(obj.key)
        inflate_limit, inflate_reason = self._limits.for_size(info.size)
        if not gz and info.size > settings.max_object_bytes:
            raise FileRejected(f"the file is {info.size} bytes; the limit is {settings.max_object_bytes} bytes "
                               "(MAX_OBJECT_BYTES)")

        def read() -> Iterator[bytes]:
            blocks = self._objects.stream(obj.bucket, obj.key, obj.version_id)
            return gunzip(blocks, inflate_limit) if gz else blocks

        try:
            head, inflated = self._check(read, gz, info.size)
            fmt = detect_format(obj.key, info.content_type, head)
            if fmt is None:
                raise FileRejected("unsupported file type (use .csv, .ndjson, .jsonl or .json, optionally .gz)")
            binary = binary_format(head)
            if binary is not None:
                raise FileRejected(f"the file is not text: it is {binary}")
            base: dict[str, Any] = {
                "ingestion_id": ingestion.ingestion_id, "received_ns": ingestion.received_ns,
                "rank": source_rank(ingestion.received_ns, ingestion.ingestion_id), "bucket": obj.bucket,
                "key": obj.key, "version_id": obj.version_id, "default_symbol": default_symbol,
                "options": options.to_dict() or None,
            }
            if options.columns is not None and fmt != "csv":
                raise FileRejected(f"object metadata x-amz-meta-columns names the columns of a CSV file; this "
                                   f"file is {fmt.upper()}")
            plan = _Plan(fmt, settings.max_errors)
            if fmt == "json":
                if inflated > settings.json_object_max_bytes:
                    raise FileRejected(f"JSON array files are limited to {settings.json_object_max_bytes} bytes; "
                                       "send large files as NDJSON or CSV, which are split and processed in parallel")
                self._queue.send([queue_body(ObjectMessage(chunk=0, format="json", first_line=1, gzip=gz, **base))])
                plan.chunks = 1
                return plan
            self._queue_chunks(read(), plan, gz, {"format": fmt, **base}, options)
            return plan
        except zlib.error as exc:
            raise FileRejected(f"the file is not valid gzip: {exc}") from None
        except InflateLimit:
            raise FileRejected(inflate_reason) from None

    @staticmethod
    def _check(read: Callable[[], Iterator[bytes]], gz: bool, size: int) -> tuple[bytes, int]:
        """The file's first non-blank bytes and its inflated size. A damaged gzip shows only at its end, a bomb
        only once inflated: a compressed file is read whole (streamed) before any of it is queued."""
        if not gz:
            head = sniff(read())
        else:
            size, sampler = 0, Sampler()
            for block in read():
                size += len(block)
                sampler.feed(block)
            head = sampler.sample()
        if not head:
            raise FileRejected("the file is empty")
        return head, size

    def _queue_chunks(self, stream: Iterator[bytes], plan: _Plan, gz: bool, common: dict[str, Any],
                      options: ReadOptions) -> None:
        settings = self._settings
        start, first, header = 0, 1, None
        if plan.fmt == "csv":
            csv_start = read_csv_header(stream, common["default_symbol"], settings.max_line_bytes, options)
            stream, header, start, first = csv_start.rows, csv_start.columns, csv_start.offset, csv_start.first_line
        common = {**common, "header": header}
        target = settings.inline_chunk_bytes if gz else settings.chunk_bytes
        pending: list[str] = []
        for part in split_lines(stream, target, keep_data=gz, start=start, first_line=first,
                                max_line_bytes=settings.max_line_bytes):
            if isinstance(part, LongLine):
                plan.reject(long_line_error(f"line {part.number}", settings.max_line_bytes))
                continue
            if part.blank:
                continue  # only blank lines: nothing to process, so no message
            if gz:
                assert part.data is not None
                bodies, too_big = inline_messages(part.data, part.first_line, plan.chunks, common,
                                                  settings.message_bytes)
                for number in too_big:
                    plan.reject(RecordError(f"line {number}", "-", (
                        f"is too long to queue from a compressed file (over {settings.message_bytes} bytes as a "
                        "message); upload the file uncompressed")))
            else:
                bodies = [queue_body(RangeMessage(chunk=plan.chunks, first_line=part.first_line, start=part.start,
                                                  end=part.end, **common))]
            pending.extend(bodies)
            plan.chunks += len(bodies)
            if len(pending) >= SEND_GROUP:
                self._queue.send(pending)
                pending = []
        if pending:
            self._queue.send(pending)
