"""The fast path: the ticks of an ordinary, well-formed payload, column by column, or None on any doubt.

A payload whose every record is well formed (which is nearly every payload) does not need the located
verdicts of the precise parsers (formats.py, csv_rows.py): it is decoded in one call (msgspec for JSON, a
split per line for CSV), turned into columns, and each column is checked as a whole, per distinct value
(symbols, sides, prices) or with one scan of C code (digits, ranges), instead of per tick. The checks are
those of ``ticks._fast_tick``, so the ticks are exactly the ones the precise path gives. Anything else
(one doubtful record, a repeated key, an escape, a column that is not uniform) returns None, and the
precise path gives the verdict and its located errors. tests/unit/test_fastpath_differential.py holds the
two paths to that.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from itertools import compress, repeat
from operator import add, attrgetter, is_not, itemgetter, mul
from typing import TYPE_CHECKING, Any

import msgspec

from .ticks import SYMBOL_RE, TickColumns, clean_token, plain_decimal
from .timefmt import (
    MAX_FUTURE_NS,
    MIN_TIMESTAMP_NS,
    NS_PER_S,
    UNIT_NS,
    epoch_unit,
    fast_timestamp,
    iso_seconds,
    iso_tail_ns,
)

if TYPE_CHECKING:
    from .columns import ColumnMap
    from .formats import ParseContext

_UNSET = msgspec.UNSET
_UNSET_TYPE = type(msgspec.UNSET)
_NONE_TYPE = type(None)
_MAX_INT_ID = 10**40
_CACHE_LIMIT = 100_000
# A clean token (ticks.clean_token) per line: the trade ids of a column checked in one regex scan.
_TOKEN_LINES = re.compile(r"(?:[A-Za-z0-9._\-/:](?:[A-Za-z0-9._\-/: ]{0,62}[A-Za-z0-9._\-/:])?\n)*")
_HEAD = itemgetter(slice(0, 19))
_TAIL = itemgetter(slice(19, None))


class _Record(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A JSON tick record with the tick's own field names (any other key sends the payload to the precise
    path). Values are kept as JSON gave them: the column checks judge them."""

    symbol: Any = _UNSET
    price: Any = _UNSET
    volume: Any = _UNSET
    timestamp: Any = _UNSET
    trade_id: Any = _UNSET
    side: Any = _UNSET
    exchange: Any = _UNSET


_FIELDS = _Record.__struct_fields__
_GETTERS = tuple(attrgetter(name) for name in _FIELDS)


class _Numbers(dict):  # type: ignore[type-arg]
    """msgspec's float_hook: the Decimal of a JSON number's text, made once per distinct text; notes whether
    any number was not a plain one (which the precise path would judge differently)."""

    doubt = False

    def __missing__(self, text: str) -> Decimal | None:
        try:
            value = Decimal(text)
        except ArithmeticError:
            self.doubt = True
            return None
        if plain_decimal(value) is None:
            self.doubt = True
        elif len(self) < _CACHE_LIMIT:
            self[text] = value
        return value


