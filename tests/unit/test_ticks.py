"""Validation of one raw record into a Tick: symbol, price, volume, timestamp and token rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.ticks import Tick, tick_from_record

RECEIVED_NS = 1_719_878_400 * 1_000_000_000  # 2024-07-02T00:00:00Z
TS = "2024-07-01T23:58:01.218218853Z"
TS_NS = 1_719_878_281_218_218_853


def check(record: dict[str, Any], **kwargs: Any) -> tuple[Tick | None, list[tuple[str, str]]]:
    tick, errors = tick_from_record(record, location="record 3", seq=7, received_ns=RECEIVED_NS, **kwargs)
    assert all(e.location == "record 3" for e in errors)
    return tick, [(e.field, e.reason) for e in errors]


def good(**fields: Any) -> dict[str, Any]:
    return {"symbol": "AAPL", "price": "187.5", "volume": "10", "timestamp": TS, **fields}


def test_a_valid_record_becomes_a_tick_with_every_field() -> None:
    tick, errors = check(good(trade_id="42", side="BUY", exchange="XNAS"))
    assert errors == []
    assert tick == Tick("AAPL", Decimal("187.5"), Decimal("10"), TS_NS, 7, "42", "buy", "XNAS")


@pytest.mark.parametrize(
    "symbol", ["AAPL", "BTC/USDT", "ESU4", "BRK.B", "XBT-USD", "es_fut", "NYSE:IBM", "A", "X" * 32]
)
def test_symbols_accepted(symbol: str) -> None:
    tick, errors = check(good(symbol=symbol))
    assert errors == []
    assert tick is not None and tick.symbol == symbol


def test_symbol_surrounding_spaces_are_trimmed() -> None:
    tick, _ = check(good(symbol="  AAPL "))
    assert tick is not None and tick.symbol == "AAPL"


@pytest.mark.parametrize(
    "symbol",
    ["", "   ", "BTC USDT", "AA\tPL", "AA\x00PL", "AAPL\x1b[0m", "X" * 33, "AAPL$", "ÄPFEL", "a,b",
     42, None, True, ["AAPL"]],
)
def test_symbols_rejected(symbol: object) -> None:
    tick, errors = check(good(symbol=symbol))
    assert tick is None
    assert [f for f, _ in errors] == ["symbol"]


def test_missing_symbol_takes_the_default_and_given_symbol_wins() -> None:
    tick, _ = check({"price": "1", "volume": "1"}, default_symbol="ESU4")
    assert tick is not None and tick.symbol == "ESU4"
    tick, _ = check({"symbol": "", "price": "1", "volume": "1"}, default_symbol="ESU4")
    assert tick is not None and tick.symbol == "ESU4"
    tick, _ = check(good(symbol="NQU4"), default_symbol="ESU4")
    assert tick is not None and tick.symbol == "NQU4"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.1", Decimal("0.1")),
        ("0.10", Decimal("0.10")),
        (Decimal("0.1"), Decimal("0.1")),
        ("5528.75", Decimal("5528.75")),
        (" 23438.0", Decimal("23438.0")),
        ("0.00141342", Decimal("0.00141342")),
        ("1e-8", Decimal("1E-8")),
        (7, Decimal(7)),
        (0.1, Decimal("0.1")),  # a float goes through repr, never its binary expansion
        ("0." + "0" * 17 + "1", Decimal("1E-18")),
        ("9" * 18, Decimal("9" * 18)),
    ],
)
def test_price_kept_as_exact_decimal(raw: object, expected: Decimal) -> None:
    tick, errors = check(good(price=raw))
    assert errors == []
    assert tick is not None
    assert tick.price == expected
    assert str(tick.price) == str(expected)


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("0", "> 0"),
        ("-0", "> 0"),
        ("-1.5", "> 0"),
        (0, "> 0"),
        ("NaN", "finite"),
        ("nan", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        (Decimal("NaN"), "finite"),
        (float("inf"), "finite"),
        (True, "must be a number"),
        (False, "must be a number"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("abc", "not a number"),
        ("1,5", "not a number"),
        ("$5", "not a number"),
        ([1], "must be a number"),
        ({"v": 1}, "must be a number"),
        ("1" * 19, "out of range"),
        ("0." + "0" * 18 + "1", "decimal places"),
    ],
)
def test_price_rejected(raw: object, reason_part: str) -> None:
    tick, errors = check(good(price=raw))
    assert tick is None
    assert len(errors) == 1
    field, reason = errors[0]
    assert field == "price"
    assert reason_part in reason


def test_price_required() -> None:
    tick, errors = check({"symbol": "AAPL", "volume": "1"})
    assert tick is None
    assert errors == [("price", "is required")]


@pytest.mark.parametrize(("raw", "expected"), [("0", Decimal(0)), ("0.013", Decimal("0.013")), (2152, Decimal(2152))])
def test_volume_zero_or_more_accepted(raw: object, expected: Decimal) -> None:
    tick, errors = check(good(volume=raw))
    assert errors == []
    assert tick is not None and tick.volume == expected


@pytest.mark.parametrize("raw", ["-1", "-0.001", "NaN", "Infinity", True, None, "", "ten"])
def test_volume_rejected(raw: object) -> None:
    tick, errors = check(good(volume=raw))
    assert tick is None
    assert [f for f, _ in errors] == ["volume"]


def test_missing_timestamp_means_time_of_receipt() -> None:
    for record in ({"symbol": "A", "price": "1", "volume": "1"}, good(timestamp=""), good(timestamp=None)):
        tick, errors = check(record)
        assert errors == []
        assert tick is not None and tick.ts_ns == RECEIVED_NS


@pytest.mark.parametrize(
    "raw",
    [
        "1900-01-01T00:00:00Z",  # before 1980
        "1979-12-31T23:59:59.999999999Z",
        "3000-01-01T00:00:00Z",  # far future
        "2024-07-03T00:00:00.000000001Z",  # just over one day after receipt
        "yesterday",
        "2024-02-30T00:00:00Z",
        True,
    ],
)
def test_timestamp_rejected(raw: object) -> None:
    tick, errors = check(good(timestamp=raw))
    assert tick is None
    assert [f for f, _ in errors] == ["timestamp"]


def test_timestamp_bounds_are_inclusive() -> None:
    tick, _ = check(good(timestamp="1980-01-01T00:00:00Z"))
    assert tick is not None
    tick, _ = check(good(timestamp="2024-07-03T00:00:00Z"))  # exactly one day after receipt
    assert tick is not None


def test_timestamp_unit_from_the_column_name() -> None:
    tick, _ = check(good(timestamp="1719878281218"), timestamp_unit="ms")
    assert tick is not None and tick.ts_ns == 1_719_878_281_218_000_000


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("trade_id", "13519807", "13519807"),
        ("trade_id", 13519807, "13519807"),
        ("trade_id", " 1588563957", "1588563957"),
        ("trade_id", "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf", "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf"),
        ("trade_id", "", None),
        ("trade_id", None, None),
        ("side", " Sell ", "sell"),
        ("side", "B", "b"),
        ("side", "    ", None),
        ("exchange", "binance-futures", "binance-futures"),
    ],
)
def test_optional_tokens(field: str, raw: object, expected: str | None) -> None:
    tick, errors = check(good(**{field: raw}))
    assert errors == []
    assert tick is not None and getattr(tick, field) == expected


@pytest.mark.parametrize(
    ("field", "raw"),
    [("trade_id", "a\nb"), ("trade_id", "x" * 65), ("trade_id", True), ("side", 1.5), ("exchange", "\x07bell"),
     ("side", ["buy"])],
)
def test_optional_tokens_rejected(field: str, raw: object) -> None:
    tick, errors = check(good(**{field: raw}))
    assert tick is None
    assert [f for f, _ in errors] == [field]


def test_every_problem_of_a_record_is_reported() -> None:
    tick, errors = check({"symbol": "BAD SYMBOL", "price": "NaN", "volume": "-1", "timestamp": "soon"})
    assert tick is None
    assert [f for f, _ in errors] == ["symbol", "price", "volume", "timestamp"]


def test_fields_that_are_not_tick_fields_are_ignored() -> None:
    tick, errors = check(good(qty="5", note="hello"))
    assert errors == [] and tick is not None
