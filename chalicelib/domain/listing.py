"""Finding ingestions without knowing their ids: the listing's question, its positions, and the walk over the
time index that every store shares.

The time index holds one entry per ingestion, ``(received_ns, ingestion id)``, grouped by source and UTC
day of receipt, and a list of the days that hold entries (per source). A listing walks it newest first from
a position (exclusive) down to ``since``. One call walks at most ``MAX_DAYS_PER_PAGE`` days that hold
entries, so a ``since`` far back costs a bounded number of reads however many empty days lie between; when
that stops it, the walk hands back the start of the last day walked as where to go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .errors import InvalidQuery
from .ingestion import Source, Status
from .text import show
from .timefmt import END_OF_TIME_NS, NS_PER_S

DEFAULT_LISTING_LIMIT = 100
MAX_LISTING_LIMIT = 1000
MAX_DAYS_PER_PAGE = 31  # days holding ingestions that one page walks
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8
DAY_NS = 86_400 * NS_PER_S
EPOCH = date(1970, 1, 1)

# A place in the newest-first order of ingestions: (received_ns, ingestion id). A listing continues with the
# ingestions after it in that order (older, or as old with a smaller id); an empty id is smaller than every id,
# so (ns, "") continues with those received before ns, and (start of a day, "") with the days before it.
Position = tuple[int, str]


def day_of(ns: int) -> str:
    """The UTC day of a time, as the index names it: YYYY-MM-DD (sorts as time does from 1970 to 2262)."""
    return (EPOCH + timedelta(days=ns // DAY_NS)).isoformat()


def day_start_ns(day: str) -> int:
    return (date.fromisoformat(day) - EPOCH).days * DAY_NS


@dataclass(frozen=True)
class IndexPage:
    """Entries of the time index, newest first, and the position to continue before (None: none are left)."""

    refs: list[Position]
    more: Position | None


# days(source, first day, last day, n): the days in [first, last] holding entries of the source, newest first,
# at most n. refs(source, day, since_ns, before, n): that day's entries of the source in [since_ns, before),
# newest first, at most n.
DayReader = Callable[[Source, str, str, int], list[str]]
RefReader = Callable[[Source, str, int, Position | None, int], list[Position]]


def walk_index(days: DayReader, refs: RefReader, sources: Sequence[Source], since_ns: int, before: Position | None,
               limit: int) -> IndexPage:
    """Up to ``limit`` entries of these sources received in [since_ns, before), newest first, from at most
    MAX_DAYS_PER_PAGE days that hold any. ``more`` is the last entry listed when ``limit`` were listed and
    entries may follow; the start of the last day walked when the day cap stopped the walk; else None."""
    last_ns = END_OF_TIME_NS - 1 if before is None else (before[0] if before[1] else before[0] - 1)
    if last_ns < since_ns:
        return IndexPage([], None)
    first_day, last_day = day_of(since_ns), day_of(last_ns)
    sources_of: dict[str, list[Source]] = {}
    for source in sources:
        for day in days(source, first_day, last_day, MAX_DAYS_PER_PAGE + 1):
            sources_of.setdefault(day, []).append(source)
    ordered = sorted(sources_of, reverse=True)
    walked, days_left = ordered[:MAX_DAYS_PER_PAGE], len(ordered) > MAX_DAYS_PER_PAGE
    out: list[Position] = []
    for number, day in enumerate(walked):
        want = limit - len(out)
        found = sorted((ref for source in sources_of[day] for ref in refs(source, day, since_ns, before, want + 1)),
                       reverse=True)
        out += found[:want]
        if len(found) > want:
            return IndexPage(out, out[-1])
        if len(out) == limit:
            return IndexPage(out, out[-1] if number + 1 < len(walked) or days_left else None)
    return IndexPage(out, (day_start_ns(walked[-1]), "") if days_left else None)


@dataclass(frozen=True)
class IngestionQuery:
    """Ingestions received at or after ``since_ns`` (all when None), strictly before ``before``, newest first:
    of one object key (``key``, in ``bucket`` or the stage's bucket) or of every key and request; of one source
    and with one status when given; at most ``limit`` examined."""

    source: Source | None = None
    key: str | None = None
    bucket: str | None = None
    since_ns: int | None = None
    status: Status | None = None
    limit: int = DEFAULT_LISTING_LIMIT
    before: Position | None = None

    def __post_init__(self) -> None:
        if self.key is not None and self.source is Source.API:
            raise InvalidQuery("source must be s3 when key is given (key names an object of the bucket)")
        if self.bucket is not None and self.key is None:
            raise InvalidQuery("bucket needs key: it names the bucket of the object key to list")
        if self.before is not None and self.before[0] >= END_OF_TIME_NS:
            raise InvalidQuery('next is not a cursor this API returned; pass back the "next" of a response')
        if self.before is not None and self.before[0] < (self.since_ns or 0):
            raise InvalidQuery("next is not a cursor of this query: it points before since; pass it back with "
                               "the same since")

    @property
    def sources(self) -> tuple[Source, ...]:
        if self.key is not None:
            return (Source.S3,)
        return (self.source,) if self.source is not None else (Source.API, Source.S3)


def parse_source(raw: str | None) -> Source | None:
    if raw is None:
        return None
    try:
        return Source(raw)
    except ValueError:
        raise InvalidQuery(f"source must be one of {', '.join(s.value for s in Source)}, got {show(raw)}") from None


def parse_status(raw: str | None) -> Status | None:
    if raw is None:
        return None
    try:
        return Status(raw)
    except ValueError:
        raise InvalidQuery(f"status must be one of {', '.join(s.value for s in Status)}, got {show(raw)}") from None


def parse_object_key(name: str, raw: str | None) -> str | None:
    """An S3 object key: 1 to 1024 bytes of UTF-8."""
    if raw is None:
        return None
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidQuery(f"{name} is not valid UTF-8 text, got {show(raw)}") from None
    if not 1 <= size <= MAX_KEY_BYTES:
        raise InvalidQuery(f"{name} must be an object key of 1 to {MAX_KEY_BYTES} bytes, got {size} bytes")
    return raw
