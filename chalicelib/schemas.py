"""msgspec models at the pipeline's edges, used on both sides: SQS message bodies (and their codec), the
details of the S3 "Object Created" event and of the pipeline's own TicksProcessed and BarsRevised events.

Message bodies are versioned and validated in one call when a processor reads them (``decode_message``), so
a malformed or foreign message is set aside (in the dead-letter queue) instead of being half-processed. The
queue messages are a tagged union on ``kind``; an event's detail is read with ``detail_of`` and written with
``to_builtins``. Structs are not validated when built in code: only decoding checks types and constraints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec

from .domain.ingestion import MAX_ID_CHARS
from .domain.ticks import Tick

# The pipeline's own EventBridge events (detail-types), from source EVENT_SOURCE (settings).
TICKS_PROCESSED = "TicksProcessed"
BARS_REVISED = "BarsRevised"
AGGREGATION_PENDING = "AggregationPending"  # an aggregator hands symbols on to new runs

# A validated tick on the wire: [symbol, price, volume, ts_ns, trade_id, side, exchange].
WireTick = tuple[str, str, str, int, str | None, str | None, str | None]

NonNegative = Annotated[int, msgspec.Meta(ge=0)]

S = TypeVar("S", bound=msgspec.Struct)


class _Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    v: Literal[1] = 1
    ingestion_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    chunk: NonNegative
    rank: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    received_ns: int


class TicksMessage(_Message, frozen=True, kw_only=True, tag="ticks"):
    """Ticks validated at the REST edge; ``seq0`` is the source position of the first one."""

    kind: ClassVar[Literal["ticks"]] = "ticks"
    seq0: NonNegative
    ticks: list[WireTick]


class ObjectPart(_Message, frozen=True, kw_only=True):
    """Where to read a chunk of an S3 object, and how to parse it."""

    bucket: str
    key: str
    version_id: str | None = None
    format: Literal["csv", "ndjson", "json"]
    first_line: Annotated[int, msgspec.Meta(ge=1)]
    header: dict[str, Any] | None = None  # ColumnMap.to_dict() for CSV
    default_symbol: str | None = None


class RangeMessage(ObjectPart, frozen=True, kw_only=True, tag="range"):
    """A line-aligned byte range [start, end) of an uncompressed object."""

    kind: ClassVar[Literal["range"]] = "range"
    start: NonNegative
    end: NonNegative


class TextMessage(ObjectPart, frozen=True, kw_only=True, tag="text"):
    """Lines carried inline (from a compressed object, which cannot be range-read)."""

    kind: ClassVar[Literal["text"]] = "text"
    text: str


class ObjectMessage(ObjectPart, frozen=True, kw_only=True, tag="object"):
    """A whole object parsed at once (a JSON array cannot be split on lines)."""

    kind: ClassVar[Literal["object"]] = "object"
    gzip: bool = False


QueueMessage = TicksMessage | RangeMessage | TextMessage | ObjectMessage
_MESSAGE_DECODER = msgspec.json.Decoder(QueueMessage)


def decode_message(body: str | bytes) -> QueueMessage:
    """A queue message from its body, validated: raises ``msgspec.DecodeError`` (not JSON) or
    ``msgspec.ValidationError`` (not a message of this pipeline), both ValueErrors."""
    return _MESSAGE_DECODER.decode(body)


def queue_body(message: _Message) -> str:
    """A queue message's body, in ASCII: SQS refuses some characters (U+FFFE, U+FFFF) that a file's text or
    an object key may hold, and JSON can spell every character as an escape."""
    return json.dumps(msgspec.to_builtins(message), separators=(",", ":"), ensure_ascii=True)


def encode_tick_messages(
    ticks: Sequence[Tick], ingestion_id: str, rank: str, received_ns: int, limit: int
) -> list[str]:
    """Pack validated ticks into as few TicksMessage bodies as the size limit allows."""
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


def decode_ticks(message: TicksMessage) -> list[Tick]:
    """The ticks a TicksMessage carries (validated when they were received)."""
    seq0 = message.seq0
    return [Tick(s, Decimal(p), Decimal(v), ts, seq0 + i, tid, side, ex)
            for i, (s, p, v, ts, tid, side, ex) in enumerate(message.ticks)]


def detail_of(cls: type[S], data: Mapping[str, Any]) -> S:
    """An event's detail read as ``cls``, validated: raises ``msgspec.ValidationError`` (a ValueError)."""
    return msgspec.convert(data, cls)


def to_builtins(struct: msgspec.Struct) -> dict[str, Any]:
    """A struct as JSON-ready builtins (an event's detail, as published)."""
    data: dict[str, Any] = msgspec.to_builtins(struct)
    return data


class S3Bucket(msgspec.Struct):
    name: str


class S3Object(msgspec.Struct):
    key: str
    version_id: str | None = msgspec.field(default=None, name="version-id")  # absent or null: not versioned
    size: int | None = None


class ObjectCreatedDetail(msgspec.Struct):
    """Detail of S3's "Object Created" event on EventBridge (the fields the ingestion reads; others are
    ignored)."""

    bucket: S3Bucket
    object: S3Object

    @classmethod
    def of(cls, bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
        """The detail as S3 sends it (for the local driver and the tests)."""
        detail: dict[str, Any] = {"bucket": {"name": bucket}, "object": {"key": key}}
        if version_id is not None:
            detail["object"]["version-id"] = version_id
        return detail


class WindowChange(msgspec.Struct, forbid_unknown_fields=True):
    """The 1-minute windows [first_minute_ns, last_minute_ns] of one symbol that a batch changed."""

    symbol: str
    first_minute_ns: int
    last_minute_ns: int
    ticks: int


class TicksProcessedDetail(msgspec.Struct):
    """Detail of the ``TicksProcessed`` event: one per processed batch. When more symbols changed than an
    event can list, ``changes`` is empty: the aggregator then takes every dirty window."""

    ingestion_ids: list[str] = []
    symbols_changed: int | None = None
    changes: list[WindowChange] = []


class AggregationPendingDetail(msgspec.Struct):
    """Detail of the ``AggregationPending`` event: symbols whose dirty windows a run hands on to a new run."""

    symbols: list[str]


class RevisedBar(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    interval: str
    start: str
    revision: int | None  # None: the window emptied and its bar was deleted


class BarsRevisedDetail(msgspec.Struct):
    """Detail of the ``BarsRevised`` event: published bars that changed (the first MAX_REVISIONS_LISTED)."""

    count: int
    bars: list[RevisedBar]
