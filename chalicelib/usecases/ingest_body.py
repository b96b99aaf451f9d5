"""POST /ingest: validate a whole request body, then queue its ticks, once per Idempotency-Key."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..domain.bars import minute_windows
from ..domain.csv_rows import parse_csv_document
from ..domain.errors import (
    IdempotencyConflict,
    InputError,
    InvalidQuery,
    InvalidTicks,
    PayloadTooLarge,
    RecordError,
    TransientError,
    UnsupportedFormat,
)
from ..domain.formats import (
    ParseContext,
    ParseResult,
    parse_json_document,
    parse_ndjson_lines,
    text_lines,
)
from ..domain.ingestion import (
    ClaimState,
    IdempotencyClaim,
    Ingestion,
    Source,
    Status,
    api_ingestion_id,
    source_rank,
)
from ..domain.media import MEDIA_TYPES
from ..domain.options import OPTION_NAMES, QUERY, OptionError, ReadOptions, read_options
from ..domain.text import show, strip_space
from ..domain.timefmt import NS_PER_S
from ..observability import logger
from ..ports import IdempotencyStore, IngestionStore, TickQueue
from ..schemas import encode_column_messages
from ..settings import Settings
from .common import Clock, Metric, Transient, no_metric
from .sources import Sources

MAX_KEY_CHARS = 128
QUERY_OPTION_NAMES = frozenset(names[QUERY] for names in OPTION_NAMES.values())


def query_options(params: Mapping[str, str]) -> ReadOptions:
    """The reading options of POST /ingest's query string; InvalidQuery naming a parameter that is not one,
    or one whose value is bad."""
    unknown = sorted(name for name in params if name not in QUERY_OPTION_NAMES)
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(show(n, 40) for n in unknown[:10])}; "
                           f"POST /ingest takes {', '.join(sorted(QUERY_OPTION_NAMES))}")
    try:
        return read_options(params, QUERY)
    except OptionError as exc:
        raise InvalidQuery(f"query parameter {exc.name} {exc.reason}") from None


class IngestBody:
    def __init__(self, ingestions: IngestionStore, keys: IdempotencyStore, queue: TickQueue, sources: Sources,
                 settings: Settings, clock: Clock = time.time_ns, metric: Metric = no_metric,
                 new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
                 transient: Transient = lambda exc: isinstance(exc, TransientError)) -> None:
        self._ingestions = ingestions
        self._keys = keys
        self._queue = queue
        self._sources = sources
        self._settings = settings
        self._clock = clock
        self._metric = metric
        self._new_token = new_token
        self._transient = transient

    def __call__(self, body: bytes, content_type: str | None, idempotency_key: str | None = None,
                 params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Validate the body and queue its ticks; an InputError for anything invalid, TransientError (retry)
        when the ticks could not be queued. ``params`` are the query string's reading options (options.py).
        Answers the ingestion id, the count, the status path, and the fields or columns that were ignored."""
        options = query_options(params or {})
        limit = self._settings.max_body_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {limit} bytes")
        media_type = (content_type or "").split(";")[0].strip().lower()
        fmt = MEDIA_TYPES.get(media_type)
        if fmt is None:
            raise UnsupportedFormat(
                f"content type {media_type or '(none)'!r} is not supported; use one of: " + ", ".join(MEDIA_TYPES))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTicks([RecordError(f"byte {exc.start}", "-", "body is not valid UTF-8")]) from None
        key = None
        if idempotency_key is not None:
            key = strip_space(idempotency_key)
            if not 1 <= len(key) <= MAX_KEY_CHARS or not (key.isascii() and key.isprintable()):
                raise InputError(f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII characters")
        received_ns = self._clock()
        ingestion_id = api_ingestion_id(received_ns, self._new_token())
        # Validate before claiming the key, so that a corrected retry under the same key is not refused.
        parsed = self._parse(text, fmt, received_ns, options)
        body_hash = hashlib.sha256(media_type.encode() + b"\n" + options.canonical().encode() + b"\n" + body
                                   ).hexdigest()
        expires_at = received_ns // NS_PER_S + self._settings.idempotency_ttl_seconds
        if key is not None:
            claim = IdempotencyClaim(body_hash, ingestion_id, received_ns, ClaimState.PENDING)
            existing = self._keys.claim_idempotency_key(key, claim, expires_at)
            if existing is not None:
                if existing.body_hash != body_hash:
                    raise IdempotencyConflict("this Idempotency-Key was used with a different body")
                if existing.state is ClaimState.DONE and existing.response is not None:
                    self._metric("DuplicateRequests", 1)
                    return {**existing.response, "replayed": True}
                # An earlier attempt did not finish: redo it under the same id and receipt time, so
                # the chunks it may have queued are overwritten rather than added.
                ingestion_id, received_ns = existing.ingestion_id, existing.received_ns
                parsed = self._parse(text, fmt, received_ns, options)
        messages = encode_column_messages(parsed.columns(), ingestion_id, source_rank(received_ns, ingestion_id),
                                        received_ns, self._settings.message_bytes)
        ingestion = Ingestion(ingestion_id, Source.API, Status.QUEUED, received_ns, accepted=len(parsed),
                              chunks=len(messages), format=fmt)
        self._ingestions.put_ingestion(ingestion)
        try:
            self._queue.send(messages)
        except Exception as exc:
            self._never_count(ingestion, parsed)
            if self._transient(exc):
                raise TransientError("could not queue the ticks; retry the request (with the same Idempotency-Key)"
                                     ) from exc
            raise
        response: dict[str, Any] = {"ingestion_id": ingestion_id, "accepted": len(parsed),
                                    "status": Status.QUEUED.value, "status_path": f"/ingestions/{ingestion_id}"}
        if parsed.ignored:
            response["ignored_fields"] = list(parsed.ignored)
        if key is not None:
            done = IdempotencyClaim(body_hash, ingestion_id, received_ns, ClaimState.DONE, response)
            self._keys.complete_idempotency_key(key, done, expires_at)
        self._metric("TicksAccepted", len(parsed))
        logger.info("ingestion queued", extra={"ingestion_id": ingestion_id, "ticks": len(parsed),
                                              "messages": len(messages)})
        return response

    def _never_count(self, ingestion: Ingestion, parsed: ParseResult) -> None:
        """A request whose ticks were not all queued counts not at all (its client retries), not even the
        part that reached the queue. Every window of the body is revisited, not only those of the chunks
        known to be processed: a chunk may be processed and counted while its result is not stored yet."""
        logger.exception("queueing failed", extra={"ingestion_id": ingestion.ingestion_id})
        self._ingestions.put_ingestion(ingestion.but(status=Status.FAILED, errors=(
            RecordError("queue", "-", "could not queue the ticks"),)))
        try:
            self._sources.revisit(minute_windows(parsed.columns()))  # messages that got through may be counted
        except Exception:
            logger.exception("could not withdraw the queued part: its windows keep it until recomputed")

    def _parse(self, text: str, fmt: str, received_ns: int, options: ReadOptions) -> ParseResult:
        if options.columns is not None and fmt != "csv":
            raise InvalidQuery(f"query parameter columns names the columns of a CSV body; this body is {fmt}")
        ctx = ParseContext(received_ns=received_ns, default_symbol=options.symbol, options=options,
                           max_errors=self._settings.max_errors, max_line_chars=self._settings.max_line_bytes,
                           fast=self._settings.fast_path)
        if fmt == "json":
            parsed = parse_json_document(text, ctx)
        elif fmt == "ndjson":
            parsed = parse_ndjson_lines(text_lines(text), 1, ctx)
        else:
            parsed = parse_csv_document(text, ctx)
        if parsed.rejected:
            raise InvalidTicks(parsed.errors, parsed.rejected)
        if not len(parsed):
            raise InvalidTicks([RecordError("body", "-", "contains no records")])
        return parsed
