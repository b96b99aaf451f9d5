"""How to read a payload that does not describe itself: the names of a header-less CSV's columns, header
names to rename, a timestamp format, the time zone of zone-less times, a symbol for every row.

The same options come from ``POST /ingest``'s query string and from an S3 object's metadata
(``x-amz-meta-…``); each source spells the names its own way (``OPTION_NAMES``). A bad value raises
``OptionError`` naming the option as its source spells it; the entry points make it a 400 or a rejected file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .columns import OptionHints, normalise_name, tick_field
from .text import show
from .ticks import TICK_FIELDS, FieldError, parse_symbol
from .timefmt import timestamp_format_problem

SKIP = "skip"
MAX_COLUMNS = 256
# option -> (query parameter, object metadata key)
OPTION_NAMES: dict[str, tuple[str, str]] = {
    "columns": ("columns", "columns"),
    "column_map": ("column_map", "column-map"),
    "timestamp_format": ("timestamp_format", "timestamp-format"),
    "timezone": ("timezone", "timezone"),
    "symbol": ("symbol", "symbol"),
}
QUERY, METADATA = 0, 1
QUERY_HINTS = OptionHints(symbol="?symbol=…", columns="?columns=…", column_map="?column_map=…")
METADATA_HINTS = OptionHints(symbol="x-amz-meta-symbol on the object", columns="x-amz-meta-columns",
                             column_map="x-amz-meta-column-map")


class OptionError(ValueError):
    """An option's value cannot be used; ``name`` is the option as its source spells it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ReadOptions:
    """What a payload's own shape does not say. ``columns``: (tick field or None to skip, epoch unit) per
    column of a CSV without a header; ``renames``: normalised source name -> tick field (None: ignore it)."""

    columns: tuple[tuple[str | None, str | None], ...] | None = None
    renames: tuple[tuple[str, str | None], ...] = ()
    timestamp_format: str | None = None
    timezone: str | None = None
    symbol: str | None = None

    @property
    def zone(self) -> tzinfo | None:
        return None if self.timezone is None else time_zone(self.timezone)

    @property
    def reads_times_plainly(self) -> bool:
        """Whether text times are ISO 8601 in UTC unless they say otherwise (what the fast path assumes)."""
        return self.timestamp_format is None and self.timezone is None

    def to_dict(self) -> dict[str, Any]:
        """The options a queued chunk needs to be read (the CSV columns travel as the chunk's header)."""
        out: dict[str, Any] = {}
        if self.renames:
            out["renames"] = [list(pair) for pair in self.renames]
        if self.timestamp_format is not None:
            out["timestamp_format"] = self.timestamp_format
        if self.timezone is not None:
            out["timezone"] = self.timezone
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, symbol: str | None = None) -> ReadOptions:
        data = data or {}
        return cls(renames=tuple((str(a), None if b is None else str(b)) for a, b in data.get("renames", ())),
                   timestamp_format=data.get("timestamp_format"), timezone=data.get("timezone"), symbol=symbol)

    def canonical(self) -> str:
        """A stable text of the options, for hashing with a body."""
        return repr((self.columns, self.renames, self.timestamp_format, self.timezone, self.symbol))


NO_OPTIONS = ReadOptions()


@lru_cache(maxsize=64)
def time_zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def read_options(raw: Mapping[str, str], source: int) -> ReadOptions:
    """The options given in ``raw`` (query parameters or object metadata, by ``source``); OptionError on a
    bad value. Keys that are not options are left alone (the caller decides what they mean)."""
    def get(option: str) -> tuple[str, str | None]:
        name = OPTION_NAMES[option][source]
        value = raw.get(name)
        return name, (None if value is None else value.strip())

    name, value = get("symbol")
    symbol = None
    if value:
        try:
            symbol = parse_symbol(value)
        except FieldError as exc:
            raise OptionError(name, exc.reason) from None
    name, value = get("timezone")
    timezone = None
    if value is not None:
        timezone = _zone_name(name, value)
    name, value = get("timestamp_format")
    fmt = None
    if value is not None:
        fmt = raw.get(name, "")  # spaces are part of a format
        problem = timestamp_format_problem(fmt)
        if problem:
            raise OptionError(name, problem)
    name, value = get("column_map")
    renames: tuple[tuple[str, str | None], ...] = ()
    if value is not None:
        renames = _renames(name, value)
    name, value = get("columns")
    columns = None
    if value is not None:
        columns = _columns(name, value, has_symbol=symbol is not None)
        if renames:
            other = OPTION_NAMES["column_map"][source]
            raise OptionError(name, f"names the columns of a file without a header; {other} renames the columns "
                                    "of a header, and the two cannot be given together")
    return ReadOptions(columns, renames, fmt, timezone, symbol)


def _zone_name(name: str, value: str) -> str:
    if not value or len(value) > 64 or not value.isascii() or ".." in value or value.startswith("/"):
        raise OptionError(name, f"must be an IANA time zone name such as America/Chicago, got {show(value)}")
    try:
        time_zone(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise OptionError(name, f"is not a known IANA time zone name (such as America/Chicago or UTC): "
                                f"{show(value)}") from None
    return value


def _fields_hint() -> str:
    return ", ".join(TICK_FIELDS)


def _columns(name: str, value: str, has_symbol: bool) -> tuple[tuple[str | None, str | None], ...]:
    cells = value.split(",")
    if len(cells) > MAX_COLUMNS:
        raise OptionError(name, f"names {len(cells)} columns; at most {MAX_COLUMNS}")
    out: list[tuple[str | None, str | None]] = []
    seen: set[str] = set()
    for position, cell in enumerate(cells, 1):
        normal = normalise_name(cell)
        if normal in (SKIP, ""):
            out.append((None, None))
            continue
        found = tick_field(cell)
        if found is None:
            raise OptionError(name, f"column {position}: {show(cell.strip())} is not a tick field; use one of "
                                    f"{_fields_hint()} (or an alias of one), or skip")
        if found[0] in seen:
            raise OptionError(name, f"column {position}: {found[0]} is named more than once")
        seen.add(found[0])
        out.append(found)
    needed = ["price", "volume"] + ([] if has_symbol else ["symbol"])
    missing = [f for f in needed if f not in seen]
    if missing:
        hint = " (or give the symbol option)" if "symbol" in missing else ""
        raise OptionError(name, f"has no column for {', '.join(missing)}{hint}")
    return tuple(out)


def _renames(name: str, value: str) -> tuple[tuple[str, str | None], ...]:
    out: dict[str, str | None] = {}
    targets: set[str] = set()
    for pair in value.split(","):
        source, sep, target = pair.partition("=")
        source_name = normalise_name(source)
        if not sep or not source_name or not target.strip():
            raise OptionError(name, f"must be pairs like coin=symbol,sz=volume; got {show(pair.strip())}")
        if source_name in out:
            raise OptionError(name, f"renames {show(source.strip())} more than once")
        if normalise_name(target) == SKIP:
            out[source_name] = None
            continue
        found = tick_field(target)
        if found is None:
            raise OptionError(name, f"{show(target.strip())} is not a tick field; use one of {_fields_hint()}, "
                                    "or skip")
        if found[0] in targets:
            raise OptionError(name, f"maps two names to {found[0]}")
        targets.add(found[0])
        out[source_name] = normalise_name(target)  # the alias itself: its epoch unit still counts
    if len(out) > MAX_COLUMNS:
        raise OptionError(name, f"has {len(out)} pairs; at most {MAX_COLUMNS}")
    return tuple(out.items())
