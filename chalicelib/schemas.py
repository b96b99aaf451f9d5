"""Pydantic models at the pipeline's edges: SQS message bodies and EventBridge event details.

Message bodies are versioned and validated in one call when a processor reads them, so a malformed or
foreign message fails loudly (and ends in the dead-letter queue) instead of being half-processed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# A validated tick on the wire: [symbol, price, volume, ts_ns, trade_id, side, exchange].
WireTick = tuple[str, str, str, int, str | None, str | None, str | None]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    ingestion_id: str = Field(min_length=1, max_length=80)
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


class WindowChange(BaseModel):
    """The 1-minute windows [first_minute_ns, last_minute_ns] of one symbol that a batch changed."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    first_minute_ns: int
    last_minute_ns: int
    ticks: int


class TicksProcessedDetail(BaseModel):
    """Detail of the ``TicksProcessed`` event: one per processed batch."""

    model_config = ConfigDict(extra="ignore")

    ingestion_ids: list[str]
    symbols_changed: int | None = None  # when more than the event can list, ``changes`` is empty
    changes: list[WindowChange]
