"""Questions asked of the bars, checked before any store sees them: times, counts, ranges and pages.

Shared by the REST API (query parameters) and the operator's command line (options); each raises
InvalidQuery naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bars import INTERVALS
from .errors import InvalidQuery
from .text import parse_whole_number, show
from .ticks import FieldError, parse_symbol
from .timefmt import END_OF_TIME_NS, TimestampError, format_ns, parse_timestamp

MAX_BAR_LIMIT = 10_000
DEFAULT_BAR_LIMIT = 1000
DEFAULT_INTERVAL = "1m"


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


def parse_query_symbol(name: str, raw: str | None) -> str:
    if not raw:
        raise InvalidQuery(f"{name} is required, e.g. ?symbol=AAPL&interval=1m")
    try:
        return parse_symbol(raw)
    except FieldError as exc:
        raise InvalidQuery(f"{name} {exc.reason}") from None


def parse_interval(raw: str | None) -> str:
    interval = raw or DEFAULT_INTERVAL
    if interval not in INTERVALS:
        raise InvalidQuery(f"interval must be one of {', '.join(INTERVALS)}, got {show(interval)}")
    return interval


def parse_time_range(start: str | None, end: str | None, start_name: str = "start",
                     end_name: str = "end") -> tuple[int, int]:
    """[start, end) in ns; the whole range of time when absent."""
    lo, hi = parse_query_time(start_name, start), parse_query_time(end_name, end)
    lo = 0 if lo is None else lo
    hi = END_OF_TIME_NS if hi is None else hi
    if hi <= lo:
        raise InvalidQuery(f"{end_name} must be after {start_name} ({start_name} {format_ns(lo)}, "
                           f"{end_name} {format_ns(hi)})")
    return lo, hi


@dataclass(frozen=True)
class BarQuery:
    """Bars of one symbol and interval starting in [start_ns, end_ns), after the bar starting at ``after``."""

    symbol: str
    interval: str
    start_ns: int
    end_ns: int
    limit: int = DEFAULT_BAR_LIMIT
    after: int | None = None

    def __post_init__(self) -> None:
        parse_interval(self.interval)
        if self.after is not None and not self.start_ns <= self.after < self.end_ns:
            raise InvalidQuery("next is not a cursor of this query: it points outside [start, end); "
                               "pass it back with the same start and end")
