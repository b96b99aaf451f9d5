"""Malformed input, table-driven, through both doors: POST /ingest and an S3 upload.

Every row of CASES is one payload and what must come of it. Each row is applied to the REST route (a 4xx
whose JSON says what is wrong and where, nothing queued; or 202 for valid input with quirks) and, unless it
is REST-only, to an S3 object (per-row rejects with their line or record, the good rows ingested and
aggregated into bars; or a whole-file rejection with a clear reason). No handler may fail or answer 5xx,
and no response may carry a stack trace.

The moto stack is built once for the module and emptied before each case (queues, table, bucket); every
case also uses its own symbol (``symbol_of(name)``), so cases cannot see each other's ticks or bars.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from chalicelib.schemas import ColumnsMessage, decode_columns, decode_message
from tests.moto_stack import ROOT, deliver_events, drain_queue, moto_stack, run_processor

TS = "2024-07-01T10:00:00Z"
JSON, NDJSON, CSV = "application/json", "application/x-ndjson", "text/csv"
MB = 1024 * 1024


# ------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Err:
    """One expected reject: exact location and field, and a fragment of the reason."""

    location: str
    field: str
    reason: str


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes
    content_type: str | None = JSON  # REST Content-Type; None sends no header at all
    suffix: str = ".json"  # S3 key is incoming/<name><suffix>
    metadata: dict[str, str] = field(default_factory=dict)
    # REST
    status: int = 400
    errors: tuple[Err, ...] = ()  # the errors list of a 400
    message: str = ""  # a fragment of the message of a 413/415
    accepted: int = 0  # ticks queued by a 202
    # S3 (None: REST-only row)
    s3: S3 | None = None


@dataclass(frozen=True)
class S3:
    accepted: int = 0
    errors: tuple[Err, ...] = ()  # per-row rejects
    rejected: int | None = None  # defaults to the number of distinct locations in errors
    file_reject: str | None = None  # a fragment of the reason the whole file was rejected
    bars: tuple[tuple[str, str], ...] = ()  # (open, volume) of the case symbol's 1m bars
    chunks: int | None = None  # how many queue messages the file is split into, when it matters


def symbol_of(name: str) -> str:
    return name.upper()


def rec(name: str, price: Any = "100.5", volume: Any = 10, timestamp: Any = TS, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol_of(name), "price": price, "volume": volume, "timestamp": timestamp, **extra}


def good_json(name: str) -> str:
    return json.dumps(rec(name))


def lines(*rows: str, end: str = "\n") -> bytes:
    return "".join(row + end for row in rows).encode()


ONE_BAR = (("100.5", "10"),)


def bad_record(name: str, bad: str, where: str, reason: str) -> Case:
    """A JSON array [good record, bad record]: REST rejects it whole, a file keeps record 1.

    ``bad`` is raw JSON text for the second record's field(s) after the symbol, so that NaN, 1e999999999
    and 19-digit decimals are sent exactly as written.
    """
    payload = f'[{good_json(name)}, {{"symbol": "{symbol_of(name)}", {bad}}}]'.encode()
    error = Err("record 2", where, reason)
    return Case(name, payload, errors=(error,), s3=S3(accepted=1, errors=(error,), bars=ONE_BAR))


def bad_symbol(name: str, symbol_json: str, reason: str = "must be 1-32 letters, digits") -> Case:
    payload = f'[{good_json(name)}, {{"symbol": {symbol_json}, "price": 1, "volume": 1}}]'.encode()
    error = Err("record 2", "symbol", reason)
    return Case(name, payload, errors=(error,), s3=S3(accepted=1, errors=(error,), bars=ONE_BAR))


def gz_csv(*rows: str) -> bytes:
    return gzip.compress(lines("symbol,price,volume,timestamp", *rows))


def gzip_stream(block: bytes, repeat: int) -> bytes:
    """``block`` * ``repeat``, gzipped without ever holding the inflated whole."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [deflate.compress(block) for _ in range(repeat)]
    return b"".join(out) + deflate.flush()


