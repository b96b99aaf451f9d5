"""The bar intervals a query may ask for, their windows, and the stored level each is built from.

Stored levels are 1m 5m 15m 1h 1d, UTC, aligned on the epoch (bars.INTERVALS). A query may also ask for:

- ``<n>m`` and ``<n>h`` whose width divides a day (1440 minutes): windows from UTC midnight, which is also
  from the epoch since the width divides a day (``7m`` is refused: 1440 % 7 != 0);
- ``<n>d``: n days; windows start on the days since 1970-01-01 that n divides (``3d``: 1970-01-01, 01-04...);
- ``1w``: ISO weeks, from Monday 00:00;
- with a time zone (``<n>d`` and ``1w`` only): the same counted in local days, each from local midnight to the
  next (23 or 25 hours across a DST change), days numbered from 1970-01-01 by their local date.

A derived bar is the merge of the stored bars in its window, from the coarsest stored level whose bars tile every
window: its width divides the window's width and the windows' starts (30m from 15m, 4h from 1h, 10m from 5m, 3d
and 1w from 1d; local days from 1h when every local midnight of the range is on a UTC hour, else 15m, 5m or 1m;
from 1d when every local midnight is a UTC midnight). A zone whose local midnight is not on a whole minute cannot
be built from stored bars (InvalidQuery naming tz).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .bars import INTERVALS
from .errors import InvalidQuery
from .text import show
from .timefmt import END_OF_TIME_NS, NS_PER_S

MINUTE_NS = INTERVALS["1m"]
DAY_NS = INTERVALS["1d"]
WEEK_DAYS = 7
MONDAY = 4  # day 4 since 1970-01-01 (a Thursday) is Monday 1970-01-05: weeks start on days d, (d - 4) % 7 == 0
MAX_DAYS = END_OF_TIME_NS // DAY_NS  # a window of more days than nanoseconds can hold is never needed
STORED_COARSEST_FIRST = tuple(sorted(INTERVALS, key=INTERVALS.__getitem__, reverse=True))
EPOCH_DATE = date(1970, 1, 1)
INTERVAL_RE = re.compile(r"([1-9][0-9]{0,5})([mhdw])", re.ASCII)
ZONE_RE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*", re.ASCII)
INTERVAL_HELP = "<n>m or <n>h dividing a day (1440 minutes), <n>d or 1w (e.g. 1m, 30m, 4h, 1d, 3d, 1w)"


@dataclass(frozen=True)
class Interval:
    """A bar interval as asked (``text``): ``count`` of ``unit`` (m, h, d or w)."""

    text: str
    unit: str
    count: int

    @property
    def calendar(self) -> bool:
        """Counted in days (and so allowed a time zone)."""
        return self.unit in ("d", "w")

    @property
    def width_ns(self) -> int:
        """The width of a UTC window (a local day may be 23 or 25 hours instead)."""
        per = {"m": MINUTE_NS, "h": 60 * MINUTE_NS, "d": DAY_NS, "w": WEEK_DAYS * DAY_NS}[self.unit]
        return self.count * per

    @property
    def stored(self) -> str | None:
        """The stored level that is this interval itself (``60m`` is 1h), if any."""
        for level, width in INTERVALS.items():
            if width == self.width_ns and self.unit != "w":
                return level
        return None


def parse_bar_interval(raw: str | None) -> Interval:
    """An interval of a bar query (see the module docstring); ``1m`` when absent; InvalidQuery naming it."""
    text = "1m" if raw is None else raw
    match = INTERVAL_RE.fullmatch(text)
    if match is None:
        raise InvalidQuery(f"interval must be {INTERVAL_HELP}, got {show(text)}")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "m" and 1440 % count:
        raise InvalidQuery(f"interval {text}: a minute interval must divide a day (1440 minutes) so that bars "
                           f"align on midnight, e.g. 1m 2m 3m 5m 10m 15m 20m 30m 45m 60m 90m 120m")
    if unit == "h" and 24 % count:
        raise InvalidQuery(f"interval {text}: an hour interval must divide a day (24 hours): 1h 2h 3h 4h 6h 8h 12h 24h")
    if unit == "d" and count > MAX_DAYS:
        raise InvalidQuery(f"interval {text}: at most {MAX_DAYS}d")
    if unit == "w" and count != 1:
        raise InvalidQuery(f"interval {text}: weeks are 1w only (ISO weeks, from Monday)")
    return Interval(text, unit, count)


def parse_zone(raw: str, interval: Interval) -> tzinfo:
    """The IANA time zone of ``tz`` (for day and week intervals only); InvalidQuery naming tz."""
    if not interval.calendar:
        raise InvalidQuery(f"tz applies to day and week intervals (<n>d, 1w) only, not to interval {interval.text}; "
                           "minute and hour bars are UTC")
    if len(raw) > 64 or not ZONE_RE.fullmatch(raw) or ".." in raw:
        raise InvalidQuery(f"tz must be an IANA time zone name such as America/New_York or UTC, got {show(raw)}")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidQuery(f"tz {show(raw)} is not a known IANA time zone (e.g. America/New_York, Asia/Kolkata, "
                           "UTC)") from None


# ------------------------------------------------------------------------------------------ windows
class Windows(Protocol):
    """The windows of an interval: consecutive [start, end) spans of UTC nanoseconds that tile time."""

    def start_of(self, t: int) -> int:
        """The start of the window holding instant ``t``."""
        ...

    def end_of(self, start: int) -> int:
        """The end (exclusive) of the window starting at ``start``."""
        ...

    def starts(self, lo: int, hi: int) -> Iterator[int]:
        """The start of every window overlapping [lo, hi), in order, then the end of the last one."""
        ...


def ceil_start(windows: Windows, t: int) -> int:
    """The first window start at or after ``t``."""
    start = windows.start_of(t)
    return start if start == t else windows.end_of(start)


@dataclass(frozen=True)
class FixedWindows:
    """Windows of one width, starting where ``(t - offset) % width == 0``."""

    width: int
    offset: int = 0

    def start_of(self, t: int) -> int:
        return t - (t - self.offset) % self.width

    def end_of(self, start: int) -> int:
        return start + self.width

    def starts(self, lo: int, hi: int) -> Iterator[int]:
        start = self.start_of(lo)
        yield start
        while start < hi:
            start += self.width
            yield start


@dataclass
class LocalDays:
    """Windows of ``days`` local days (or ISO weeks) in ``zone``, from local midnight to local midnight."""

    zone: tzinfo
    days: int = 1
    weeks: bool = False
    _midnights: dict[int, int] = field(default_factory=dict, repr=False)

    def day_number(self, t: int) -> int:
        """The local date of instant ``t``, as days since 1970-01-01."""
        local = datetime.fromtimestamp(t // NS_PER_S, tz=self.zone)
        return (local.date() - EPOCH_DATE).days

    def first_day(self, day: int) -> int:
        """The first day of the window holding local day ``day``."""
        if self.weeks:
            return day - (day - MONDAY) % WEEK_DAYS
        return day - day % self.days

    def span(self) -> int:
        return WEEK_DAYS if self.weeks else self.days

    def midnight(self, day: int) -> int:
        """The first instant (UTC ns) whose local date is day ``day``: local midnight, or the end of a DST gap
        that swallowed it."""
        cached = self._midnights.get(day)
        if cached is not None:
            return cached
        wanted = EPOCH_DATE + timedelta(days=day)
        naive = datetime(wanted.year, wanted.month, wanted.day)
        found: list[int] = []
        for fold in (0, 1):
            seconds = int(naive.replace(tzinfo=self.zone, fold=fold).timestamp())
            if self._date_at(seconds) == wanted and self._date_at(seconds - 1) < wanted:
                found.append(seconds)
        if found:
            seconds = min(found)
        else:  # a gap around midnight that neither reading lands on: the first second of the new date
            lo = int(naive.replace(tzinfo=UTC).timestamp()) - 2 * 86400
            hi = lo + 4 * 86400
            while lo < hi:
                mid = (lo + hi) // 2
                if self._date_at(mid) < wanted:
                    lo = mid + 1
                else:
                    hi = mid
            seconds = lo
        self._midnights[day] = ns = seconds * NS_PER_S
        return ns

    def _date_at(self, seconds: int) -> date:
        return datetime.fromtimestamp(seconds, tz=self.zone).date()

    def start_of(self, t: int) -> int:
        return self.midnight(self.first_day(self.day_number(t)))

    def end_of(self, start: int) -> int:
        return self.midnight(self.first_day(self.day_number(start)) + self.span())

    def starts(self, lo: int, hi: int) -> Iterator[int]:
        day = self.first_day(self.day_number(lo))
        start = self.midnight(day)
        yield start
        while start < hi:
            day += self.span()
            start = self.midnight(day)
            yield start

    def local_date(self, start: int) -> str:
        """The local date (YYYY-MM-DD) a window starting at ``start`` begins on."""
        return (EPOCH_DATE + timedelta(days=self.day_number(start))).isoformat()


def windows_of(interval: Interval, zone: tzinfo | None) -> Windows:
    if zone is not None:
        return LocalDays(zone, interval.count if interval.unit == "d" else 1, weeks=interval.unit == "w")
    if interval.unit == "w":
        return FixedWindows(WEEK_DAYS * DAY_NS, MONDAY * DAY_NS)
    return FixedWindows(interval.width_ns)


def level_for_fixed(windows: FixedWindows) -> str:
    """The coarsest stored level whose bars tile these windows (1m always does: widths are whole minutes)."""
    for level in STORED_COARSEST_FIRST:
        width = INTERVALS[level]
        if windows.width % width == 0 and windows.offset % width == 0:
            return level
    raise AssertionError(f"no stored level tiles windows of {windows.width} ns")


def level_for_boundaries(boundaries: Iterable[int]) -> str | None:
    """The coarsest stored level every boundary (UTC ns) lies on; None if one is not on a whole minute."""
    candidates = list(STORED_COARSEST_FIRST)
    for boundary in boundaries:
        candidates = [level for level in candidates if boundary % INTERVALS[level] == 0]
        if not candidates:
            return None
    return candidates[0] if candidates else None
