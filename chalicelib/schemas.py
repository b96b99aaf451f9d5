"""Pydantic models at the pipeline's edges, used on both sides: SQS message bodies (and their codec), the
details of the S3 "Object Created" event and of the pipeline's own TicksProcessed and BarsRevised events.

Message bodies are versioned and validated in one call when a processor reads them, so a malformed or
foreign message is set aside (in the dead-letter queue) instead of being half-processed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .domain.ingestion import MAX_ID_CHARS
from .domain.ticks import Tick

# The pipeline's own EventBridge events (detail-types), from source EVENT_SOURCE (settings).
TICKS_PROCESSED = "TicksProcessed"
BARS_REVISED = "BarsRevised"
AGGREGATION_PENDING = "AggregationPending"  # an aggregator hands symbols on to new runs

# A validated tick on the wire: [symbol, price, volume, ts_ns, trade_id, side, exchange].
WireTick = tuple[str, str, str, int, str | None, str | None, str | None]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    ingestion_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    chunk: int = Field(ge=0)
    rank: str = Field(min_length=1, max_length=120)
    received_ns: int


class TicksMessage(_Message):
    """Ticks validated at the REST edge; ``seq0`` is the source position of the first one."""

    kind: Literal["ticks"] = "ticks"
    seq0: int = Field(ge=0)
    ticks: list[WireTick]


class ObjectPart(_Message):
    """Where to read a chunk of an S3 object, and how to parse it."""

    bucket: str
    key: str
    version_id: str | None = None
    format: Literal["csv", "ndjson", "json"]
    first_line: int = Field(ge=1)
    header: dict | None = None  # ColumnMap.to_dict() for CSV
    default_symbol: str | None = None


class RangeMessage(ObjectPart):
    """A line-aligned byte range [start, end) of an uncompressed object."""

    kind: Literal["range"] = "range"
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class TextMessage(ObjectPart):
    """Lines carried inline (from a compressed object, which cannot be range-read)."""

    kind: Literal["text"] = "text"
    text: str


class ObjectMessage(ObjectPart):
    """A whole object parsed at once (a JSON array cannot be split on lines)."""

    kind: Literal["object"] = "object"
    gzip: bool = False


QueueMessage = Annotated[
    TicksMessage | RangeMessage | TextMessage | ObjectMessage, Field(discriminator="kind")
]
QUEUE_MESSAGE = TypeAdapter(QueueMessage)


def queue_body(message: BaseModel) -> str:
    """A queue message's body, in ASCII: SQS refuses some characters (U+FFFE, U+FFFF) that a file's text or
    an object key may hold, and JSON can spell every character as an escape."""
    return json.dumps(message.model_dump(mode="json"), separators=(",", ":"))


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


class S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    key: str
    version_id: str | None = Field(default=None, alias="version-id")
    size: int | None = None


class ObjectCreatedDetail(BaseModel):
    """Detail of S3's "Object Created" event on EventBridge (the fields the ingestion reads)."""

    model_config = ConfigDict(extra="ignore")

    bucket: S3Bucket
    object: S3Object

    @classmethod
    def of(cls, bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
        """The detail as S3 sends it (for the local driver and the tests)."""
        detail: dict[str, Any] = {"bucket": {"name": bucket}, "object": {"key": key}}
        if version_id is not None:
            detail["object"]["version-id"] = version_id
        return detail


class WindowChange(BaseModel):
    """The 1-minute windows [first_minute_ns, last_minute_ns] of one symbol that a batch changed."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    first_minute_ns: int
    last_minute_ns: int
    ticks: int


class TicksProcessedDetail(BaseModel):
    """Detail of the ``TicksProcessed`` event: one per processed batch. When more symbols changed than an
    event can list, ``changes`` is empty: the aggregator then takes every dirty window."""

    model_config = ConfigDict(extra="ignore")

    ingestion_ids: list[str] = []
    symbols_changed: int | None = None
    changes: list[WindowChange] = []


class AggregationPendingDetail(BaseModel):
    """Detail of the ``AggregationPending`` event: symbols whose dirty windows a run hands on to a new run."""

    model_config = ConfigDict(extra="ignore")

    symbols: list[str]


class RevisedBar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    interval: str
    start: str
    revision: int | None  # None: the window emptied and its bar was deleted


class BarsRevisedDetail(BaseModel):
    """Detail of the ``BarsRevised`` event: published bars that changed (the first MAX_REVISIONS_LISTED)."""

    model_config = ConfigDict(extra="ignore")

    count: int
    bars: list[RevisedBar]