def big_csv(name: str) -> tuple[bytes, int, tuple[int, ...]]:
    """Over 10 MB of CSV with bad rows at the first data line, mid-file (another S3 chunk) and the last line.

    Each row carries a 1 KB column the pipeline ignores (vendor exports do), so that 10 MB is ~10k ticks
    and the case stays fast while the file still spans several S3 chunks.
    """
    note = "n" * 1000
    row = f"{symbol_of(name)},100.5,1,{TS},{note}\n"
    count = 10 * MB // len(row) + 1
    bad_lines = (2, count // 2, count + 1)  # file line numbers (line 1 is the header)
    rows = [row] * count
    for line in bad_lines:
        rows[line - 2] = f"{symbol_of(name)},oops,1,{TS},{note}\n"
    return ("symbol,price,volume,timestamp,note\n" + "".join(rows)).encode(), count, bad_lines


BIG, BIG_ROWS, BIG_BAD = big_csv("big_10mb")
GARBAGE = bytes(range(255, -1, -1)) * 12  # every byte value, NUL and invalid UTF-8 included
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + GARBAGE  # no NUL in its first "line"
XLSX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + GARBAGE  # NULs in the first line
BOMB_SPACES = gzip_stream(b" " * MB, 160)  # 160 MiB of spaces and no newline, from about 160 KB
BOMB_NEWLINES = gzip_stream(b"\n" * MB, 160)
GOOD_GZ = gz_csv(*[f"TRUNCATED_GZIP,{100 + i},1,{TS}" for i in range(200)])

CASES: list[Case] = [
    # ---- one bad record among good ones (JSON array; a file keeps the good record) -------------------
    # NaN/Infinity are not JSON: the record's field is rejected (REST and files follow the same rules).
    bad_record("nan_price", f'"price": NaN, "volume": 1, "timestamp": "{TS}"', "price", "must be finite"),
    bad_record("infinity_volume", f'"price": 1, "volume": Infinity, "timestamp": "{TS}"', "volume",
               "must be finite"),
    bad_record("price_zero", '"price": 0, "volume": 1', "price", "must be > 0, got 0"),
    bad_record("price_negative", '"price": -1, "volume": 1', "price", "must be > 0, got -1"),
    bad_record("volume_negative", '"price": 1, "volume": -1', "volume", "must be >= 0, got -1"),
    bad_record("price_bool", '"price": true, "volume": 1', "price", "must be a number, got True"),
    bad_record("price_object", '"price": {"amount": 1}, "volume": 1', "price", "must be a number, got dict"),
    bad_record("price_list", '"price": [100.5], "volume": 1', "price", "must be a number, got list"),
    bad_record("price_word", '"price": "ten", "volume": 1', "price", "is not a number: 'ten'"),
    bad_record("price_19_decimals", '"price": 1.0000000000000000001, "volume": 1', "price",
               "more than 18 decimal places"),
    bad_record("price_19_int_digits", '"price": 1234567890123456789, "volume": 1', "price",
               "at most 18 digits before the point"),
    bad_record("missing_price", '"volume": 1', "price", "is required"),
    bad_record("missing_volume", '"price": 1', "volume", "is required"),
    bad_symbol("symbol_space", '"AA PL"'),
    bad_symbol("symbol_tab", '"AA\\tPL"'),
    bad_symbol("symbol_control_char", '"AAPL\\u0007"'),
    bad_symbol("symbol_33_chars", json.dumps("X" * 33)),
    bad_symbol("symbol_empty", '""', "is required"),
    bad_symbol("symbol_number", "42", "must be a string, got 42"),
    Case("missing_symbol", f'[{good_json("missing_symbol")}, {{"price": 1, "volume": 1}}]'.encode(),
         errors=(Err("record 2", "symbol", "is required"),),
         s3=S3(accepted=1, errors=(Err("record 2", "symbol", "is required"),), bars=ONE_BAR)),
    # Exports carry vendor columns: REST and files ignore them (REST lists them in ignored_fields).
    Case("unknown_field", f'[{good_json("unknown_field")}, {json.dumps(rec("unknown_field", venue="X"))}]'.encode(),
         status=202, accepted=2, s3=S3(accepted=2, bars=(("100.5", "20"),))),
    bad_record("ts_1900_iso", '"price": 1, "volume": 1, "timestamp": "1900-01-01T00:00:00Z"', "timestamp",
               "1900-01-01T00:00:00Z is outside the accepted range"),
    bad_record("ts_3000_iso", '"price": 1, "volume": 1, "timestamp": "3000-01-01T00:00:00Z"', "timestamp",
               "3000-01-01T00:00:00Z is outside the accepted range"),
    bad_record("ts_1900_epoch", '"price": 1, "volume": 1, "timestamp": -2208988800', "timestamp",
               "1900-01-01T00:00:00Z is outside the accepted range"),
    bad_record("ts_3000_epoch", '"price": 1, "volume": 1, "timestamp": 32503680000', "timestamp",
               "3000-01-01T00:00:00Z is outside the accepted range"),
    bad_record("ts_garbage", '"price": 1, "volume": 1, "timestamp": "yesterday"', "timestamp",
               "is not ISO 8601 or an epoch number: 'yesterday'"),
    bad_record("ts_bad_utc_offset", '"price": 1, "volume": 1, "timestamp": "2024-07-01T10:00:00+99:99"',
               "timestamp", "invalid UTC offset"),
    bad_record("ts_exponent_overflow", '"price": 1, "volume": 1, "timestamp": 1e999999999', "timestamp",
               "is out of range"),
    bad_record("ts_5000_digits", f'"price": 1, "volume": 1, "timestamp": "{"9" * 5000}"', "timestamp",
               "is out of range"),
    # ---- whole JSON documents ------------------------------------------------------------------------
    Case("invalid_json", b'[{"symbol": "INVALID_JSON", "price": 1,, "volume": 1}]',
         errors=(Err("line 1 column 40", "-", "invalid JSON: Expecting property name"),),
         s3=S3(errors=(Err("line 1 column 40", "-", "invalid JSON"),))),
    Case("json_scalar", b"42", errors=(Err("record 1", "-", "expected a JSON object, got int"),),
         s3=S3(errors=(Err("record 1", "-", "expected a JSON object, got int"),))),
    Case("json_array_of_scalars", b'[1, "AAPL", null]',
         errors=(Err("record 1", "-", "got int"), Err("record 2", "-", "got str"), Err("record 3", "-", "got")),
         s3=S3(errors=(Err("record 1", "-", "got int"), Err("record 2", "-", "got str"), Err("record 3", "-", "got")))),
    Case("json_empty_array", b"[]", errors=(Err("body", "-", "is an empty array"),),
         s3=S3(errors=(Err("body", "-", "is an empty array"),))),
    Case("json_deeply_nested", b"[" * 100_000, errors=(Err("body", "-", "nested too deeply"),),
         s3=S3(errors=(Err("body", "-", "nested too deeply"),))),
    Case("empty_body", b"", errors=(Err("body", "-", "is empty"),), s3=S3(file_reject="the file is empty")),
    Case("whitespace_body", b" \n\t\r\n", CSV, ".csv", errors=(Err("body", "-", "is empty"),),
         s3=S3(file_reject="the file is empty")),
    # valid with quirks: accepted
    Case("json_utf8_bom", "\ufeff".encode() + json.dumps([rec("json_utf8_bom"), rec("json_utf8_bom")]).encode(),
         status=202, accepted=2, s3=S3(accepted=2, bars=(("100.5", "20"),))),
    Case("json_charset_param", good_json("json_charset_param").encode(), "application/json; charset=utf-8",
         status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    # ---- NDJSON --------------------------------------------------------------------------------------
    Case("ndjson_truncated", lines(good_json("ndjson_truncated"), good_json("ndjson_truncated"),
                                   good_json("ndjson_truncated")[:25], end="\n")[:-1],
         NDJSON, ".ndjson", errors=(Err("line 3", "-", "invalid JSON"),),
         s3=S3(accepted=2, errors=(Err("line 3", "-", "invalid JSON"),), bars=(("100.5", "20"),))),
    Case("ndjson_mixed", lines(good_json("ndjson_mixed"), "[1, 2]", "",
                               json.dumps(rec("ndjson_mixed", price="-5")),
                               json.dumps(rec("ndjson_mixed", venue="X")), "not json"),
         NDJSON, ".ndjson",
         errors=(Err("line 2", "-", "expected a JSON object, got list"), Err("line 4", "price", "must be > 0"),
                 Err("line 6", "-", "invalid JSON")),
         s3=S3(accepted=2, errors=(Err("line 2", "-", "expected a JSON object, got list"),
                                   Err("line 4", "price", "must be > 0"), Err("line 6", "-", "invalid JSON")),
               bars=(("100.5", "20"),))),
    Case("ndjson_neg_infinity", lines(good_json("ndjson_neg_infinity"),
                                      '{"symbol": "NDJSON_NEG_INFINITY", "price": -Infinity, "volume": 1}'),
         NDJSON, ".ndjson", errors=(Err("line 2", "price", "must be finite"),),
         s3=S3(accepted=1, errors=(Err("line 2", "price", "must be finite"),), bars=ONE_BAR)),
    Case("ndjson_5000_digit_number",
         lines(good_json("ndjson_5000_digit_number"),
               f'{{"symbol": "NDJSON_5000_DIGIT_NUMBER", "price": {"9" * 5000}, "volume": 1}}'),
         NDJSON, ".ndjson", errors=(Err("line 2", "-", "invalid JSON"),),
         s3=S3(accepted=1, errors=(Err("line 2", "-", "invalid JSON"),), bars=ONE_BAR)),
    # Latin-1 É (0xC9) on line 2: REST names the byte offset of the whole body, a file the line
    Case("ndjson_invalid_utf8", lines(good_json("ndjson_invalid_utf8")) + b'{"symbol": "CAF\xc9"}\n'
         + lines(good_json("ndjson_invalid_utf8")), NDJSON, ".ndjson",
         errors=(Err(f"byte {len(good_json('ndjson_invalid_utf8')) + 16}", "-", "body is not valid UTF-8"),),
         s3=S3(accepted=2, errors=(Err("line 2", "-", "is not valid UTF-8 text"),), bars=(("100.5", "20"),))),
    Case("ndjson_crlf", lines(*[good_json("ndjson_crlf")] * 3, end="\r\n"), NDJSON, ".ndjson", status=202, accepted=3,
         s3=S3(accepted=3, bars=(("100.5", "30"),))),
    Case("ndjson_utf8_bom", "\ufeff".encode() + lines(*[good_json("ndjson_utf8_bom")] * 2), "application/jsonl",
         ".jsonl", status=202, accepted=2, s3=S3(accepted=2, bars=(("100.5", "20"),))),
    # ---- CSV -----------------------------------------------------------------------------------------
    Case("csv_no_header", lines(f"CSV_NO_HEADER,100.5,10,{TS}", f"CSV_NO_HEADER,101,1,{TS}"), CSV, ".csv",
         errors=(Err("line 1", "header", "header has no column for price"),),
         s3=S3(file_reject="line 1: header has no column for price")),
    Case("csv_no_price_column", lines("symbol,volume,timestamp", f"CSV_NO_PRICE_COLUMN,10,{TS}"), CSV, ".csv",
         errors=(Err("line 1", "header", "header has no column for price (one of: price, px, "),),
         s3=S3(file_reject="line 1: header has no column for price (one of: price, px, ")),
    Case("csv_header_only", lines("symbol,price,volume"), CSV, ".csv",
         errors=(Err("body", "-", "contains no records"),), s3=S3()),
    Case("csv_mixed", lines("symbol,price,volume,timestamp", f"CSV_MIXED,100.5,10,{TS}", f"CSV_MIXED,abc,10,{TS}",
                            "CSV_MIXED,100.5", f"CSV_MIXED,100.5,-1,{TS}", "", "CSV_MIXED,101,5,2024-07-01T10:00:30Z",
                            f"CSV MIXED,100,1,{TS}", "CSV_MIXED,100,1,1900-01-01T00:00:00Z"), CSV, ".csv",
         errors=(Err("line 3", "price", "is not a number: 'abc'"),
                 Err("line 4", "-", "has 2 columns, the header has 4"),
                 Err("line 5", "volume", "must be >= 0"), Err("line 8", "symbol", "must be 1-32 letters"),
                 Err("line 9", "timestamp", "outside the accepted range")),
         s3=S3(accepted=2, errors=(Err("line 3", "price", "is not a number: 'abc'"),
                                   Err("line 4", "-", "has 2 columns, the header has 4"),
                                   Err("line 5", "volume", "must be >= 0"),
                                   Err("line 8", "symbol", "must be 1-32 letters"),
                                   Err("line 9", "timestamp", "outside the accepted range")),
               bars=(("100.5", "15"),))),
    Case("csv_nan_infinity", lines("symbol,price,volume", "CSV_NAN_INFINITY,NaN,1", "CSV_NAN_INFINITY,inf,1",
                                   "CSV_NAN_INFINITY,100.5,-Infinity", "CSV_NAN_INFINITY,100.5,10"), CSV, ".csv",
         errors=(Err("line 2", "price", "must be finite"), Err("line 3", "price", "must be finite"),
                 Err("line 4", "volume", "must be finite")),
         s3=S3(accepted=1, errors=(Err("line 2", "price", "must be finite"), Err("line 3", "price", "must be finite"),
                                   Err("line 4", "volume", "must be finite")), bars=ONE_BAR)),
    Case("csv_nul_in_row", lines("symbol,price,volume,timestamp", f"CSV_NUL_IN_ROW,100.5,10,{TS}",
                                 f"CSV_NUL_IN_ROW,10\x000,1,{TS}", f"CSV_NUL_IN_ROW,100.5,10,{TS}"), CSV, ".csv",
         errors=(Err("line 3", "-", "contains a NUL byte"),),
         s3=S3(accepted=2, errors=(Err("line 3", "-", "contains a NUL byte"),), bars=(("100.5", "20"),))),
    Case("csv_too_few_columns", lines("symbol,price,volume", "CSV_TOO_FEW_COLUMNS,100.5,10", "CSV_TOO_FEW_COLUMNS,1"),
         CSV, ".csv", errors=(Err("line 3", "-", "has 2 columns, the header has 3"),),
         s3=S3(accepted=1, errors=(Err("line 3", "-", "has 2 columns, the header has 3"),), bars=ONE_BAR)),
    # each line is one record: an open quote must not swallow the lines after it
    Case("csv_unterminated_quote", lines("symbol,price,volume", 'CSV_UNTERMINATED_QUOTE,"100.5,10',
                                         *["CSV_UNTERMINATED_QUOTE,100.5,10"] * 2), CSV, ".csv",
         errors=(Err("line 2", "-", "quoted field that is not closed"),),
         s3=S3(accepted=2, errors=(Err("line 2", "-", "quoted field that is not closed"),), bars=(("100.5", "20"),))),
    Case("csv_quoted_newline", lines("symbol,price,volume", 'CSV_QUOTED_NEWLINE,"100', '.5",10',
                                     "CSV_QUOTED_NEWLINE,abc,1", "CSV_QUOTED_NEWLINE,100.5,10"), CSV, ".csv",
         errors=(Err("line 2", "-", "not closed"), Err("line 3", "-", "has 2 columns, the header has 3"),
                 Err("line 4", "price", "is not a number")),
         s3=S3(accepted=1, errors=(Err("line 2", "-", "not closed"),
                                   Err("line 3", "-", "has 2 columns, the header has 3"),
                                   Err("line 4", "price", "is not a number")), bars=ONE_BAR)),
    Case("csv_huge_quoted_field", lines("symbol,price,volume", f'CSV_HUGE_QUOTED_FIELD,"{"9" * 200_000}",1',
                                        "CSV_HUGE_QUOTED_FIELD,100.5,10"), CSV, ".csv",
         errors=(Err("line 2", "-", "field larger than field limit"),),
         s3=S3(accepted=1, errors=(Err("line 2", "-", "field larger than field limit"),), bars=ONE_BAR)),
    Case("csv_cr_inside_row", lines("symbol,price,volume", "CSV_CR_INSIDE_ROW,100.5\r,1", "CSV_CR_INSIDE_ROW,100.5,10"),
         CSV, ".csv", errors=(Err("line 2", "-", "carriage return"),),
         s3=S3(accepted=1, errors=(Err("line 2", "-", "carriage return"),), bars=ONE_BAR)),
    Case("csv_bare_cr_line_ends", lines("symbol,price,volume", "CSV_BARE_CR_LINE_ENDS,100.5,10", end="\r"), CSV, ".csv",
         errors=(Err("line 1", "header", "carriage return"),), s3=S3(file_reject="carriage return")),
    Case("csv_metadata_symbol_bad", lines("price,volume", "100.5,10"), CSV, ".csv", metadata={"symbol": "BAD SYMBOL"},
         errors=(Err("line 1", "header", "header has no column for symbol"),),
         s3=S3(file_reject="object metadata x-amz-meta-symbol must be 1-32 letters")),
    # valid with quirks: accepted
    Case("csv_crlf", lines("symbol,price,volume,timestamp", *[f"CSV_CRLF,100.5,10,{TS}"] * 2, end="\r\n"), CSV, ".csv",
         status=202, accepted=2, s3=S3(accepted=2, bars=(("100.5", "20"),))),
    Case("csv_utf8_bom", "\ufeff".encode() + lines("Symbol,Price,Volume,Timestamp", f"CSV_UTF8_BOM,100.5,10,{TS}"),
         CSV, ".csv", status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    # duplicated header names: the first column of a name wins, as for aliases
    Case("csv_duplicate_header", lines("symbol,price,volume,price", "CSV_DUPLICATE_HEADER,100.5,10,999"), CSV, ".csv",
         status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    # over the REST limit (413); as a file it is legal: about 3 S3 chunks, bad rows reported by file line
    Case("big_10mb", BIG, CSV, ".csv", status=413, message=f"body is {len(BIG)} bytes; the limit is",
         s3=S3(accepted=BIG_ROWS - 3, errors=tuple(Err(f"line {n}", "price", "is not a number") for n in BIG_BAD),
               bars=(("100.5", str(BIG_ROWS - 3)),), chunks=3)),
    # ---- binary, compression -------------------------------------------------------------------------
    Case("binary_garbage", BINARY, CSV, ".csv", errors=(Err("byte 0", "-", "body is not valid UTF-8"),),
         s3=S3(file_reject="the file is not text")),
    Case("xlsx_as_ndjson", XLSX, NDJSON, ".ndjson", errors=(Err("byte 14", "-", "body is not valid UTF-8"),),
         s3=S3(file_reject="the file is not text")),
    Case("utf16_csv", lines("symbol,price,volume", "UTF16_CSV,100.5,10").decode().encode("utf-16"), CSV, ".csv",
         errors=(Err("byte 0", "-", "body is not valid UTF-8"),), s3=S3(file_reject="UTF-16 text (save it as UTF-8)")),
    Case("parquet_as_csv", b"PAR1\x15\x04\x15\x10" + GARBAGE, CSV, ".csv",
         errors=(Err("byte 8", "-", "body is not valid UTF-8"),), s3=S3(file_reject="a Parquet file")),
    # binary junk as the first line of a text file is that line's reject, not the file's
    Case("ndjson_junk_first_line", b"\x00\x01\x02junk\n" + lines(*[good_json("ndjson_junk_first_line")] * 2), NDJSON,
         ".ndjson", errors=(Err("line 1", "-", "invalid JSON"),),
         s3=S3(accepted=2, errors=(Err("line 1", "-", "invalid JSON"),), bars=(("100.5", "20"),))),
    Case("corrupt_gzip", b"\x1f\x8b\x08\x00 this is not really gzip", "application/gzip", ".csv.gz", status=415,
         message="application/gzip", s3=S3(file_reject="the file is not valid gzip")),
    Case("truncated_gzip", GOOD_GZ[:-30], "application/gzip", ".csv.gz", status=415, message="application/gzip",
         s3=S3(file_reject="the gzip stream is truncated")),
    Case("gzip_mixed", gz_csv(f"GZIP_MIXED,100.5,10,{TS}", f"GZIP_MIXED,-3,10,{TS}",
                              f"GZIP_MIXED,100.5,10,{TS}"), CSV, ".csv.gz",
         errors=(Err("byte 1", "-", "body is not valid UTF-8"),),
         s3=S3(accepted=2, errors=(Err("line 3", "price", "must be > 0"),), bars=(("100.5", "20"),))),
    Case("tsv_file", lines("symbol\tprice\tvolume", "TSV_FILE\t100.5\t10"), "text/tab-separated-values", ".tsv",
         status=415, message="text/tab-separated-values", s3=S3(file_reject="unsupported file type")),
    # ---- characters Python reads as digits or spaces, which the pipeline does not --------------------
    # str.isdigit() is true for all of these; Decimal()/int() refuse some and misread others.
    bad_record("price_superscript", '"price": "\u00b2", "volume": 1', "price", "only the digits 0-9 are digits"),
    bad_record("volume_circled", '"price": 1, "volume": "\u2460"', "volume", "only the digits 0-9 are digits"),
    bad_record("price_arabic_indic", '"price": "\u0661\u0662\u0663", "volume": 1', "price",
               "only the digits 0-9 are digits"),
    bad_record("price_fullwidth", '"price": "\uff11\uff12", "volume": 1', "price", "only the digits 0-9 are digits"),
    bad_record("price_underscore", '"price": "1_000", "volume": 1', "price", "digit separators '_' are not allowed"),
    bad_record("price_nbsp", '"price": "\u00a0100", "volume": 1', "price", "contains the character"),
    bad_record("price_exponent_huge", '"price": "1e99999999999999999999", "volume": 1', "price", "is out of range"),
    bad_record("price_20_decimals", '"price": "1.00000000000000000001", "volume": 1', "price",
               "more than 18 decimal places (trailing zeros aside)"),
    bad_record("ts_superscript", '"price": 1, "volume": 1, "timestamp": "2024-03-08T1\u00b2:00:00Z"', "timestamp",
               "is not ISO 8601 or an epoch number"),
    bad_record("ts_arabic_epoch", '"price": 1, "volume": 1, "timestamp": "\u0661\u0667\u0661\u0669"', "timestamp",
               "is not ISO 8601 or an epoch number"),
    bad_record("ts_fullwidth_year", '"price": 1, "volume": 1, "timestamp": "\uff12\uff10\uff12\uff14-07-01"',
               "timestamp", "is not ISO 8601 or an epoch number"),
    bad_record("ts_em_space", '"price": 1, "volume": 1, "timestamp": "\u20031719878281"', "timestamp",
               "is not ISO 8601 or an epoch number"),
    bad_record("trade_id_superscript", '"price": 1, "volume": 1, "trade_id": "\u00b9\u00b2"', "trade_id",
               "must be 1-64 printable characters"),
    # a key twice: JSON parsers keep the last silently; here the record is refused, naming the key
    bad_record("duplicate_key", '"price": 1, "price": 2, "volume": 1', "price", "appears more than once"),
    # a number no Decimal can hold: the JSON cannot be read (REST: the body; a file: the document)
    Case("json_number_out_of_range",
         f'[{good_json("json_number_out_of_range")}, {{"symbol": "X", "price": 1e99999999999999999999, '
         '"volume": 1}]'.encode(), errors=(Err("body", "-", "a number is out of range"),),
         s3=S3(errors=(Err("body", "-", "a number is out of range"),))),
    Case("ndjson_number_out_of_range",
         lines(good_json("ndjson_number_out_of_range"),
               '{"symbol": "NDJSON_NUMBER_OUT_OF_RANGE", "price": 1e99999999999999999999, "volume": 1}'),
         NDJSON, ".ndjson", errors=(Err("line 2", "-", "a number is out of range"),),
         s3=S3(accepted=1, errors=(Err("line 2", "-", "a number is out of range"),), bars=ONE_BAR)),
    Case("csv_superscript_price", lines("symbol,price,volume,timestamp", *[f"CSV_SUPERSCRIPT_PRICE,100.5,1,{TS}"] * 5,
                                        f"CSV_SUPERSCRIPT_PRICE,\u00b2,1,{TS}", f"CSV_SUPERSCRIPT_PRICE,100.5,1,{TS}"),
         CSV, ".csv", errors=(Err("line 7", "price", "only the digits 0-9 are digits"),),
         s3=S3(accepted=6, errors=(Err("line 7", "price", "only the digits 0-9 are digits"),),
               bars=(("100.5", "6"),))),
    Case("ndjson_superscript_hour",
         lines(*[good_json("ndjson_superscript_hour")] * 3,
               json.dumps(rec("ndjson_superscript_hour", timestamp="2024-03-08T1\u00b2:00:00Z"))),
         NDJSON, ".ndjson", errors=(Err("line 4", "timestamp", "is not ISO 8601"),),
         s3=S3(accepted=3, errors=(Err("line 4", "timestamp", "is not ISO 8601"),), bars=(("100.5", "30"),))),
    # a file's JSON keys that differ only in case name one field twice: refused, as a repeated key
    Case("json_keys_differ_in_case", f'[{good_json("json_keys_differ_in_case")}, '
         '{"symbol": "JSON_KEYS_DIFFER_IN_CASE", "Price": 1, "price": 2, "volume": 1}]'.encode(),
         errors=(Err("record 2", "price", "is given more than once (as 'Price' and 'price')"),),
         s3=S3(accepted=1, errors=(Err("record 2", "price", "is given more than once (as 'Price' and 'price')"),),
               bars=ONE_BAR)),
    # ---- valid, though unusual: accepted -------------------------------------------------------------
    Case("price_trailing_zeros", json.dumps([rec("price_trailing_zeros", price="100.500000000000000000000")]).encode(),
         status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    Case("ts_lower_case_rfc3339", json.dumps([rec("ts_lower_case_rfc3339", timestamp="2024-07-01t10:00:00z"),
                                              rec("ts_lower_case_rfc3339", timestamp="2024-07-01t10:00:00.5z")
                                              ]).encode(),
         status=202, accepted=2, s3=S3(accepted=2, bars=(("100.5", "20"),))),
    Case("csv_leading_blank_lines", b"\n" * 5000 + b" \r\n\t\n" + lines("symbol,price,volume,timestamp",
                                                                       f"CSV_LEADING_BLANK_LINES,100.5,10,{TS}"),
         CSV, ".csv", status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    Case("csv_bom_then_blank_lines", "\ufeff".encode() + b"\n\n" + lines("symbol,price,volume,timestamp",
                                                                     f"CSV_BOM_THEN_BLANK_LINES,100.5,10,{TS}"),
         CSV, ".csv", status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    Case("ndjson_leading_blank_lines", b"\n" * 70_000 + lines(good_json("ndjson_leading_blank_lines")), NDJSON,
         ".ndjson", status=202, accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    Case("json_pretty_single_object", json.dumps(rec("json_pretty_single_object"), indent=2).encode(), status=202,
         accepted=1, s3=S3(accepted=1, bars=ONE_BAR)),
    Case("gzip_zero_padded", gz_csv("GZIP_ZERO_PADDED,100.5,10," + TS) + b"\0" * 512, "application/gzip", ".csv.gz",
         status=415, message="application/gzip", s3=S3(accepted=1, bars=ONE_BAR)),
    Case("price_too_precise_for_28_digits", json.dumps([rec("price_too_precise_for_28_digits"),
                                                        rec("price_too_precise_for_28_digits",
                                                            price="1.0000000000000000000000000000001")]).encode(),
         errors=(Err("record 2", "price", "more than 18 decimal places"),),
         s3=S3(accepted=1, errors=(Err("record 2", "price", "more than 18 decimal places"),), bars=ONE_BAR)),
    bad_record("price_tiny_exponent", '"price": 1e-1000000000, "volume": 1', "price", "more than 18 decimal places"),
    Case("ndjson_lone_cr_inside_a_line", lines(good_json("ndjson_lone_cr_inside_a_line") + "\r"
                                               + good_json("ndjson_lone_cr_inside_a_line"),
                                               good_json("ndjson_lone_cr_inside_a_line")), NDJSON, ".ndjson",
         errors=(Err("line 1", "-", "invalid JSON"),),
         s3=S3(accepted=1, errors=(Err("line 1", "-", "invalid JSON"),), bars=ONE_BAR)),
    # ---- bounded resources (files) -------------------------------------------------------------------
    # a line longer than MAX_LINE_BYTES (1 MiB) is that line's reject, whatever it holds; its neighbours count
    Case("ndjson_line_too_long", lines(good_json("ndjson_line_too_long"), " " * (2 * MB),
                                       good_json("ndjson_line_too_long")), NDJSON, ".ndjson", status=413,
         message="the limit is", s3=S3(accepted=2, errors=(Err("line 2", "-", "is longer than the limit of 1048576"),),
                                         bars=(("100.5", "20"),))),
    Case("csv_header_too_long", b"symbol," + b"x" * (2 * MB) + b"\nA,1\n", CSV, ".csv", status=413,
         message="the limit is", s3=S3(file_reject="line 1: the header is longer than the limit")),
    Case("gzip_bomb_spaces", BOMB_SPACES, "application/gzip", ".csv.gz", status=415, message="application/gzip",
         s3=S3(file_reject="times its compressed size")),
    Case("gzip_bomb_newlines", BOMB_NEWLINES, "application/gzip", ".ndjson.gz", status=415, message="application/gzip",
         s3=S3(file_reject="likely decompression bomb")),
    # ---- content type (REST only) ------------------------------------------------------------------
    Case("content_type_text_plain", good_json("x").encode(), "text/plain", status=415, message="text/plain"),
    Case("content_type_xml", b"<tick/>", "application/xml", status=415, message="application/xml"),
    Case("content_type_missing", good_json("x").encode(), None, status=415, message="'(none)'"),
    Case("content_type_wildcard", good_json("x").encode(), "*/*", status=415, message="'*/*'"),
]

S3_CASES = [c for c in CASES if c.s3 is not None]


def test_the_table_is_big_and_unambiguous() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) >= 40
    assert len(S3_CASES) >= 40
    assert all(len(symbol_of(n)) <= 32 for n in names)


# ------------------------------------------------------------------------------------------ the stack
@pytest.fixture(scope="module")
def mstack() -> Iterator[dict[str, Any]]:
    """tests/handlers/conftest.py's stack, built once for this module."""
    from chalice.test import Client

    with pytest.MonkeyPatch.context() as monkeypatch, moto_stack(monkeypatch) as resources:
        aws = {name: boto3.client(name) for name in ("s3", "sqs", "dynamodb")}
        with Client(resources["app"].app, stage_name="dev", project_dir=str(ROOT)) as client:
            yield {"client": client, "aws": aws, **resources}


@pytest.fixture
def stack(mstack: dict[str, Any]) -> dict[str, Any]:
    """The module's stack emptied: queues, table and bucket (moto's queries and listings walk them all)."""
    for url in (mstack["queue_url"], mstack["events_queue_url"]):
        drain_queue(url)
    s3, ddb = mstack["aws"]["s3"], mstack["aws"]["dynamodb"]
    versions = s3.list_object_versions(Bucket=mstack["bucket"])
    objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
               for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])]
    if objects:
        s3.delete_objects(Bucket=mstack["bucket"], Delete={"Objects": objects})
    table = mstack["table"]
    key_names = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    keys = [{n: item[n] for n in key_names}
            for page in ddb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
    for i in range(0, len(keys), 25):
        ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in keys[i : i + 25]]})
    return mstack


def get(stack: dict[str, Any], path: str) -> tuple[int, dict[str, Any]]:
    response = stack["client"].http.get(path)
    text = response.body.decode()
    assert response.status_code < 500 and "Traceback" not in text and 'File "' not in text, text[:500]
    return response.status_code, json.loads(text)


def bars_of(stack: dict[str, Any], symbol: str) -> list[tuple[str, str]]:
    status, body = get(stack, f"/bars?symbol={symbol}&interval=1m")
    assert status == 200
    return [(b["open"], b["volume"]) for b in body["bars"]]


def assert_errors(actual: list[dict[str, Any]], expected: tuple[Err, ...]) -> None:
    """Exactly the expected (location, field) pairs, each with a reason containing the expected fragment."""
    assert all(set(e) == {"location", "field", "reason"} for e in actual), actual
    wanted = sorted((x.location, x.field) for x in expected)
    assert sorted((e["location"], e["field"]) for e in actual) == wanted, actual
    for x in expected:
        assert any(a["location"] == x.location and a["field"] == x.field and x.reason in a["reason"]
                   for a in actual), (x, actual)


# ------------------------------------------------------------------------------------------ the tests
def decode_column_message(body: str) -> ColumnsMessage:
    message = decode_message(body)
    assert isinstance(message, ColumnsMessage)
    return message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rest(stack: dict[str, Any], case: Case) -> None:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    response = stack["client"].http.post("/ingest", headers=headers, body=case.payload)
    text = response.body.decode()
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    assert response.status_code == case.status, text[:500]
    body = json.loads(text)
    queued = drain_queue(stack["queue_url"])
    if case.status == 202:
        assert body["accepted"] == case.accepted
        ticks = [t for m in queued for t in decode_columns(decode_column_message(m["Body"])).ticks()]
        assert len(ticks) == case.accepted and {t.symbol for t in ticks} == {symbol_of(case.name)}
        status, ingestion = get(stack, f"/ingestions/{body['ingestion_id']}")
        assert status == 200 and ingestion["accepted"] == case.accepted
        return
    assert queued == [], "a rejected body must queue nothing"
    if case.status == 400:
        assert body["error"] == "InvalidTicks"
        assert body["error_count"] == len({e.location for e in case.errors})
        assert_errors(body["errors"], case.errors)
    else:
        # Chalice answers content types the route does not list itself; the app gives that answer its shape.
        code, message = body["error"], body["message"]
        assert body["request_id"]
        assert code == {413: "PayloadTooLarge", 415: "UnsupportedMediaType"}[case.status]
        assert case.message in message


@pytest.mark.parametrize("case", S3_CASES, ids=lambda c: c.name)
def test_s3(stack: dict[str, Any], case: Case) -> None:
    assert case.s3 is not None
    expected = case.s3
    bucket, key = stack["settings"].bucket_name, f"incoming/{case.name}{case.suffix}"
    put = stack["aws"]["s3"].put_object(Bucket=bucket, Key=key, Body=case.payload, Metadata=case.metadata)
    ingestion_id = "s3-" + hashlib.sha256(f"{bucket}/{key}#{put['VersionId']}".encode()).hexdigest()[:32]

    [(event, planned)] = deliver_events(stack)  # Object Created -> DataIngestion
    assert event["detail-type"] == "Object Created" and planned["ingestion_id"] == ingestion_id
    payloads = run_processor(stack)
    assert all(payload == {"batchItemFailures": []} for payload in payloads)
    processed = len(payloads)
    deliver_events(stack)  # TicksProcessed -> DataAggregator

    status, ingestion = get(stack, f"/ingestions/{ingestion_id}")
    assert status == 200
    if expected.file_reject is not None:
        assert processed == 0
        assert ingestion["status"] == "rejected" and ingestion["accepted"] == 0
        assert_errors(ingestion["errors"], (Err("file", "-", expected.file_reject),))
    else:
        rejected = expected.rejected if expected.rejected is not None else len({e.location for e in expected.errors})
        assert (ingestion["status"], ingestion["accepted"], ingestion["rejected"]) == \
            ("processed", expected.accepted, rejected), ingestion
        assert_errors(ingestion["errors"], expected.errors)
        if expected.chunks is not None:
            assert ingestion["chunks"] == {"total": expected.chunks, "processed": expected.chunks, "failed": 0}
    assert bars_of(stack, symbol_of(case.name)) == list(expected.bars)
