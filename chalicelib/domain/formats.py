"""Decoding tick payloads: JSON (one object or an array), NDJSON and CSV, into validated ticks and rejects.

Two dialects share this code:
- REST bodies are strict: JSON records use the tick's own field names and unknown fields are errors.
- Files (and CSV anywhere) find their columns by header aliases and ignore other columns, because
  exports from exchanges and vendors carry many columns we do not need.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import RecordError
from .text import show, strip_space
from .ticks import Tick, tick_from_record

# Media types, for request bodies and for files whose name says nothing: format by type.
MEDIA_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}

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


@dataclass
class ParseResult:
    """Ticks that passed, and the rejects (the first ``max_errors`` kept, all counted)."""

    ticks: list[Tick] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    rejected: int = 0
    max_errors: int = 20

    def reject(self, errors: Iterable[RecordError]) -> None:
        self.rejected += 1
        for error in errors:
            if len(self.errors) < self.max_errors:
                self.errors.append(error)


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


def text_lines(text: str) -> list[str]:
    """Split on LF only (as chunk line numbers count), dropping a CR before it; other separators are data."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


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


class _RepeatedKeys(dict):  # type: ignore[type-arg]
    """A JSON object in which a key appears more than once (json.loads would silently keep the last)."""

    __slots__ = ("repeated",)
    repeated: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    flagged = _RepeatedKeys(obj)
    seen: set[str] = set()
    flagged.repeated = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return flagged


def _json_loads(text: str, strict: bool = True) -> Any:
    # NaN/Infinity are not JSON: the strict dialect refuses the document, files reject the field that holds
    # one (so one bad record does not cost a file its good ones).
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant if strict else Decimal,
                          object_pairs_hook=_json_object)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ArithmeticError:  # decimal.InvalidOperation: a number Decimal cannot hold (1e99999999999999999999)
        raise ValueError("a number is out of range") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _aliased(record: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, list[RecordError]]:
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


def _field_name(name: str) -> str:
    return show(name, 64)[1:-1]


@dataclass(frozen=True)
class ParseContext:
    """What every record of one payload shares."""

    received_ns: int
    seq_base: int = 0
    default_symbol: str | None = None
    strict: bool = False
    max_errors: int = 20
    max_line_chars: int = 1 << 20


def long_line_error(where: str, limit: int) -> RecordError:
    return RecordError(where, "-", f"is longer than the limit of {limit} bytes for one line (MAX_LINE_BYTES)")


def parse_json_records(records: list[Any], ctx: ParseContext, location: str, first: int,
                       result: ParseResult) -> None:
    for offset, record in enumerate(records):
        index = first + offset
        where = f"{location} {index}"
        _one_json_record(record, where, ctx.seq_base + index, ctx, result)


def _one_json_record(record: Any, where: str, seq: int, ctx: ParseContext, result: ParseResult) -> None:
    if not isinstance(record, dict):
        result.reject([RecordError(where, "-", f"expected a JSON object, got {type(record).__name__}")])
        return
    if isinstance(record, _RepeatedKeys):
        result.reject([RecordError(where, _field_name(k), "appears more than once in the object")
                       for k in dict.fromkeys(record.repeated)])
        return
    unit = None
    if not ctx.strict:
        record, unit, clashes = _aliased(record)
        if clashes:
            result.reject([RecordError(where, c.field, c.reason[:200]) for c in clashes])
            return
    tick, errors = tick_from_record(
        record, location=where, seq=seq, received_ns=ctx.received_ns,
        default_symbol=ctx.default_symbol, timestamp_unit=unit, strict_fields=ctx.strict,
    )
    if tick is None:
        result.reject(errors)
    else:
        result.ticks.append(tick)


def is_one_json_document(text: str) -> bool:
    """Whether ``text`` is a single JSON value (a pretty-printed object spans lines; NDJSON is many values)."""
    try:
        _json_loads(strip_space(text.lstrip("\ufeff")), strict=False)
    except ValueError:  # json.JSONDecodeError included
        return False
    return True


def parse_json_document(text: str, ctx: ParseContext) -> ParseResult:
    """A JSON body: one tick object or an array of them. Records are numbered from 0."""
    result = ParseResult(max_errors=ctx.max_errors)
    stripped = strip_space(text.lstrip("\ufeff"))
    if not stripped:
        result.reject([RecordError("body", "-", "is empty")])
        return result
    try:
        document = _json_loads(stripped, ctx.strict)
    except json.JSONDecodeError as exc:
        result.reject([RecordError(f"line {exc.lineno} column {exc.colno}", "-", f"invalid JSON: {exc.msg}")])
        return result
    except ValueError as exc:
        result.reject([RecordError("body", "-", f"invalid JSON: {exc}")])
        return result
    if isinstance(document, list):
        if not document:
            result.reject([RecordError("body", "-", "is an empty array")])
        parse_json_records(document, ctx, "record", 0, result)
    else:
        _one_json_record(document, "record 0", ctx.seq_base, ctx, result)
    return result


