"""Timestamps: ISO 8601 variants and epoch numbers into UTC epoch nanoseconds, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.timefmt import TimestampError, format_ns, parse_timestamp

# 2024-07-01T23:58:01Z
BASE_S = 1_719_878_281
BASE_NS = BASE_S * 1_000_000_000


@pytest.mark.parametrize(
    ("raw", "expected_ns"),
    [
        # ISO 8601 with Z, lower-case z and the word UTC
        ("2024-07-01T23:58:01Z", BASE_NS),
        ("2024-07-01T23:58:01z", BASE_NS),
        ("2024-07-01T23:58:01 UTC", BASE_NS),
        # zone-less means UTC
        ("2024-07-01T23:58:01", BASE_NS),
        ("2024-07-01 23:58:01", BASE_NS),
        # offsets: the local time minus the offset
        ("2024-07-02T01:58:01+02:00", BASE_NS),
        ("2024-07-02T01:58:01+0200", BASE_NS),
        ("2024-07-02T01:58:01+02", BASE_NS),
        ("2024-07-01T18:28:01-05:30", BASE_NS),
        ("2024-07-01T23:58:01+00:00", BASE_NS),
        # fractions: 3, 6 and 9 digits, a comma as separator, short fractions padded
        ("2024-07-01T23:58:01.218Z", BASE_NS + 218_000_000),
        ("2024-07-01T23:58:01.218218Z", BASE_NS + 218_218_000),
        ("2024-07-01T23:58:01.218218853Z", BASE_NS + 218_218_853),
        ("2024-07-01T23:58:01.000000001Z", BASE_NS + 1),
        ("2024-07-01T23:58:01,5Z", BASE_NS + 500_000_000),
        ("2024-07-02 01:58:01.218218853+02:00", BASE_NS + 218_218_853),
        # freqtrade's pandas style: space, microseconds and +00:00
        ("2023-02-02 09:20:00.138000+00:00", 1_675_329_600_138_000_000),
        # mlfinlab's slash style, naive (UTC)
        ("2011/07/31 22:00:00.120", 1_312_149_600_120_000_000),
        # date only, and minutes without seconds
        ("2024-07-01", 1_719_792_000 * 1_000_000_000),
        ("2024-07-01T23:58", (BASE_S - 1) * 1_000_000_000),
        # surrounding whitespace is ignored
        ("  2024-07-01T23:58:01Z  ", BASE_NS),
    ],
)
def test_iso_8601_variants(raw: str, expected_ns: int) -> None:
    assert parse_timestamp(raw) == expected_ns


@pytest.mark.parametrize(
    ("raw", "expected_ns"),
    [
        # told apart by magnitude
        (BASE_S, BASE_NS),
        (str(BASE_S), BASE_NS),
        (BASE_S * 1000 + 218, BASE_NS + 218_000_000),
        (str(BASE_S * 1_000_000 + 218_218), BASE_NS + 218_218_000),
        (BASE_S * 1_000_000_000 + 218_218_853, BASE_NS + 218_218_853),
        (str(BASE_S * 1_000_000_000 + 218_218_853), BASE_NS + 218_218_853),
        # fractional seconds and milliseconds, as text, Decimal and float
        ("1719878281.5", BASE_NS + 500_000_000),
        (Decimal("1719878281.218218853"), BASE_NS + 218_218_853),
        (1719878281.25, BASE_NS + 250_000_000),
        ("1719878281218.5", BASE_NS + 218_500_000),
        # the real files' values
        ("1570752011620", 1_570_752_011_620_000_000),  # freqtrade timestamp_ms
        ("1582329602111000", 1_582_329_602_111_000_000),  # tardis microseconds
        ("1719878281218218853", 1_719_878_281_218_218_853),  # databento nanoseconds
    ],
)
def test_epoch_units_by_magnitude(raw: object, expected_ns: int) -> None:
    assert parse_timestamp(raw) == expected_ns


@pytest.mark.parametrize(
    ("raw", "unit", "expected_ns"),
    [
        ("1719878281218", "ms", BASE_NS + 218_000_000),
        # a forced unit wins over the magnitude (a small ms value is still ms)
        ("86400000", "ms", 86_400 * 1_000_000_000),
        ("1719878281", "ns", 1_719_878_281),
        ("1719878281218218", "us", BASE_NS + 218_218_000),
    ],
)
def test_epoch_unit_forced_by_column(raw: str, unit: str, expected_ns: int) -> None:
    assert parse_timestamp(raw, unit=unit) == expected_ns


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        "",
        "   ",
        "12:00:00",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-07-01T25:00:00Z",
        "2024-07-01T23:58:01.1234567890Z",  # 10 fraction digits
        "2024-07-01T23:58:01+2",
        "2024-07-01T23:58:01 Europe/Paris",
        "nan",
        "inf",
        "1e12",
        "0x5F",
        True,
        False,
        None,
        [1719878281],
        Decimal("NaN"),
        Decimal("Infinity"),
        float("nan"),
        float("inf"),
        "1719878281.0000000001",  # finer than a nanosecond
    ],
)
def test_rejects(raw: object) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(raw)


def test_nine_digit_fraction_is_exact_for_every_digit() -> None:
    # A float round trip would lose the last digits of these.
    for frac in ("000000001", "123456789", "999999999", "218218853", "100000000"):
        assert parse_timestamp(f"2024-07-01T23:58:01.{frac}Z") == BASE_NS + int(frac)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (BASE_NS, "2024-07-01T23:58:01Z"),
        (BASE_NS + 218_000_000, "2024-07-01T23:58:01.218Z"),
        (BASE_NS + 218_218_000, "2024-07-01T23:58:01.218218Z"),
        (BASE_NS + 218_218_853, "2024-07-01T23:58:01.218218853Z"),
        (BASE_NS + 1, "2024-07-01T23:58:01.000000001Z"),
    ],
)
def test_format_ns(ns: int, text: str) -> None:
    assert format_ns(ns) == text


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=315_532_800 * 10**9, max_value=4_102_444_800 * 10**9))
def test_format_then_parse_round_trips(ns: int) -> None:
    assert parse_timestamp(format_ns(ns)) == ns


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=315_532_800, max_value=4_102_444_800), st.integers(0, 999_999_999))
def test_epoch_units_agree(seconds: int, frac_ns: int) -> None:
    ns = seconds * 10**9 + frac_ns
    assert parse_timestamp(str(ns)) == ns
    assert parse_timestamp(str(ns // 1000)) == ns - ns % 1000
    assert parse_timestamp(str(ns // 1_000_000)) == ns - ns % 1_000_000
    assert parse_timestamp(str(seconds)) == seconds * 10**9
    assert parse_timestamp(f"{seconds}.{frac_ns:09d}") == ns