@contextmanager
def _without_gc() -> Iterator[None]:
    """The cyclic collector off while a payload's columns are built: they are hundreds of thousands of new
    objects and no cycles, and its passes over them cost as much as building them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fast(parse: Callable[..., TickColumns | None]) -> Callable[..., TickColumns | None]:
    def run(*args: Any) -> TickColumns | None:
        with _without_gc():
            return parse(*args)
    run.__doc__ = parse.__doc__
    return run


# ---------------------------------------------------------------------------------------------- payloads


@_fast
def json_document(text: str, ctx: ParseContext) -> TickColumns | None:
    """A JSON body or file (one object or an array of objects), records numbered from 1."""
    if "\\" in text:
        return None  # see _from_records
    numbers = _Numbers()
    decoder = msgspec.json.Decoder(list[_Record] | _Record, float_hook=numbers.__getitem__)
    try:
        document = decoder.decode(text)
    except msgspec.DecodeError:
        return None
    records = document if isinstance(document, list) else [document]
    if not records or numbers.doubt:
        return None
    return _from_records(records, text, ctx, ctx.seq_base + 1)


@_fast
def ndjson_lines(lines: Sequence[str], first_line: int, ctx: ParseContext) -> TickColumns | None:
    """NDJSON, one object on each line (a blank line sends the payload to the precise path, which skips it)."""
    if not lines or max(map(len, lines)) > ctx.max_line_chars:
        return None
    text = ",".join(lines)
    if "\ufeff" in text or "\ufffd" in text or "\\" in text:
        return None
    numbers = _Numbers()
    decoder = msgspec.json.Decoder(list[_Record], float_hook=numbers.__getitem__)
    try:
        records = decoder.decode("[" + text + "]")
    except msgspec.DecodeError:
        return None
    # A blank line or one split across lines cannot decode; a line with two objects makes one record too many.
    if len(records) != len(lines) or numbers.doubt:
        return None
    return _from_records(records, text, ctx, ctx.seq_base + first_line)


@_fast
def csv_lines(lines: Sequence[str], first_line: int, column_map: ColumnMap, ctx: ParseContext) -> TickColumns | None:
    """CSV data rows of one width, without quotes, blank lines or damaged text; ``first_line`` is 1-based."""
    if not lines or max(map(len, lines)) > ctx.max_line_chars:
        return None
    text = "\n".join(lines)
    if '"' in text or "\r" in text or "\x00" in text or "\ufffd" in text:
        return None
    commas = set(map(str.count, lines, repeat(",")))
    if len(commas) != 1:
        return None
    width = commas.pop() + 1
    where = column_map.columns
    if width < 2 or any(index >= width for index in where.values()):
        return None  # one cell: a blank line perhaps, which the precise path skips
    cells = text.replace("\n", ",").split(",")  # row after row: column i is cells[i::width]
    n = len(lines)
    nothing: list[Any] = [None] * n

    def column(name: str) -> Sequence[Any]:
        return cells[where[name]::width] if name in where else nothing

    names = ("symbol", "price", "volume", "timestamp", "trade_id", "side", "exchange")
    kinds: list[set[type]] = [{str} if name in where else {_NONE_TYPE} for name in names]  # every cell is text
    symbol, price, volume, timestamp, trade_id, side, exchange = map(column, names)
    return _checked(symbol, price, volume, timestamp, trade_id, side, exchange,
                    range(ctx.seq_base + first_line, ctx.seq_base + first_line + n), ctx, column_map.timestamp_unit,
                    kinds)


def _from_records(records: list[_Record], text: str, ctx: ParseContext, seq0: int) -> TickColumns | None:
    n = len(records)
    columns: list[list[Any]] = []
    column_kinds: list[set[type]] = []
    quotes = 0  # the quotes the records account for: each key present, and each string value
    for getter in _GETTERS:
        values = list(map(getter, records))
        kinds = set(map(type, values))
        if kinds == {str}:
            quotes += 4 * n
        elif str not in kinds and _UNSET_TYPE not in kinds:
            quotes += 2 * n
        else:
            types = list(map(type, values))
            quotes += 2 * (n - types.count(_UNSET_TYPE) + types.count(str))
        if kinds == {_UNSET_TYPE}:
            values = [None] * n
        elif _UNSET_TYPE in kinds:
            values = [None if v is _UNSET else v for v in values]
        if _UNSET_TYPE in kinds:
            kinds = (kinds - {_UNSET_TYPE}) | {_NONE_TYPE}
        columns.append(values)
        column_kinds.append(kinds)
    # json.loads keeps the last of a repeated key and so does msgspec; the precise path rejects the record.
    # Without escapes, every quote is a key's or a string's, so a repeated key shows as quotes unaccounted for.
    if text.count('"') != quotes:
        return None
    symbol, price, volume, timestamp, trade_id, side, exchange = columns
    return _checked(symbol, price, volume, timestamp, trade_id, side, exchange, range(seq0, seq0 + n), ctx, None,
                    column_kinds)


# ---------------------------------------------------------------------------------------------- columns


def _checked(symbols: Sequence[Any], prices: Sequence[Any], volumes: Sequence[Any], stamps: Sequence[Any],
             trade_ids: Sequence[Any], sides: Sequence[Any], exchanges: Sequence[Any], seqs: Sequence[int],
             ctx: ParseContext, unit: str | None, kinds: Sequence[set[type]]) -> TickColumns | None:
    """The columns as ``ticks._fast_tick`` reads each record, or None if it would refuse any of them. ``kinds``:
    the types each column holds, in field order."""
    try:
        symbol_col = _symbols(symbols, ctx.default_symbol)
        price_col = _decimals(prices, kinds[1], positive=True)
        volume_col = _decimals(volumes, kinds[2], positive=False)
        if symbol_col is None or price_col is None or volume_col is None:
            return None
        ts_col = _timestamps(stamps, kinds[3], unit, ctx.received_ns)
        id_col = _trade_ids(trade_ids, kinds[4])
        side_col = _tokens(sides, lower=True)
        exchange_col = _tokens(exchanges, lower=False)
    except TypeError:  # an unhashable value (a JSON array or object where a scalar belongs)
        return None
    if ts_col is None or id_col is None or side_col is None or exchange_col is None:
        return None
    return TickColumns(symbol_col, price_col, volume_col, ts_col, seqs, id_col, side_col, exchange_col)


def _symbols(values: Sequence[Any], default: str | None) -> Sequence[str] | None:
    distinct = set(values)
    if None in distinct or "" in distinct:
        if default is None:
            return None
        values = [default if v is None or v == "" else v for v in values]
        distinct = set(values)
    for symbol in distinct:
        if type(symbol) is not str or not SYMBOL_RE.fullmatch(symbol):
            return None
    return values


def _decimals(values: Sequence[Any], kinds: set[type], positive: bool) -> Sequence[Decimal] | None:
    out: Sequence[Any]
    if kinds == {Decimal}:
        out = values  # JSON numbers, plain ones only (see _Numbers)
    elif kinds == {str}:
        exact = {text: plain_decimal(text) for text in set(values)}
        if _has_none(exact.values()):
            return None
        out = list(map(exact.__getitem__, values))
    elif kinds <= {Decimal, int, str}:
        # Mostly JSON numbers with a point and a few without (a volume of 3): only the others are read here.
        out = list(values)
        for i in compress(range(len(out)), map(is_not, map(type, out), repeat(Decimal))):
            value = plain_decimal(out[i])
            if value is None:
                return None
            out[i] = value
    else:
        return None
    if positive and not all(out):
        return None
    return out


def _has_none(values: Iterable[Any]) -> bool:
    # Not ``None in values``: comparing a Decimal with None goes through the numbers ABCs, slowly.
    return _NONE_TYPE in set(map(type, values))


def _timestamps(values: Sequence[Any], kinds: set[type], unit: str | None, received_ns: int) -> Sequence[int] | None:
    stamps: Sequence[int] | None = None
    if kinds == {str} and "" not in values:
        first = values[0]
        if len(first) >= 19 and first[4] == "-":
            stamps = _iso_column(values)
        elif all(map(str.isdigit, values)) and "".join(values).isascii() and max(map(len, values)) <= 20:
            stamps = _epoch_column(list(map(int, values)), unit)
    elif kinds == {int}:
        stamps = _epoch_column(values, unit)
    if stamps is None:  # a mixed column: each value as _fast_tick reads it
        stamps = []
        for raw in values:
            found = received_ns if raw is None or raw == "" else fast_timestamp(raw, unit)
            if found is None:
                return None
            stamps.append(found)
    if min(stamps) < MIN_TIMESTAMP_NS or max(stamps) > received_ns + MAX_FUTURE_NS:
        return None
    return stamps


def _iso_column(values: Sequence[str]) -> list[int] | None:
    # Each distinct second and each distinct fraction is read once; an unreadable one is None, and adding it
    # to a number raises.
    try:
        return list(map(add, map(_HeadNs().__getitem__, map(_HEAD, values)),
                        map(_TailNs().__getitem__, map(_TAIL, values))))
    except TypeError:
        return None


class _HeadNs(dict):  # type: ignore[type-arg]
    def __missing__(self, head: str) -> int | None:
        seconds = iso_seconds(head)
        value = self[head] = None if seconds is None else seconds * NS_PER_S
        return value


class _TailNs(dict):  # type: ignore[type-arg]
    def __missing__(self, tail: str) -> int | None:
        value = self[tail] = iso_tail_ns(tail)
        return value


def _epoch_column(values: Sequence[int], unit: str | None) -> list[int] | None:
    if not values or min(values) < 0:
        return None
    if unit is None:
        unit = epoch_unit(min(values))
        if epoch_unit(max(values)) != unit:
            return None
    return list(map(mul, values, repeat(UNIT_NS[unit])))


def _trade_ids(values: Sequence[Any], kinds: set[type]) -> Sequence[str | None] | None:
    if kinds == {type(None)}:
        return values
    if kinds == {str}:
        joined = "".join(values)
        if joined.isascii() and joined.isdigit() and "" not in values and max(map(len, values)) <= 64:
            return values
        if _TOKEN_LINES.fullmatch("\n".join(values) + "\n") is None:
            return None
        return values
    if kinds == {int}:
        if min(values) < 0 or max(values) >= _MAX_INT_ID:
            return None
        return list(map(str, values))
    out: list[str | None] = []
    for raw in values:
        if raw is None or (type(raw) is str and clean_token(raw)):
            out.append(raw)
        elif type(raw) is int and 0 <= raw < _MAX_INT_ID:
            out.append(str(raw))
        else:
            return None
    return out


def _tokens(values: Sequence[Any], lower: bool) -> Sequence[str | None] | None:
    distinct = set(values)
    if distinct == {None}:
        return values
    clean: dict[Any, str | None] = {}
    for raw in distinct:
        if raw is None:
            clean[raw] = None
        elif type(raw) is str and clean_token(raw):
            clean[raw] = raw.lower() if lower else raw
        else:
            return None
    return list(map(clean.__getitem__, values))
