"""The fast path against the precise path: on any payload, the fast path gives exactly the precise path's ticks
(the same values, with the same Decimal digits and exponents, types and positions) or defers (None).

Payloads are built from JSON fragments and CSV cells that mix ordinary values with the inputs the parsers'
own tests reject or treat specially (the bad-input tables of test_ticks.py and test_formats.py, and more:
repeated keys, escapes, spaces before a colon, numbers that are not plain). A second set of properties
checks that ordinary payloads do take the fast path, so that "always defer" cannot pass.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib.domain import fastpath
from chalicelib.domain.bars import partials_from_columns, partials_from_ticks
from chalicelib.domain.columns import ColumnMap
from chalicelib.domain.csv_rows import parse_csv_lines
from chalicelib.domain.formats import ParseContext, parse_json_document, parse_ndjson_lines
from chalicelib.domain.ticks import Tick, TickColumns

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
RECEIVED_NS = 1_719_878_400 * 1_000_000_000  # 2024-07-02T00:00:00Z

# ---------------------------------------------------------------------------------------------- values

GOOD_JSON: dict[str, list[str]] = {
    "symbol": ['"AAPL"', '"BTC/USDT"', '"ES.U4"', '"NYSE:IBM"', '"X_1-2"'],
    "price": ["101.5", "0.1", "0.10", "7", '"5528.75"', '"0.00141342"', "123456789012345678", "0.000001",
              "99.000000000000000001"],
    "volume": ["1", "0", "0.001", "2.50", '"3"', '"0.0"', "0.0", "10"],
    "timestamp": ['"2024-07-01T23:58:01Z"', '"2024-07-01T23:58:01.123Z"', '"2024-07-01 23:58:01.5"',
                  '"2024-07-01T23:58:01.123456789+00:00"', "1719878281", "1719878281218", "1719878281218000",
                  "1719878281218000123", '"1719878281218"', '"2024-07-01T23:59:59z"', "null"],
    "trade_id": ['"13519807"', "13519807", '"ccc3c1fa-212c-e8b0"', "0", "null", '"a b"'],
    "side": ['"buy"', '"SELL"', '"B"', "null"],
    "exchange": ['"binance"', '"CME"', "null"],
}
ODD_JSON: dict[str, list[str]] = {
    "symbol": ['""', '"   "', '"BTC USDT"', '"AA\\tPL"', '"\\u0041APL"', '"ÄPFEL"', '"' + "X" * 33 + '"', "42",
               "null", "true", '["AAPL"]', '"a,b"', '"AAPL\\n"'],
    "price": ["0", "-0", "-1.5", "0.0", '"0"', '"NaN"', '"1_000"', '" 1"', '"1 "', "1e2", "1E-7", "0.0000001",
              '"١٢"', '"１"', "true", "null", '""', "[1]", '{"v":1}', "1" * 19, "0." + "0" * 18 + "1",
              "1." + "0" * 21, "1e999999999", "12345678901234567890123", '"1e-8"', "-0.0"],
    "volume": ["-1", "-0.001", '"ten"', "true", '""', "1e3", "0E-30", "-0"],
    "timestamp": ['""', '"yesterday"', '"1900-01-01T00:00:00Z"', '"3000-01-01T00:00:00Z"',
                  '"2024-02-30T00:00:00Z"', '"2024-07-03T00:00:00.000000001Z"', '"2024-07-01T23:58:01+02:00"',
                  '"2024-07-01T23:58:01.1234567890Z"', "1719878281.5", '"1719878281.5"', '"+1719878281"',
                  "-1719878281", "true", '" 1719878281"', '"0001719878281"', "17198782810000000000000",
                  '"2024-07-01T23:58"', '"2024/07/01 23:58:01"'],
    "trade_id": ['""', '"   "', '" 15"', '"a\\nb"', '"' + "x" * 65 + '"', "true", "-5", "1" * 41, "1.5", '"\\u0031"'],
    "side": ['""', '" Sell "', "1", "1.5", '"\\u0007"', '["buy"]'],
    "exchange": ['"\\u0007bell"', '""', "7"],
}


def json_value(field: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(GOOD_JSON[field]), st.sampled_from(ODD_JSON[field]))


@st.composite
def json_record(draw: Any, odd: bool = True) -> str:
    parts = []
    # Mostly one odd field in an otherwise good record (so that each odd value is judged on its own), now and
    # then any mix.
    odd_one = draw(st.sampled_from([*GOOD_JSON, "any"])) if odd else None
    for field in GOOD_JSON:
        if odd and draw(st.integers(0, 9)) == 0 and odd_one in (field, "any"):
            continue  # absent
        if odd_one == "any":
            value = draw(json_value(field))
        elif odd_one == field:
            value = draw(st.sampled_from(ODD_JSON[field]))
        else:
            value = draw(st.sampled_from(GOOD_JSON[field][:-1] if field == "timestamp" else GOOD_JSON[field]))
        colon = draw(st.sampled_from([":", ":", ":", " :", ": "])) if odd else ":"
        parts.append(f'"{field}"{colon}{value}')
        if odd and draw(st.integers(0, 30)) == 0:
            parts.append(f'"{field}"{colon}{draw(json_value(field))}')  # a repeated key
    if odd and draw(st.integers(0, 30)) == 0:
        parts.append(draw(st.sampled_from(['"qty":1', '"Price":1', '"extra":"x"', '"\\u0070rice":1'])))
    if odd:
        parts = draw(st.permutations(parts))
    return "{" + ",".join(parts) + "}"


def exact(ticks: list[Tick]) -> list[tuple[Any, ...]]:
    """Ticks with every value's type and text (Decimal('1.0') and Decimal('1.00') differ here)."""
    return [tuple((type(v).__name__, str(v)) for v in tick) for tick in ticks]


