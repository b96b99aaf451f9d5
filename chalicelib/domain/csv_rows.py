"""CSV text: the cells of one line, and rows into ticks with their file line numbers.

A record is one line (as chunks and line numbers count): a quote that does not close on its line is that
line's reject, never a field that swallows the lines after it.
"""

from __future__ import annotations

import csv
from typing import Any

from . import fastpath
from .columns import ColumnMap, header_problem
from .errors import RecordError
from .formats import ParseContext, ParseResult, numbered_lines, text_lines
from .options import QUERY_HINTS
from .text import strip_space
from .ticks import tick_from_record


def parse_csv_lines(lines: list[str], first_line: int, column_map: ColumnMap, ctx: ParseContext) -> ParseResult:
    """CSV data rows (no header); ``first_line`` is the 1-based file line of ``lines[0]``."""
    if ctx.fast_csv:
        fast = fastpath.csv_lines(lines, first_line, column_map, ctx)
        if fast is not None:
            return ParseResult(ctx.max_errors, fast)
    result = ParseResult(max_errors=ctx.max_errors)
    columns = list(column_map.columns.items())
    unit = column_map.timestamp_unit
    received_ns = ctx.received_ns
    default_symbol = ctx.default_symbol
    zone, fmt = ctx.options.zone, ctx.options.timestamp_format
    for number, where, line in numbered_lines(lines, first_line, ctx, result):
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
            default_symbol=default_symbol, timestamp_unit=unit, zone=zone, timestamp_format=fmt,
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
    """A whole CSV body: header row, then data rows (line numbers count the header as line 1); or, when the
    options name the columns, data rows from line 1."""
    result = ParseResult(max_errors=ctx.max_errors)
    stripped = text.lstrip("\ufeff")
    lines = text_lines(stripped)
    if ctx.options.columns is not None:
        if not any(strip_space(line) for line in lines):
            result.reject([RecordError("body", "-", "is empty")])
            return result
        return parse_csv_lines(lines, 1, ColumnMap.from_names(ctx.options.columns), ctx)
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
    column_map = ColumnMap.from_header(header, ctx.options.renames)
    problem = header_problem(column_map, ctx.default_symbol, QUERY_HINTS)
    if problem:
        result.reject([RecordError(f"line {leading + 1}", "header", problem)])
        return result
    parsed = parse_csv_lines(lines[leading + 1:], leading + 2, column_map, ctx)
    parsed.ignore(column_map.ignored)
    return parsed
