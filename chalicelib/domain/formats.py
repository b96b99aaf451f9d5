"""Decoding tick payloads into validated ticks and located rejects: what every format shares (media types,
the parse context and result, lines), and JSON (one object or an array) and NDJSON. CSV: csv_rows.py.

JSON records from a request and from a file follow the same rules: fields are found by the column aliases
(columns.py) and the caller's renames (options.py), and other keys are ignored (and reported), because
exports from exchanges and vendors carry many we do not need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import fastpath
from .columns import aliased_record
from .errors import RecordError
from .options import NO_OPTIONS, ReadOptions
from .text import show, strip_space
from .ticks import Tick, TickColumns, tick_from_record

MAX_IGNORED_NAMES = 20


class ParseResult:
    """Ticks that passed, and the rejects (the first ``max_errors`` kept, all counted). The fast path hands
    its ticks over as columns; ``ticks`` makes Tick values of them when asked."""

    __slots__ = ("_columns", "_ticks", "errors", "ignored", "max_errors", "rejected")

    def __init__(self, max_errors: int = 20, columns: TickColumns | None = None) -> None:
        self._ticks: list[Tick] | None = None if columns is not None else []
        self._columns = columns
        self.errors: list[RecordError] = []
        self.rejected = 0
        self.max_errors = max_errors
        self.ignored: dict[str, None] = {}  # keys or columns that fed no field (the first ones), in order

    @property
    def ticks(self) -> list[Tick]:
        if self._ticks is None:
            self._ticks = self._columns.ticks() if self._columns is not None else []
        return self._ticks

    def columns(self) -> TickColumns:
        """The ticks column by column (the precise path's ticks transposed once they are all in)."""
        if self._columns is None:
            self._columns = TickColumns.of(self.ticks)
        return self._columns

    def __len__(self) -> int:
        return len(self._columns) if self._ticks is None and self._columns is not None else len(self.ticks)

    def ignore(self, names: Iterable[str]) -> None:
        for name in names:
            if len(self.ignored) >= MAX_IGNORED_NAMES:
                return
            self.ignored[name[:64]] = None

    def reject(self, errors: Iterable[RecordError]) -> None:
        self.rejected += 1
        for error in errors:
            if len(self.errors) < self.max_errors:
                self.errors.append(error)


def text_lines(text: str) -> list[str]:
    """Split on LF only (as chunk line numbers count), dropping a CR before it; other separators are data."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


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


def _json_loads(text: str) -> Any:
    # NaN/Infinity are not JSON: they are read as Decimal values, which the number checks reject, so the
    # record that holds one is rejected with its field (and one bad record does not cost a file its good ones).
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=Decimal, object_pairs_hook=_json_object)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ArithmeticError:  # decimal.InvalidOperation: a number Decimal cannot hold (1e99999999999999999999)
        raise ValueError("a number is out of range") from None


def _field_name(name: str) -> str:
    return show(name, 64)[1:-1]


@dataclass(frozen=True)
class ParseContext:
    """What every record of one payload shares."""

    received_ns: int
    seq_base: int = 0
    default_symbol: str | None = None
    max_errors: int = 20
    max_line_chars: int = 1 << 20
    fast: bool = True  # try the fast path first (False: the precise path alone, for comparisons)
    options: ReadOptions = NO_OPTIONS

    @property
    def fast_json(self) -> bool:
        """Whether JSON records may take the fast path (it knows the tick's own names and ISO/UTC times)."""
        return self.fast and not self.options.renames and self.options.reads_times_plainly

    @property
    def fast_csv(self) -> bool:
        return self.fast and self.options.reads_times_plainly


def numbered_lines(lines: Iterable[str], first_line: int, ctx: ParseContext,
                   result: ParseResult) -> Iterator[tuple[int, str, str]]:
    """(number, location, line) of each line, from ``first_line`` on; over-long lines are rejected instead."""
    for offset, line in enumerate(lines):
        number = first_line + offset
        where = f"line {number}"
        if len(line) > ctx.max_line_chars:
            result.reject([long_line_error(where, ctx.max_line_chars)])
            continue
        yield number, where, line


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
    record, unit, clashes, ignored = aliased_record(record, ctx.options.renames)
    if ignored:
        result.ignore(ignored)
    if clashes:
        result.reject([RecordError(where, c.field, c.reason[:200]) for c in clashes])
        return
    options = ctx.options
    tick, errors = tick_from_record(
        record, location=where, seq=seq, received_ns=ctx.received_ns,
        default_symbol=ctx.default_symbol, timestamp_unit=unit,
        zone=options.zone, timestamp_format=options.timestamp_format,
    )
    if tick is None:
        result.reject(errors)
    else:
        result.ticks.append(tick)


def is_one_json_document(text: str) -> bool:
    """Whether ``text`` is a single JSON value (a pretty-printed object spans lines; NDJSON is many values)."""
    try:
        _json_loads(strip_space(text.lstrip("\ufeff")))
    except ValueError:  # json.JSONDecodeError included
        return False
    return True


def parse_json_document(text: str, ctx: ParseContext) -> ParseResult:
    """A JSON body: one tick object or an array of them. Records are numbered from 1."""
    if ctx.fast_json:
        columns = fastpath.json_document(text, ctx)
        if columns is not None:
            return ParseResult(ctx.max_errors, columns)
    result = ParseResult(max_errors=ctx.max_errors)
    stripped = strip_space(text.lstrip("\ufeff"))
    if not stripped:
        result.reject([RecordError("body", "-", "is empty")])
        return result
    try:
        document = _json_loads(stripped)
    except json.JSONDecodeError as exc:
        result.reject([RecordError(f"line {exc.lineno} column {exc.colno}", "-", f"invalid JSON: {exc.msg}")])
        return result
    except ValueError as exc:
        result.reject([RecordError("body", "-", f"invalid JSON: {exc}")])
        return result
    if isinstance(document, list):
        if not document:
            result.reject([RecordError("body", "-", "is an empty array")])
        parse_json_records(document, ctx, "record", 1, result)
    else:
        _one_json_record(document, "record 1", ctx.seq_base + 1, ctx, result)
    return result


def parse_ndjson_lines(lines: Sequence[str], first_line: int, ctx: ParseContext) -> ParseResult:
    """NDJSON: one JSON object per line; blank lines are skipped. ``first_line`` is 1-based."""
    if ctx.fast_json:
        columns = fastpath.ndjson_lines(lines, first_line, ctx)
        if columns is not None:
            return ParseResult(ctx.max_errors, columns)
    result = ParseResult(max_errors=ctx.max_errors)
    for number, where, line in numbered_lines(lines, first_line, ctx, result):
        text = strip_space(line.lstrip("\ufeff"))
        if not text:
            continue
        if "\ufffd" in text:
            result.reject([RecordError(where, "-", "is not valid UTF-8 text")])
            continue
        try:
            record = _json_loads(text)
        except json.JSONDecodeError as exc:
            result.reject([RecordError(where, "-", f"invalid JSON at column {exc.colno}: {exc.msg}")])
            continue
        except ValueError as exc:
            result.reject([RecordError(where, "-", f"invalid JSON: {exc}")])
            continue
        _one_json_record(record, where, ctx.seq_base + number, ctx, result)
    return result