def parse_ndjson_lines(lines: Iterable[str], first_line: int, ctx: ParseContext) -> ParseResult:
    """NDJSON: one JSON object per line; blank lines are skipped. ``first_line`` is 1-based."""
    result = ParseResult(max_errors=ctx.max_errors)
    for offset, line in enumerate(lines):
        number = first_line + offset
        where = f"line {number}"
        if len(line) > ctx.max_line_chars:
            result.reject([long_line_error(where, ctx.max_line_chars)])
            continue
        text = strip_space(line.lstrip("\ufeff"))
        if not text:
            continue
        if "\ufffd" in text:
            result.reject([RecordError(where, "-", "is not valid UTF-8 text")])
            continue
        try:
            record = _json_loads(text, ctx.strict)
        except json.JSONDecodeError as exc:
            result.reject([RecordError(where, "-", f"invalid JSON at column {exc.colno}: {exc.msg}")])
            continue
        except ValueError as exc:
            result.reject([RecordError(where, "-", f"invalid JSON: {exc}")])
            continue
        _one_json_record(record, where, ctx.seq_base + number, ctx, result)
    return result


def parse_csv_lines(lines: list[str], first_line: int, column_map: ColumnMap, ctx: ParseContext) -> ParseResult:
    """CSV data rows (no header); ``first_line`` is the 1-based file line of ``lines[0]``."""
    result = ParseResult(max_errors=ctx.max_errors)
    columns = list(column_map.columns.items())
    unit = column_map.timestamp_unit
    received_ns = ctx.received_ns
    default_symbol = ctx.default_symbol
    for offset, line in enumerate(lines):
        number = first_line + offset
        where = f"line {number}"
        if len(line) > ctx.max_line_chars:
            result.reject([long_line_error(where, ctx.max_line_chars)])
            continue
        try:
            row = csv_cells(line)
        except CsvLineError as exc:
            result.reject([RecordError(where, "-", str(exc))])
            continue
        if not row or (len(row) == 1 and not strip_space(row[0])):
            continue
        if "\ufffd" in line:
            result.reject([RecordError(where, "-", "is not valid UTF-8 text")])
            continue
        if "\x00" in line:
            result.reject([RecordError(where, "-", "contains a NUL byte (binary data, not text)")])
            continue
        record: dict[str, Any] = {}
        short = False
        for name, index in columns:
            if index < len(row):
                record[name] = row[index]
            elif name in ("price", "volume", "timestamp") or (name == "symbol" and not default_symbol):
                short = True
        if short:
            result.reject([RecordError(where, "-", f"has {len(row)} columns, the header has {column_map.width}")])
            continue
        tick, errors = tick_from_record(
            record, location=where, seq=ctx.seq_base + number, received_ns=received_ns,
            default_symbol=default_symbol, timestamp_unit=unit,
        )
        if tick is None:
            result.reject(errors)
        else:
            result.ticks.append(tick)
    return result


class CsvLineError(ValueError):
    """A line that is not one CSV record; the message says why."""


def csv_cells(line: str) -> list[str]:
    """The cells of one CSV line. A record is one line (as chunks and line numbers count): a quote that
    does not close on its line is an error, rather than a field that swallows the lines after it."""
    if '"' not in line and "\r" not in line:
        return line.split(",")  # what csv.reader returns for a line without quotes, faster
    if "\r" in line:
        raise CsvLineError("contains a carriage return inside the line (end lines with LF or CRLF)")
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error as exc:
        reason = "has a quoted field that is not closed on its line" if "end of data" in str(exc) else str(exc)
        raise CsvLineError(f"is not valid CSV: {reason}") from None


def header_cells(text: str) -> list[str] | None:
    """The cells of the first non-blank line of CSV text (None if there is none); CsvLineError if unreadable."""
    for line in text_lines(text.lstrip("\ufeff")):
        if strip_space(line):
            return csv_cells(line)
    return None


def parse_csv_document(text: str, ctx: ParseContext) -> ParseResult:
    """A whole CSV body: header row, then data rows (line numbers count the header as line 1)."""
    result = ParseResult(max_errors=ctx.max_errors)
    stripped = text.lstrip("\ufeff")
    lines = text_lines(stripped)
    leading = 0
    while leading < len(lines) and not strip_space(lines[leading]):
        leading += 1
    if leading == len(lines):
        result.reject([RecordError("body", "-", "is empty")])
        return result
    try:
        header = csv_cells(lines[leading])
    except CsvLineError as exc:
        result.reject([RecordError(f"line {leading + 1}", "header", str(exc))])
        return result
    column_map = ColumnMap.from_header(header)
    problem = header_problem(column_map, ctx.default_symbol)
    if problem:
        result.reject([RecordError(f"line {leading + 1}", "header", problem)])
        return result
    return parse_csv_lines(lines[leading + 1:], leading + 2, column_map, ctx)
