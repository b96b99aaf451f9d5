"""Payload decoding: JSON/NDJSON (one set of rules for requests and files), CSV headers and error locations."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chalicelib.domain.columns import ColumnMap, header_problem
from chalicelib.domain.csv_rows import header_cells, parse_csv_document, parse_csv_lines
from chalicelib.domain.files import detect_format
from chalicelib.domain.formats import ParseContext, ParseResult, parse_json_document, parse_ndjson_lines
from chalicelib.domain.options import METADATA_HINTS

RECEIVED_NS = 1_719_878_400 * 1_000_000_000  # 2024-07-02T00:00:00Z
T0 = "2024-07-01T23:58:01Z"
T0_NS = 1_719_878_281 * 1_000_000_000

REST = ParseContext(received_ns=RECEIVED_NS)
FILE = ParseContext(received_ns=RECEIVED_NS)


def locations(result: ParseResult) -> list[str]:
    return [e.location for e in result.errors]


def fields(result: ParseResult) -> list[tuple[str, str]]:
    return [(e.location, e.field) for e in result.errors]


# ---------------------------------------------------------------------------------- JSON
def test_json_single_object() -> None:
    result = parse_json_document(json.dumps({"symbol": "AAPL", "price": 0.1, "volume": 3, "timestamp": T0}), REST)
    assert result.rejected == 0
    [tick] = result.ticks
    assert (tick.symbol, tick.price, tick.volume, tick.ts_ns) == ("AAPL", Decimal("0.1"), Decimal(3), T0_NS)
    # A JSON number is read as Decimal from its text: 0.1 is exactly one tenth, not a binary float.
    assert str(tick.price) == "0.1"


def test_json_array_keeps_order_and_numbers_records_from_one() -> None:
    body = json.dumps([
        {"symbol": "AAPL", "price": "1.10", "volume": "1", "timestamp": T0},
        {"symbol": "MSFT", "price": 2, "volume": 0, "timestamp": T0, "trade_id": "9", "side": "sell"},
    ])
    result = parse_json_document(body, REST)
    assert [(t.symbol, t.price, t.seq) for t in result.ticks] == [("AAPL", Decimal("1.10"), 1), ("MSFT", Decimal(2), 2)]
    assert result.ticks[1].trade_id == "9" and result.ticks[1].side == "sell"


def test_json_keeps_long_decimals_exactly() -> None:
    result = parse_json_document('{"symbol":"XRP/ETH","price":0.000000000000000001,"volume":123456789.123456789}', REST)
    [tick] = result.ticks
    assert tick.price == Decimal("1E-18")
    assert tick.volume == Decimal("123456789.123456789")


def test_json_keys_by_alias_and_the_others_listed_as_ignored() -> None:
    result = parse_json_document('[{"symbol":"A","price":1,"volume":1,"note":"x"},{"Ticker":"B","px":2,"qty":3}]', REST)
    assert [(t.symbol, t.price, t.volume) for t in result.ticks] == [("A", 1, 1), ("B", 2, 3)]
    assert result.rejected == 0 and list(result.ignored) == ["note"]


@pytest.mark.parametrize(
    ("body", "location", "reason_part"),
    [
        ("", "body", "empty"),
        ("   \n", "body", "empty"),
        ("[]", "body", "empty array"),
        ("[1,", "line 1 column 4", "invalid JSON"),
        ('{"symbol": "A",\n "price": }', "line 2 column 11", "invalid JSON"),
        ('{"symbol":"A","price":NaN,"volume":1}', "record 1", "must be finite"),
        ('{"symbol":"A","price":Infinity,"volume":1}', "record 1", "must be finite"),
        ('"just a string"', "record 1", "expected a JSON object"),
        ("42", "record 1", "expected a JSON object"),
    ],
)
def test_json_document_errors(body: str, location: str, reason_part: str) -> None:
    result = parse_json_document(body, REST)
    assert result.ticks == []
    assert result.rejected == 1
    [error] = result.errors
    assert error.location == location
    assert reason_part in error.reason


def test_json_error_locations_name_the_record() -> None:
    records: list[object] = [{"symbol": "A", "price": "1", "volume": "1"} for _ in range(4)]
    records[3] = {"symbol": "A", "price": "-2", "volume": "1"}
    records.append("not an object")
    result = parse_json_document(json.dumps(records), REST)
    assert len(result.ticks) == 3
    assert result.rejected == 2
    assert fields(result) == [("record 4", "price"), ("record 5", "-")]


def test_json_bom_is_ignored() -> None:
    result = parse_json_document('\ufeff{"symbol":"A","price":"1","volume":"1"}', REST)
    assert len(result.ticks) == 1 and result.rejected == 0


@pytest.mark.parametrize("raw", ["true", "false"])
def test_json_bool_price_is_rejected(raw: str) -> None:
    result = parse_json_document(f'{{"symbol":"A","price":{raw},"volume":1}}', REST)
    assert fields(result) == [("record 1", "price")]


# ---------------------------------------------------------------------------------- JSON (file dialect)
def test_file_dialect_maps_aliases_and_ignores_extra_fields() -> None:
    record = {"Ticker": "XRP/ETH", "px": "0.00141342", "qty": "23.0", "timestamp_ms": 1570752011620,
              "id": "13519807", "cost": 0.03250866, "info": {"a": 1}, "fee": None}
    result = parse_json_document(json.dumps(record), FILE)
    assert result.rejected == 0
    [tick] = result.ticks
    assert (tick.symbol, tick.price, tick.volume, tick.ts_ns, tick.trade_id) == (
        "XRP/ETH", Decimal("0.00141342"), Decimal("23.0"), 1_570_752_011_620_000_000, "13519807"
    )


def test_file_dialect_ccxt_trade_object() -> None:
    line = ('{"info":{"a":13519807,"p":"0.00141342"},"timestamp":1570752011620,"datetime":"2019-10-11T00:00:11.620Z",'
            '"symbol":"XRP/ETH","id":"13519807","order":null,"type":null,"side":"sell","price":0.00141342,'
            '"amount":23.0,"cost":0.03250866,"fee":null}')
    result = parse_ndjson_lines([line], 1, FILE)
    [tick] = result.ticks
    assert (tick.price, tick.volume, tick.ts_ns, tick.side) == (
        Decimal("0.00141342"), Decimal("23.0"), 1_570_752_011_620_000_000, "sell"
    )


def test_file_dialect_uses_the_default_symbol() -> None:
    ctx = ParseContext(received_ns=RECEIVED_NS, default_symbol="ESU4")
    result = parse_json_document('[{"price":"5528.75","size":2,"ts_event_ns":"1719878281218218853"}]', ctx)
    [tick] = result.ticks
    assert (tick.symbol, tick.volume, tick.ts_ns) == ("ESU4", Decimal(2), 1_719_878_281_218_218_853)


# ---------------------------------------------------------------------------------- NDJSON
def test_ndjson_lines_numbered_from_first_line_and_blank_lines_skipped() -> None:
    lines = [
        '{"symbol":"A","price":"1","volume":"1"}',
        "",
        "   ",
        '{"symbol":"A","price":"0","volume":"1"}',
        "{not json",
        '["an", "array"]',
        '{"symbol":"A","price":"2","volume":"1","extra":1}',
        '{"symbol":"B","price":"3","volume":"1"}',
    ]
    result = parse_ndjson_lines(lines, 17, REST)
    assert [t.symbol for t in result.ticks] == ["A", "A", "B"]
    assert [t.seq for t in result.ticks] == [17, 23, 24]
    assert result.rejected == 3
    assert locations(result) == ["line 20", "line 21", "line 22"]
    assert list(result.ignored) == ["extra"]


def test_ndjson_bom_and_windows_line_endings() -> None:
    text = '\ufeff{"symbol":"A","price":"1","volume":"1"}\r\n{"symbol":"B","price":"2","volume":"1"}\r\n'
    result = parse_ndjson_lines(text.splitlines(), 1, REST)
    assert [t.symbol for t in result.ticks] == ["A", "B"] and result.rejected == 0


def test_ndjson_replacement_character_is_reported_as_bad_text() -> None:
    bad = b'{"symbol":"A","price":"1","volume":"1","side":"\xff"}'.decode("utf-8", "replace")
    result = parse_ndjson_lines([bad], 5, REST)
    assert result.ticks == []
    assert [(e.location, e.reason) for e in result.errors] == [("line 5", "is not valid UTF-8 text")]


def test_ndjson_nan_literal_is_rejected() -> None:
    result = parse_ndjson_lines(['{"symbol":"A","price":NaN,"volume":1}'], 1, REST)
    assert result.ticks == [] and locations(result) == ["line 1"]


# ---------------------------------------------------------------------------------- CSV headers
@pytest.mark.parametrize(
    ("header", "expected_columns", "unit"),
    [
        ("symbol,price,volume,timestamp", {"symbol": 0, "price": 1, "volume": 2, "timestamp": 3}, None),
        ("Ticker,PX,Qty,Time", {"symbol": 0, "price": 1, "volume": 2, "timestamp": 3}, None),
        ("instrument,price,size,ts", {"symbol": 0, "price": 1, "volume": 2, "timestamp": 3}, None),
        ("Date and Time,Price,Volume", {"timestamp": 0, "price": 1, "volume": 2}, None),
        # freqtrade: a nameless pandas index column first, and both timestamp and date
        (",timestamp,id,type,side,price,amount,cost,date",
         {"timestamp": 1, "trade_id": 2, "side": 4, "price": 5, "volume": 6}, None),
        ("timestamp_ms,timestamp_iso,symbol,trade_id,side,price,amount,cost",
         {"timestamp": 0, "symbol": 2, "trade_id": 3, "side": 4, "price": 5, "volume": 6}, "ms"),
        ("ts_event_iso,ts_event_ns,ts_recv_ns,symbol,instrument_id,price,size,side,sequence",
         {"timestamp": 1, "symbol": 3, "price": 5, "volume": 6, "side": 7}, "ns"),
        ("exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
         {"exchange": 0, "symbol": 1, "timestamp": 2, "trade_id": 4, "side": 5, "price": 6, "volume": 7}, None),
        ("recv_epoch_s,event_time_ms,symbol,agg_trade_id,price,quantity,first_trade_id,last_trade_id,"
         "transact_time_ms,is_buyer_maker",
         {"timestamp": 8, "symbol": 2, "trade_id": 3, "price": 4, "volume": 5}, "ms"),
        ("timestamp_us,price,qty", {"timestamp": 0, "price": 1, "volume": 2}, "us"),
        (' "Symbol" , Trade-ID ,PRICE,Volume', {"symbol": 0, "trade_id": 1, "price": 2, "volume": 3}, None),
    ],
)
def test_csv_header_aliases(header: str, expected_columns: dict[str, int], unit: str | None) -> None:
    cells = header_cells(header + "\n")
    assert cells is not None
    column_map = ColumnMap.from_header(cells)
    assert column_map.columns == expected_columns
    assert column_map.timestamp_unit == unit
    assert ColumnMap.from_dict(json.loads(json.dumps(column_map.to_dict()))) == column_map


@pytest.mark.parametrize(
    ("header", "default_symbol", "missing"),
    [
        ("symbol,volume,timestamp", None, ["price"]),
        ("symbol,price,timestamp", None, ["volume"]),
        ("price,volume", None, ["symbol"]),
        ("price,volume", "ESU4", []),
        ("Datetime,Open,High,Low,Close,Volume,OpenInterest", "ES", ["price"]),  # a bar file, not ticks
    ],
)
def test_csv_header_problems(header: str, default_symbol: str | None, missing: list[str]) -> None:
    cells = header_cells(header)
    assert cells is not None
    column_map = ColumnMap.from_header(cells)
    assert column_map.missing(default_symbol) == missing
    problem = header_problem(column_map, default_symbol, METADATA_HINTS)
    if missing:
        assert problem is not None
        for name in missing:
            assert f"{name} (one of:" in problem
    else:
        assert problem is None


def test_csv_without_price_column_is_rejected_as_a_whole_at_the_header_line() -> None:
    result = parse_csv_document("\n\nsymbol,volume\nA,1\nB,2\n", FILE)
    assert result.ticks == []
    assert result.rejected == 1
    [error] = result.errors
    assert (error.location, error.field) == ("line 3", "header")
    assert "price" in error.reason


# ---------------------------------------------------------------------------------- CSV documents
def test_csv_document_with_bom_crlf_extra_columns_and_line_numbers() -> None:
    text = (
        "\ufeffSymbol,Price,Qty,Time,Venue Notes\r\n"
        "AAPL,187.50,10,2024-07-01T23:58:01Z,ignored\r\n"
        "\r\n"
        "MSFT,0.1,0,1719878281218,\r\n"
    )
    result = parse_csv_document(text, FILE)
    assert result.rejected == 0
    assert [(t.symbol, t.price, t.volume, t.ts_ns, t.seq) for t in result.ticks] == [
        ("AAPL", Decimal("187.50"), Decimal(10), T0_NS, 2),
        ("MSFT", Decimal("0.1"), Decimal(0), T0_NS + 218_000_000, 4),
    ]


def test_csv_error_locations_are_file_lines() -> None:
    rows = ["symbol,price,volume,timestamp"] + [f"A,{i + 1},1,{T0}" for i in range(20)]
    rows[16] = f"A,abc,1,{T0}"  # line 17
    rows[5] = f"A B,1,1,{T0}"  # line 6
    result = parse_csv_document("\n".join(rows) + "\n", FILE)
    assert result.rejected == 2
    assert fields(result) == [("line 6", "symbol"), ("line 17", "price")]
    assert len(result.ticks) == 18


def test_csv_rows_with_too_few_columns_are_rejected() -> None:
    text = "symbol,price,volume,timestamp\nA,1,2,2024-07-01T00:00:00Z\nB,1\nC\n"
    result = parse_csv_document(text, FILE)
    assert [t.symbol for t in result.ticks] == ["A"]
    assert result.rejected == 2
    assert [(e.location, e.reason) for e in result.errors] == [
        ("line 3", "has 2 columns, the header has 4"),
        ("line 4", "has 1 columns, the header has 4"),
    ]


def test_csv_row_cut_before_its_timestamp_column_is_rejected_not_stamped_with_receipt_time() -> None:
    # A truncated row must not silently get the time of receipt: its trade happened at some other time.
    text = "symbol,price,volume,timestamp\nA,1,2,2024-07-01T00:00:00Z\nB,1,2\n"
    result = parse_csv_document(text, FILE)
    assert [t.symbol for t in result.ticks] == ["A"]
    assert [(e.location, e.reason) for e in result.errors] == [("line 3", "has 3 columns, the header has 4")]


def test_csv_empty_timestamp_cell_means_time_of_receipt() -> None:
    result = parse_csv_document("symbol,price,volume,timestamp\nA,1,2,\n", FILE)
    [tick] = result.ticks
    assert tick.ts_ns == RECEIVED_NS


def test_csv_whitespace_padded_cells_and_quoted_fields() -> None:
    # Like freqtrade's hand-edited MESSY example.
    text = (
        ",timestamp,id,type,side,price,amount,cost,date\n"
        "0,1675311000092, 1588563957,    ,buy, 23438.0,  0.013, 0, 2023-02-02 04:10:00.092000+00:00\n"
        '1,1675311000211,"1588563958",,"sell ",23437.5,0.001,0,2023-02-02 04:10:00.211000+00:00\n'
    )
    result = parse_csv_document(text, ParseContext(received_ns=RECEIVED_NS, default_symbol="BTC/USDT"))
    assert result.rejected == 0
    assert [(t.trade_id, t.side, t.price, t.volume, t.ts_ns) for t in result.ticks] == [
        ("1588563957", "buy", Decimal("23438.0"), Decimal("0.013"), 1_675_311_000_092_000_000),
        ("1588563958", "sell", Decimal("23437.5"), Decimal("0.001"), 1_675_311_000_211_000_000),
    ]


def test_csv_slash_dates_and_default_symbol_like_mlfinlab() -> None:
    text = "Date and Time,Price,Volume\n2011/07/31 22:00:00.120,1306.0,2\n2011/07/31 22:00:00.120,1306.0,2\n\n\n"
    result = parse_csv_document(text, ParseContext(received_ns=RECEIVED_NS, default_symbol="ES"))
    # Identical rows are separate fills: both are kept.
    assert [(t.symbol, t.price, t.volume, t.ts_ns) for t in result.ticks] == [
        ("ES", Decimal("1306.0"), Decimal(2), 1_312_149_600_120_000_000)
    ] * 2
    assert result.rejected == 0


def test_csv_without_symbol_column_or_default_is_rejected() -> None:
    result = parse_csv_document("price,volume\n1,2\n", FILE)
    assert result.ticks == [] and fields(result) == [("line 1", "header")]


def test_csv_empty_document() -> None:
    result = parse_csv_document("\ufeff\n\n", FILE)
    assert result.ticks == [] and fields(result) == [("body", "-")]


def test_csv_error_cap_keeps_the_first_errors_and_counts_all() -> None:
    rows = ["symbol,price,volume"] + ["A,-1,1"] * 50 + ["A,1,1"]
    result = parse_csv_document("\n".join(rows), ParseContext(received_ns=RECEIVED_NS, max_errors=5))
    assert result.rejected == 50
    assert locations(result) == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert len(result.ticks) == 1


def test_error_cap_counts_records_not_messages() -> None:
    rows = ["symbol,price,volume"] + ["A B,-1,x"] * 3  # three problems per row
    result = parse_csv_document("\n".join(rows), ParseContext(received_ns=RECEIVED_NS, max_errors=4))
    assert result.rejected == 3
    assert len(result.errors) == 4
    assert locations(result) == ["line 2", "line 2", "line 2", "line 3"]


def test_csv_lines_chunk_with_its_own_first_line() -> None:
    column_map = ColumnMap.from_header(["symbol", "price", "volume"])
    result = parse_csv_lines(["A,1,1", "A,0,1", "A,2,1"], 1001, column_map, FILE)
    assert [t.seq for t in result.ticks] == [1001, 1003]
    assert locations(result) == ["line 1002"]


def test_csv_nul_byte_row_is_rejected() -> None:
    result = parse_csv_document("symbol,price,volume\nA,1\x00,1\nB,1,1\n", FILE)
    assert [t.symbol for t in result.ticks] == ["B"]
    reasons = [(e.location, e.reason) for e in result.errors]
    assert reasons == [("line 2", "contains a NUL byte (binary data, not text)")]


# ---------------------------------------------------------------------------------- format detection
@pytest.mark.parametrize(
    ("name", "content_type", "head", "expected"),
    [
        ("trades.csv", None, b"", "csv"),
        ("trades.CSV.gz", None, b"", "csv"),
        ("trades.ndjson", None, b"", "ndjson"),
        ("trades.jsonl.gz", None, b"", "ndjson"),
        ("trades.json", None, b"", "json"),
        ("trades.tsv", "text/csv", b"", None),
        ("upload", "text/csv; charset=utf-8", b"", "csv"),
        ("upload", "application/x-ndjson", b"", "ndjson"),
        ("upload", "application/json", b"", "json"),
        ("upload", None, b"\xef\xbb\xbf  [ {", "json"),
        ("upload", "application/octet-stream", b'\n{"a":1}', "ndjson"),
        ("upload", None, b"symbol,price", "csv"),
    ],
)
def test_detect_format(name: str, content_type: str | None, head: bytes, expected: str | None) -> None:
    assert detect_format(name, content_type, head) == expected