def assert_same(fast: TickColumns | None, precise_ticks: list[Tick], rejected: int) -> None:
    if fast is None:
        return
    assert rejected == 0
    assert exact(fast.ticks()) == exact(precise_ticks)
    by_columns = partials_from_columns(fast, "r")
    by_ticks = partials_from_ticks(precise_ticks, "r")
    assert {k: tuple(map(str, vars_of(b))) for k, b in by_columns.items()} == {
        k: tuple(map(str, vars_of(b))) for k, b in by_ticks.items()}


def vars_of(bar: Any) -> tuple[Any, ...]:
    return tuple(getattr(bar, name) for name in bar.__slots__)


def context(fast: bool, default_symbol: str | None = None) -> ParseContext:
    return ParseContext(received_ns=RECEIVED_NS, fast=fast, default_symbol=default_symbol,
                        max_line_chars=400)


# ---------------------------------------------------------------------------------------------- JSON


@FUZZ
@given(st.lists(json_record(), min_size=1, max_size=6), st.booleans(), st.sampled_from([None, "ESU4"]))
@example(['{"symbol":"A","price":1,"price":"2","volume":1}'], True, None)
@example(['{"symbol":"A","price":0.0000001,"volume":0.0}'], True, None)
@example(['{"symbol":"A","price":1,"volume":1,"timestamp":"1719878281"}'], True, None)
def test_json_fast_path_agrees_or_defers(records: list[str], as_array: bool, default_symbol: str | None) -> None:
    text = "[" + ",".join(records) + "]" if as_array or len(records) > 1 else records[0]
    precise = parse_json_document(text, context(fast=False, default_symbol=default_symbol))
    fast = fastpath.json_document(text, context(fast=True, default_symbol=default_symbol))
    assert_same(fast, precise.ticks, precise.rejected)


@FUZZ
@given(st.lists(json_record(), min_size=1, max_size=6), st.lists(st.sampled_from(["", "  ", "\ufeff"]), max_size=2))
def test_ndjson_fast_path_agrees_or_defers(records: list[str], extra_lines: list[str]) -> None:
    lines = records + extra_lines
    precise = parse_ndjson_lines(lines, 3, context(fast=False))
    fast = fastpath.ndjson_lines(lines, 3, context(fast=True))
    assert_same(fast, precise.ticks, precise.rejected)
    two_on_a_line = [records[0] + "," + records[0], *records[1:]]
    precise = parse_ndjson_lines(two_on_a_line, 1, context(fast=False))
    assert_same(fastpath.ndjson_lines(two_on_a_line, 1, context(fast=True)), precise.ticks, precise.rejected)


