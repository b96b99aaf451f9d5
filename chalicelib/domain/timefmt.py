"""Timestamps: parse ISO 8601 or epoch numbers into UTC epoch nanoseconds, and format them back.

Epoch numbers are told apart by magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17
microseconds, otherwise nanoseconds. Everything is integer or Decimal arithmetic, so a nanosecond
timestamp survives exactly.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, tzinfo
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from .text import ascii_digits, show, strip_space

NS_PER_S = 1_000_000_000
UNIT_NS = {"s": NS_PER_S, "ms": 1_000_000, "us": 1_000, "ns": 1}
MIN_TIMESTAMP_NS = calendar.timegm((1980, 1, 1, 0, 0, 0)) * NS_PER_S
MAX_FUTURE_NS = 86_400 * NS_PER_S
# Times that can be asked about: from the epoch to the last nanosecond a signed 64-bit count can hold
# (2262-04-11T23:47:16.854775807Z); END_OF_TIME_NS is the exclusive end of that range.
END_OF_TIME_NS = 2**63

# re.ASCII: in a str pattern \d would match any Unicode digit, and int() would then read "١٢" as 12.
# RFC 3339 allows a lower-case "t" and "z".
_ISO_RE = re.compile(
    r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})"
    r"(?:[Tt ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_NUMERIC_RE = re.compile(r"[+-]?\d+(?:\.\d*)?", re.ASCII)


_EPOCH_DATE = date(1970, 1, 1)
_EXACT = Context(prec=200)
_SECOND_CACHE: dict[str, int] = {}
_ISO_TAIL = re.compile(r"(?:\.(\d{1,9}))?(Z|z|\+00:00)?", re.ASCII)


class TimestampError(ValueError):
    """The value is not a timestamp we can read; the message says why."""


def parse_timestamp(raw: Any, unit: str | None = None, zone: tzinfo | None = None, fmt: str | None = None) -> int:
    """Parse one raw timestamp into epoch nanoseconds. ``unit`` forces the epoch unit (from a column name);
    ``fmt`` (strftime) reads text times that are not ISO 8601; ``zone`` is the time zone of text times that
    carry none (default UTC)."""
    if isinstance(raw, bool):
        raise TimestampError(f"must be ISO 8601 or epoch number, got {raw!r}")
    if isinstance(raw, (int, Decimal)):
        return _epoch_to_ns(Decimal(raw), unit)
    if isinstance(raw, float):
        return _epoch_to_ns(Decimal(repr(raw)), unit)
    if not isinstance(raw, str):
        raise TimestampError(f"must be ISO 8601 or epoch number, got {type(raw).__name__}")
    text = strip_space(raw)
    if fmt is not None:
        return _formatted_to_ns(text, fmt, zone)
    if _NUMERIC_RE.fullmatch(text):
        return _epoch_to_ns(Decimal(text), unit)
    match = _ISO_RE.fullmatch(text)
    if not match:
        raise TimestampError(f"is not ISO 8601 or an epoch number: {show(text)}")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise TimestampError(f"is not a valid date/time: {show(text)} ({exc})") from None
    frac_ns = int(frac.ljust(9, "0")) if frac else 0
    if not offset:
        return local_to_ns(stamp, zone, text) + frac_ns
    ns = calendar.timegm(stamp.timetuple()) * NS_PER_S + frac_ns
    if offset not in ("Z", "z", "UTC"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), (int(digits[2:4]) if len(digits) > 2 else 0)
        if hours > 23 or minutes > 59:
            raise TimestampError(f"has an invalid UTC offset: {text!r}")
        offset_min = hours * 60 + minutes
        ns -= sign * offset_min * 60 * NS_PER_S
    return ns


def local_to_ns(stamp: datetime, zone: tzinfo | None, text: str) -> int:
    """Epoch ns of a wall-clock time (naive, whole microseconds) in ``zone`` (None: UTC).

    A time the clocks skipped (spring forward) is an error; a time they showed twice (fall back) is the
    first of the two, as Python's ``fold=0`` reads it.
    """
    if zone is not None:
        aware = stamp.replace(tzinfo=zone)
        utc = aware.astimezone(UTC)
        if utc.astimezone(zone).replace(tzinfo=None) != stamp:
            raise TimestampError(f"{show(text)} does not exist in {zone} (the clocks skipped it)")
        stamp = utc.replace(tzinfo=None)
    return calendar.timegm(stamp.timetuple()) * NS_PER_S + stamp.microsecond * 1000


def _formatted_to_ns(text: str, fmt: str, zone: tzinfo | None) -> int:
    try:
        stamp = datetime.strptime(text, fmt)
    except ValueError:
        raise TimestampError(f"{show(text)} does not match the timestamp format {show(fmt, 60)}") from None
    if stamp.tzinfo is not None:  # the format read an offset (%z): that is the zone
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        return calendar.timegm(stamp.timetuple()) * NS_PER_S + stamp.microsecond * 1000
    return local_to_ns(stamp, zone, text)


def timestamp_format_problem(fmt: str) -> str | None:
    """Why a strftime format cannot read timestamps (it must name a whole date), or None when it can."""
    if not fmt or len(fmt) > 100 or not fmt.isascii() or "%" not in fmt:
        return "must be a strftime format of 1-100 ASCII characters, e.g. %Y-%m-%d %H:%M:%S"
    sample = datetime(2024, 11, 23, 13, 14, 15, 123456)
    try:
        back = datetime.strptime(sample.strftime(fmt), fmt)
    except (ValueError, TypeError) as exc:
        return f"is not a format that can read times back ({exc})"
    if back.date() != sample.date():
        return "must name the year, the month and the day (e.g. %m/%d/%Y %H:%M:%S)"
    return None


def fast_timestamp(raw: Any, unit: str | None = None) -> int | None:
    """Epoch ns of an ordinary timestamp (UTC ISO 8601 with '-' and 'T' or ' ', or an epoch number as an int or
    as ASCII digits), else None.

    The common shapes in one pass with no datetime objects; None leaves the verdict to parse_timestamp.
    """
    if type(raw) is int:
        return epoch_ns(raw, unit)
    if type(raw) is not str:
        return None
    if len(raw) < 19:
        return epoch_ns(int(raw), unit) if 0 < len(raw) <= 20 and raw.isascii() and raw.isdigit() else None
    seconds = iso_seconds(raw[:19])
    if seconds is None:
        return epoch_ns(int(raw), unit) if len(raw) <= 20 and raw.isascii() and raw.isdigit() else None
    frac = iso_tail_ns(raw[19:])
    return None if frac is None else seconds * NS_PER_S + frac


def epoch_ns(value: int, unit: str | None) -> int:
    """An epoch number in ``unit`` (or the unit its magnitude implies) as epoch ns."""
    if unit is None:
        unit = epoch_unit(value)
    return value * UNIT_NS[unit]


def epoch_unit(value: int) -> str:
    """The unit of an epoch number by its magnitude (see the module docstring)."""
    magnitude = -value if value < 0 else value
    return "s" if magnitude < 10**11 else "ms" if magnitude < 10**14 else "us" if magnitude < 10**17 else "ns"


def iso_seconds(head: str) -> int | None:
    """Epoch seconds of the 19 characters 'YYYY-MM-DDTHH:MM:SS' (cached), else None."""
    seconds = _SECOND_CACHE.get(head)
    if seconds is None:
        if len(head) != 19:
            return None
        seconds = _iso_seconds(head)
        if seconds is None:
            return None
        if len(_SECOND_CACHE) >= 200_000:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[head] = seconds
    return seconds


def iso_tail_ns(tail: str) -> int | None:
    """The nanoseconds of what follows 'YYYY-MM-DDTHH:MM:SS' in an ordinary UTC timestamp: nothing, a fraction
    of 1 to 9 digits after '.', then 'Z', 'z', '+00:00' or nothing; else None."""
    if not tail:
        return 0
    if tail[0] == ".":
        end = len(tail) - 1 if tail[-1] in "Zz" else len(tail)
        digits = tail[1:end]
        if 0 < len(digits) <= 9 and ascii_digits(digits):
            return int(digits) * 10 ** (9 - len(digits))
        match = _ISO_TAIL.fullmatch(tail)
        if match is None:
            return None
        frac = match.group(1)
        return int(frac.ljust(9, "0")) if frac else 0
    return 0 if tail in ("Z", "z", "+00:00") else None


def _iso_seconds(head: str) -> int | None:
    """Epoch seconds of 'YYYY-MM-DDTHH:MM:SS' (or with 't' or a space), else None."""
    if head[4] != "-" or head[7] != "-" or head[10] not in "Tt " or head[13] != ":" or head[16] != ":":
        return None
    if not (head.isascii() and head[:4].isdigit() and head[5:7].isdigit() and head[8:10].isdigit()
            and head[11:13].isdigit() and head[14:16].isdigit() and head[17:19].isdigit()):
        return None
    try:
        days = (date.fromisoformat(head[:10]) - _EPOCH_DATE).days
    except ValueError:
        return None
    hour, minute, second = int(head[11:13]), int(head[14:16]), int(head[17:19])
    if hour > 23 or minute > 59 or second > 59:
        return None
    return days * 86_400 + hour * 3_600 + minute * 60 + second


def _epoch_to_ns(value: Decimal, unit: str | None) -> int:
    try:
        if not value.is_finite():
            raise TimestampError(f"must be finite, got {value}")
        if value.adjusted() > 20:
            # Past year 9999 in any unit; checked first, as Decimal and int cannot convert such numbers.
            shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
            raise TimestampError(f"is out of range: {shown}")
        if unit is None:
            magnitude = abs(value)
            if magnitude < Decimal("1e11"):
                unit = "s"
            elif magnitude < Decimal("1e14"):
                unit = "ms"
            elif magnitude < Decimal("1e17"):
                unit = "us"
            else:
                unit = "ns"
        ns = _EXACT.multiply(value, Decimal(UNIT_NS[unit]))  # never rounded: the check below must be exact
        if ns != ns.to_integral_value():
            raise TimestampError(f"has more precision than one nanosecond: {value}")
        return int(ns)
    except InvalidOperation:
        raise TimestampError(f"is not a number: {value}") from None


def format_ns(ns: int) -> str:
    """ISO 8601 UTC with Z; the fraction shows 3, 6 or 9 digits as needed, none when whole seconds."""
    seconds, frac = divmod(ns, NS_PER_S)
    if seconds < -62135596800 or seconds > 253402300799:
        return f"epoch-ns {ns}"
    head = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return head + "Z"
    digits = f"{frac:09d}"
    if digits.endswith("000000"):
        digits = digits[:3]
    elif digits.endswith("000"):
        digits = digits[:6]
    return f"{head}.{digits}Z"
