"""Which column (or JSON key) of a file holds which tick field: header aliases, their epoch units, and
the map of one CSV header.

Exports from exchanges and vendors carry many columns we do not need and name the ones we need in many
ways; names are matched case-insensitively, ignoring spaces, dashes and quotes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RecordError
from .text import strip_space

# field -> ordered (alias, epoch unit) pairs; the first alias present in a header wins.
COLUMN_ALIASES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "timestamp": (
        ("timestamp", None), ("ts", None), ("time", None), ("datetime", None), ("date", None),
        ("timestamp_ms", "ms"), ("timestamp_us", "us"), ("timestamp_ns", "ns"),
        ("date_and_time", None), ("ts_event", None), ("ts_event_ns", "ns"),
        ("transact_time_ms", "ms"), ("trade_time", None), ("timestamp_iso", None),
    ),
    "price": (("price", None), ("px", None)),
    "volume": (
        ("volume", None), ("size", None), ("qty", None), ("quantity", None), ("amount", None),
    ),
    "symbol": (("symbol", None), ("ticker", None), ("instrument", None), ("product_id", None)),
    "trade_id": (("trade_id", None), ("id", None), ("tid", None), ("agg_trade_id", None)),
    "side": (("side", None),),
    "exchange": (("exchange", None),),
}


@dataclass(frozen=True)
class ColumnMap:
    """Where each tick field sits in a CSV row, and the epoch unit its column name implies."""

    columns: dict[str, int]
    timestamp_unit: str | None
    width: int

    @classmethod
    def from_header(cls, header: list[str]) -> ColumnMap:
        names = [normalise_name(h) for h in header]
        columns: dict[str, int] = {}
        unit: str | None = None
        for tick_field, aliases in COLUMN_ALIASES.items():
            for alias, alias_unit in aliases:
                if alias in names:
                    columns[tick_field] = names.index(alias)
                    if tick_field == "timestamp":
                        unit = alias_unit
                    break
        return cls(columns, unit, len(header))

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


def header_problem(column_map: ColumnMap, default_symbol: str | None) -> str | None:
    """Why a CSV header cannot be used, or None when it can."""
    missing = column_map.missing(default_symbol)
    if not missing:
        return None
    wanted = []
    for name in missing:
        aliases = ", ".join(alias for alias, _ in COLUMN_ALIASES[name])
        hint = " (or x-amz-meta-symbol on the object)" if name == "symbol" else ""
        wanted.append(f"{name} (one of: {aliases}){hint}")
    return "header has no column for " + "; ".join(wanted)


def aliased_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, list[RecordError]]:
    """Map a file's JSON record onto tick field names by the column aliases.

    Returns the mapped record, the epoch unit its timestamp key implies, and what makes it ambiguous: a
    used alias given under several spellings once case and separators are ignored ("Price", "price").
    """
    lowered: dict[str, Any] = {}
    spellings: dict[str, list[str]] = {}
    for key, value in record.items():
        name = normalise_name(str(key))
        lowered[name] = value
        spellings.setdefault(name, []).append(str(key))
    out: dict[str, Any] = {}
    unit = None
    clashes: list[RecordError] = []
    for tick_field, aliases in COLUMN_ALIASES.items():
        for alias, alias_unit in aliases:
            if alias in lowered:
                out[tick_field] = lowered[alias]
                if len(spellings[alias]) > 1:
                    named = " and ".join(repr(k) for k in spellings[alias][:3])
                    clashes.append(RecordError("", tick_field, f"is given more than once (as {named})"))
                if tick_field == "timestamp":
                    unit = alias_unit
                break
    return out, unit, clashes