@FUZZ
@given(st.lists(json_record(odd=False), min_size=1, max_size=20))
def test_ordinary_json_takes_the_fast_path(records: list[str]) -> None:
    text = "[" + ",".join(records) + "]"
    fast = fastpath.json_document(text, context(fast=True))
    assert fast is not None
    precise = parse_json_document(text, context(fast=False))
    assert_same(fast, precise.ticks, precise.rejected)
    ndjson = fastpath.ndjson_lines(records, 1, context(fast=True))
    assert ndjson is not None
    assert_same(ndjson, parse_ndjson_lines(records, 1, context(fast=False)).ticks, 0)


GOOD_RECORD = {"symbol": '"AAPL"', "price": "101.5", "volume": "2", "timestamp": '"2024-07-01T23:58:01.123Z"',
               "trade_id": '"7"', "side": '"buy"', "exchange": '"CME"'}


def record_text(fields: dict[str, str]) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in ODD_JSON.items() for v in values]
                         + [(f, v) for f, values in GOOD_JSON.items() for v in values])
def test_each_json_value_alone(field: str, value: str) -> None:
    """Every value of the tables, in one record among good ones, as a JSON array and as NDJSON."""
    good = record_text(GOOD_RECORD)
    records = [good, record_text({**GOOD_RECORD, field: value}), good]
    text = "[" + ",".join(records) + "]"
    precise = parse_json_document(text, context(fast=False))
    assert_same(fastpath.json_document(text, context(fast=True)), precise.ticks, precise.rejected)
    precise = parse_ndjson_lines(records, 1, context(fast=False))
    assert_same(fastpath.ndjson_lines(records, 1, context(fast=True)), precise.ticks, precise.rejected)


# ---------------------------------------------------------------------------------------------- CSV

GOOD_CELLS: dict[str, list[str]] = {
    "timestamp": ["2024-07-01T23:58:01Z", "2024-07-01T23:58:01.123Z", "2024-07-01 23:58:01.123456",
                  "1719878281", "1719878281218", "1719878281218000123"],
    "symbol": ["AAPL", "BTC/USDT", "ES.U4"],
    "price": ["101.5", "0.10", "7", "0.000001", "5528.75"],
    "volume": ["1", "0", "2.50", "0.001"],
    "trade_id": ["13519807", "9", "ccc3c1fa-212c", "000123"],
    "side": ["buy", "SELL", "b"],
    "exchange": ["binance", "CME"],
}
ODD_CELLS: dict[str, list[str]] = {
    "timestamp": ["", " 1719878281", "1719878281.5", "+1719878281", "yesterday", "1900-01-01T00:00:00Z",
                  "2024-02-30T00:00:00Z", "2024-07-01T23:58:01+02:00", "-5", "0001719878281",
                  "17198782810000000000000", "١٧١٩٨٧٨٢٨١"],
    "symbol": ["", " AAPL", "A A", "ÄPFEL", "X" * 33],
    "price": ["0", "-1", "0.0", "1e2", " 1", "1_000", "NaN", "", "1" * 19, "0." + "0" * 18 + "1", "١", "0.0000001"],
    "volume": ["-1", "", "1e3", "ten", "0.0"],
    "trade_id": ["", " 15", "x" * 65, "a\x07"],
    "side": ["", " Sell ", "\x07"],
    "exchange": ["", "a\x07"],
    "other": ["", "\ufffd", "\x00", '"q"', 'a"b', "\r", "x,y", "x,y,z"],
}
HEADERS = [
    ["timestamp", "symbol", "price", "volume", "trade_id"],
    ["timestamp_ms", "symbol", "price", "volume"],
    ["ts", "price", "size", "side", "exchange", "id"],
    ["price", "volume", "timestamp"],
    ["symbol", "price", "volume", "timestamp", "other"],
]


def cell(field: str | None, odd: bool) -> st.SearchStrategy[str]:
    if field is None:
        return st.sampled_from(["x", "", "1"])
    good = st.sampled_from(GOOD_CELLS[field])
    return st.one_of(good, st.sampled_from(ODD_CELLS[field]), st.sampled_from(ODD_CELLS[field])) if odd else good


