"""Which column (or JSON key) of a file holds which tick field: header aliases, their epoch units, and
the map of one CSV header.

Exports from exchanges and vendors carry many columns we do not need and name the ones we need in many
ways; names are matched case-insensitively, ignoring spaces, dashes and quotes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import RecordError
from .text import strip_space

# field -> ordered (alias, epoch unit) pairs; the first alias present in a header wins.
COLUMN_ALIASES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "timestamp": (
        ("timestamp", None), ("ts", None), ("time", None), ("datetime", None), ("date", None),
        ("timestamp_ms", "ms"), ("timestamp_us", "us"), ("timestamp_ns", "ns"), ("timestamp_s", "s"),
        ("date_and_time", None), ("ts_event", None), ("ts_event_ns", "ns"),
        ("transact_time_ms", "ms"), ("trade_time", None), ("timestamp_iso", None), ("time_ms", "ms"),
        ("unixtime", None), ("unix_time", None), ("unix_timestamp", None), ("unix_seconds", "s"),
        ("created_at", None), ("executed_at", None), ("trade_timestamp", None),
    ),
    "price": (("price", None), ("px", None), ("trade_price", None), ("last_price", None)),
    "volume": (
        ("volume", None), ("size", None), ("qty", None), ("quantity", None), ("amount", None), ("sz", None),
        ("trade_size", None), ("last_size", None), ("base_volume", None), ("base_qty", None), ("shares", None),
    ),
    "symbol": (
        ("symbol", None), ("ticker", None), ("instrument", None), ("product_id", None), ("coin", None),
        ("pair", None), ("market", None), ("instrument_id", None), ("sym", None),
    ),
    "trade_id": (
        ("trade_id", None), ("id", None), ("tid", None), ("agg_trade_id", None), ("trade_number", None),
        ("match_id", None), ("trade_no", None),
    ),
    "side": (("side", None), ("taker_side", None), ("aggressor_side", None), ("buy/sell", None)),
    "exchange": (("exchange", None), ("exchange_id", None)),
}
_ALIAS_FIELD: dict[str, tuple[str, str | None]] = {
    alias: (field, unit) for field, aliases in COLUMN_ALIASES.items() for alias, unit in aliases
}
Renames = tuple[tuple[str, "str | None"], ...]


@dataclass(frozen=True)
class ColumnMap:
    """Where each tick field sits in a CSV row, and the epoch unit its column name implies."""

    columns: dict[str, int]
    timestamp_unit: str | None
    width: int
    # What the header said beyond the map (not carried in to_dict, not compared).
    ignored: tuple[str, ...] = field(default=(), compare=False)  # header names that feed no field
    unknown_renames: tuple[str, ...] = field(default=(), compare=False)  # renamed names not in the header

    @classmethod
    def from_header(cls, header: list[str], renames: Renames = ()) -> ColumnMap:
        raw_names = [normalise_name(h) for h in header]
        names = renamed(raw_names, renames)
        columns: dict[str, int] = {}
        unit: str | None = None
        for tick_field, aliases in COLUMN_ALIASES.items():
            for alias, alias_unit in aliases:
                if alias in names:
                    columns[tick_field] = names.index(alias)
                    if tick_field == "timestamp":
                        unit = alias_unit
                    break
        used = set(columns.values())
        ignored = tuple(strip_space(h)[:64] for i, h in enumerate(header) if i not in used and strip_space(h))
        unknown = tuple(source for source, _ in renames if source not in raw_names)
        return cls(columns, unit, len(header), ignored, unknown)

    @classmethod
    def from_names(cls, fields: tuple[tuple[str | None, str | None], ...]) -> ColumnMap:
        """The map of a file without a header, from the tick field (None: skipped) of each column."""
        columns = {field: index for index, (field, _) in enumerate(fields) if field is not None}
        unit = next((u for field, u in fields if field == "timestamp"), None)
        return cls(columns, unit, len(fields))

    def missing(self, default_symbol: str | None) -> list[str]:
        needed = ["price", "volume"] + ([] if default_symbol else ["symbol"])
        return [f for f in needed if f not in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "timestamp_unit": self.timestamp_unit, "width": self.width}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMap:
        return cls(dict(data["columns"]), data.get("timestamp_unit"), int(data["width"]))


def normalise_name(name: str) -> str:
    return strip_space(name.replace("\ufeff", "")).strip('"').lower().replace(" ", "_").replace("-", "_")


def tick_field(name: str) -> tuple[str, str | None] | None:
    """The tick field a column name stands for, by the column aliases (with the epoch unit its name implies)."""
    return _ALIAS_FIELD.get(normalise_name(name))


def renamed(names: list[str], renames: tuple[tuple[str, str | None], ...]) -> list[str]:
    """Normalised header or key names after ``renames``: a renamed name becomes its target alias, and any
    other name standing for a field that a rename targets is dropped (""), so the explicit mapping wins."""
    if not renames:
        return names
    mapping = dict(renames)
    targeted = {found[0] for target in mapping.values() if target and (found := tick_field(target))}
    out = []
    for name in names:
        if name in mapping:
            out.append(mapping[name] or "")
        else:
            found = tick_field(name)
            out.append("" if found is not None and found[0] in targeted else name)
    return out


@dataclass(frozen=True)
class OptionHints:
    """How the caller names the options, for error messages: ``?symbol=`` or ``x-amz-meta-symbol``."""

    symbol: str
    columns: str
    column_map: str


def header_problem(column_map: ColumnMap, default_symbol: str | None, hints: OptionHints) -> str | None:
    """Why a CSV header cannot be used, or None when it can."""
    if column_map.unknown_renames:
        names = ", ".join(repr(n) for n in column_map.unknown_renames[:5])
        return f"{hints.column_map} renames {names}, which the header does not have"
    missing = column_map.missing(default_symbol)
    if not missing:
        return None
    wanted = []
    for name in missing:
        aliases = ", ".join(alias for alias, _ in COLUMN_ALIASES[name])
        hint = f" (or {hints.symbol})" if name == "symbol" else ""
        wanted.append(f"{name} (one of: {aliases}){hint}")
    return ("header has no column for " + "; ".join(wanted) + f"; rename header columns with {hints.column_map}, "
            f"or, for a file without a header, name its columns with {hints.columns}")


def aliased_record(record: Mapping[str, Any], renames: Renames = ()
                   ) -> tuple[dict[str, Any], str | None, list[RecordError], list[str]]:
    """Map a JSON record onto tick field names by ``renames`` and the column aliases.

    Returns the mapped record, the epoch unit its timestamp key implies, what makes it ambiguous (a used
    alias given under several spellings once case and separators are ignored: "Price", "price"), and the
    keys that feed no field.
    """
    lowered: dict[str, Any] = {}
    spellings: dict[str, list[str]] = {}
    keys = [str(key) for key in record]
    names = renamed([normalise_name(key) for key in keys], renames)
    for key, name, value in zip(keys, names, record.values(), strict=True):
        if name:
            lowered[name] = value
            spellings.setdefault(name, []).append(key)
    out: dict[str, Any] = {}
    unit = None
    clashes: list[RecordError] = []
    used: set[str] = set()
    for tick_field, aliases in COLUMN_ALIASES.items():
        for alias, alias_unit in aliases:
            if alias in lowered:
                out[tick_field] = lowered[alias]
                used.add(alias)
                if len(spellings[alias]) > 1:
                    named = " and ".join(repr(k) for k in spellings[alias][:3])
                    clashes.append(RecordError("", tick_field, f"is given more than once (as {named})"))
                if tick_field == "timestamp":
                    unit = alias_unit
                break
    ignored = [key for key, name in zip(keys, names, strict=True) if name not in used]
    return out, unit, clashes, ignored
