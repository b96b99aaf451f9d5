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
from .domain.ticks import Tick, TickColumns

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


class ColumnsMessage(_Message, frozen=True, kw_only=True, tag="columns"):
    """Ticks validated at the REST edge, column by column (what the API queues). ``symbols`` lists each symbol
    once and ``s`` gives each tick's by its index; ``p`` and ``q`` are prices and volumes as decimal text;
    ``t`` epoch ns; ``id``, ``side`` and ``ex`` are null when no tick has one. ``seq0`` is the source position
    of the first tick, as in TicksMessage (the form written before, still read)."""

    kind: ClassVar[Literal["columns"]] = "columns"
    seq0: NonNegative
    symbols: list[str]
    s: list[NonNegative]
    p: list[str]
    q: list[str]
    t: list[int]
    id: list[str | None] | None = None
    side: list[str | None] | None = None
    ex: list[str | None] | None = None

    def __post_init__(self) -> None:
        n = len(self.t)
        if not n or any(len(c) != n for c in (self.s, self.p, self.q, self.id or self.t, self.side or self.t,
                                               self.ex or self.t)):
            raise ValueError("the columns are empty or not all the same length")
        if max(self.s) >= len(self.symbols):
            raise ValueError("a symbol index is out of range")


class ObjectPart(_Message, frozen=True, kw_only=True):
    """Where to read a chunk of an S3 object, and how to parse it."""

    bucket: str
    key: str
    version_id: str | None = None
    format: Literal["csv", "ndjson", "json"]
    first_line: Annotated[int, msgspec.Meta(ge=1)]
    header: dict[str, Any] | None = None  # ColumnMap.to_dict() for CSV
    default_symbol: str | None = None
    options: dict[str, Any] | None = None  # ReadOptions.to_dict(): renames, timestamp format, time zone


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


QueueMessage = ColumnsMessage | TicksMessage | RangeMessage | TextMessage | ObjectMessage
_MESSAGE_DECODER = msgspec.json.Decoder(QueueMessage)


def decode_message(body: str | bytes) -> QueueMessage:
    """A queue message from its body, validated: raises ``msgspec.DecodeError`` (not JSON) or
    ``msgspec.ValidationError`` (not a message of this pipeline), both ValueErrors."""
    return _MESSAGE_DECODER.decode(body)


def queue_body(message: _Message) -> str:
    """A queue message's body, in ASCII: SQS refuses some characters (U+FFFE, U+FFFF) that a file's text or
    an object key may hold, and JSON can spell every character as an escape."""
    return json.dumps(msgspec.to_builtins(message), separators=(",", ":"), ensure_ascii=True)


_HEAD_BYTES = 400  # room for a message's header (ids, rank, times) next to its columns


def encode_column_messages(columns: TickColumns, ingestion_id: str, rank: str, received_ns: int,
                           limit: int) -> list[str]:
    """Pack validated ticks into ColumnsMessage bodies of at most ``limit`` bytes, in one encoding per message
    (ticks are cut into runs sized from a first encoding of them all; a run that still does not fit is
    halved). Every value is ASCII already: symbols and tokens were checked to be, numbers are digits."""
    encode = msgspec.json.encode
    n = len(columns)
    if not n:
        return []

    def body(lo: int, hi: int) -> bytes:
        symbols = columns.symbols[lo:hi]
        names = list(dict.fromkeys(symbols))
        index = {name: i for i, name in enumerate(names)}
        part: dict[str, Any] = {"symbols": names, "s": list(map(index.__getitem__, symbols)),
                                "p": columns.prices[lo:hi], "q": columns.volumes[lo:hi], "t": columns.ts_ns[lo:hi]}
        for key, values in (("id", columns.trade_ids), ("side", columns.sides), ("ex", columns.exchanges)):
            run = values[lo:hi]
            if any(v is not None for v in dict.fromkeys(run)):
                part[key] = run
        return encode(part)

    room = limit - _HEAD_BYTES
    runs: list[tuple[int, bytes]] = []
    pending = [(0, n)]
    whole = body(0, n)
    if len(whole) > room:
        step = max(1, int(n * room / len(whole) * 0.95))
        pending = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    while pending:
        lo, hi = pending.pop(0)
        encoded = whole if (lo, hi) == (0, n) else body(lo, hi)
        if len(encoded) > room and hi - lo > 1:
            middle = (lo + hi) // 2
            pending[:0] = [(lo, middle), (middle, hi)]
            continue
        runs.append((lo, encoded))
    dumps = json.dumps
    head = (f'{{"v":1,"kind":"columns","ingestion_id":{dumps(ingestion_id)},"rank":{dumps(rank)},'
            f'"received_ns":{received_ns},')
    return [f'{head}"chunk":{chunk},"seq0":{lo},{encoded[1:].decode()}' for chunk, (lo, encoded) in enumerate(runs)]


class _Decimals(dict):  # type: ignore[type-arg]
    def __missing__(self, text: str) -> Decimal:
        value = self[text] = Decimal(text)
        return value


def decode_columns(message: ColumnsMessage) -> TickColumns:
    """The ticks a ColumnsMessage carries (validated when they were received), without a model per tick."""
    n = len(message.t)
    decimals = _Decimals()
    nothing: list[str | None] = [None] * n
    return TickColumns(
        list(map(message.symbols.__getitem__, message.s)), list(map(decimals.__getitem__, message.p)),
        list(map(decimals.__getitem__, message.q)), message.t, range(message.seq0, message.seq0 + n),
        message.id or nothing, message.side or nothing, message.ex or nothing)


def encode_tick_messages(
    ticks: Sequence[Tick], ingestion_id: str, rank: str, received_ns: int, limit: int
) -> list[str]:
    """Pack validated ticks into as few TicksMessage bodies as the size limit allows: the form the API wrote
    before ColumnsMessage, which processors still read (the tests and the benchmark write it)."""
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
    event can list, ``changes`` is empty: the aggregator then takes every dirty window. ``mark_tokens``: the
    tokens of the dirty marks the batch wrote, so that a run can tell, in one read, the symbols whose marks
    another run has worked off already."""

    ingestion_ids: list[str] = []
    symbols_changed: int | None = None
    changes: list[WindowChange] = []
    mark_tokens: list[str] = []


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