@st.composite
def csv_payload(draw: Any, odd: bool = True) -> tuple[list[str], list[str]]:
    header = draw(st.sampled_from(HEADERS))
    column_map = ColumnMap.from_header(header)
    field_of = {index: name for name, index in column_map.columns.items()}
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        odd_one = draw(st.sampled_from([*range(len(header)), -1])) if odd else None
        cells = [draw(cell(field_of.get(i), odd_one in (i, -1))) for i in range(len(header))]
        if odd and draw(st.integers(0, 15)) == 0:
            cells = cells[:-1] if draw(st.booleans()) else [*cells, "extra"]
        line = ",".join(cells)
        if odd and draw(st.integers(0, 20)) == 0:
            line = draw(st.sampled_from(["", "   ", '"quoted",1', line + "\r", line.replace(",", ",\ufffd", 1),
                                         line + "\x00"]))
        lines.append(line)
    return header, lines


@FUZZ
@given(csv_payload(), st.sampled_from([None, "ESU4"]))
@example((["timestamp", "symbol", "price", "volume", "trade_id"], ["1719878281,A,1,1,", "1719878281,A,1,0.0,5"]),
         None)
def test_csv_fast_path_agrees_or_defers(payload: tuple[list[str], list[str]], default_symbol: str | None) -> None:
    header, lines = payload
    column_map = ColumnMap.from_header(header)
    precise = parse_csv_lines(lines, 2, column_map, context(fast=False, default_symbol=default_symbol))
    fast = fastpath.csv_lines(lines, 2, column_map, context(fast=True, default_symbol=default_symbol))
    assert_same(fast, precise.ticks, precise.rejected)


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in ODD_CELLS.items() for v in values]
                         + [(f, v) for f, values in GOOD_CELLS.items() for v in values])
def test_each_csv_cell_alone(field: str, value: str) -> None:
    """Every cell of the tables in one line among good ones (a cell with commas makes the line wider)."""
    header = ["timestamp", "symbol", "price", "volume", "trade_id", "side", "exchange", "other"]
    good = ["2024-07-01T23:58:01.123Z", "AAPL", "101.5", "2", "7", "buy", "CME", "x"]
    odd = list(good)
    odd[header.index(field)] = value
    lines = [",".join(good), ",".join(odd), ",".join(good)]
    column_map = ColumnMap.from_header(header)
    for default_symbol in (None, "ESU4"):
        if field == "other" and "," in value:
            lines.reverse()  # the wider line first, then last
        precise = parse_csv_lines(lines, 2, column_map, context(fast=False, default_symbol=default_symbol))
        fast = fastpath.csv_lines(lines, 2, column_map, context(fast=True, default_symbol=default_symbol))
        assert_same(fast, precise.ticks, precise.rejected)


@FUZZ
@given(csv_payload(odd=False))
def test_ordinary_csv_takes_the_fast_path(payload: tuple[list[str], list[str]]) -> None:
    header, lines = payload
    column_map = ColumnMap.from_header(header)
    ctx = context(fast=True, default_symbol="ESU4")
    by_unit = {"timestamp_ms": [line for line in lines if line.split(",")[0].isdigit()]}
    if "timestamp_ms" in header:  # a unit named by the column: only epoch numbers are ordinary there
        lines = by_unit["timestamp_ms"] or ["1719878281218,A,1,1"]
    one_shape = {len(line.split(",")[column_map.columns["timestamp"]]) for line in lines}
    fast = fastpath.csv_lines(lines, 2, column_map, ctx)
    precise = parse_csv_lines(lines, 2, column_map, context(fast=False, default_symbol="ESU4"))
    assert_same(fast, precise.ticks, precise.rejected)
    if precise.rejected == 0 and len(one_shape) == 1:
        assert fast is not None


def test_every_decimal_keeps_its_text() -> None:
    text = '[{"symbol":"A","price":1.50,"volume":"2.0"},{"symbol":"A","price":"1.500","volume":3}]'
    fast = fastpath.json_document(text, context(fast=True))
    assert fast is not None
    assert [str(p) for p in fast.prices] == ["1.50", "1.500"]
    assert [str(v) for v in fast.volumes] == ["2.0", "3"]
    assert all(type(p) is Decimal for p in fast.prices)
