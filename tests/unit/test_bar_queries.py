"""GET /bars's query language on its own: intervals and their windows, time zones, the decimal format, the query
string (unknown and repeated parameters), the cursor and next_url; and the pages of the use case on the
in-memory store (derived bars, directions, several symbols)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from chalice.app import MultiDict

from chalicelib.domain.bar_requests import BarsQuery, Position
from chalicelib.domain.bars import MINUTE_NS, Bar, bars_from_ticks, merge_all
from chalicelib.domain.decimals import decimal_text
from chalicelib.domain.errors import InvalidQuery
from chalicelib.domain.intervals import (
    DAY_NS,
    FixedWindows,
    LocalDays,
    ceil_start,
    level_for_boundaries,
    level_for_fixed,
    parse_bar_interval,
    parse_zone,
    windows_of,
)
from chalicelib.domain.ticks import Tick
from chalicelib.domain.timefmt import END_OF_TIME_NS, parse_timestamp
from chalicelib.entrypoints.bar_params import bars_query, decode_cursor, encode_cursor, next_url, single_values
from chalicelib.usecases.bar_pages import BarPages
from tests.fakes import MemoryStateStore, seed_bars

HOUR_NS = 60 * MINUTE_NS


def ns(text: str) -> int:
    return parse_timestamp(text)


# ------------------------------------------------------------------------------------------ intervals
@pytest.mark.parametrize(("raw", "unit", "count", "width"), [
    (None, "m", 1, MINUTE_NS), ("1m", "m", 1, MINUTE_NS), ("2m", "m", 2, 2 * MINUTE_NS),
    ("45m", "m", 45, 45 * MINUTE_NS), ("90m", "m", 90, 90 * MINUTE_NS), ("1440m", "m", 1440, DAY_NS),
    ("1h", "h", 1, HOUR_NS), ("4h", "h", 4, 4 * HOUR_NS),
    ("24h", "h", 24, DAY_NS), ("1d", "d", 1, DAY_NS), ("3d", "d", 3, 3 * DAY_NS), ("365d", "d", 365, 365 * DAY_NS),
    ("1w", "w", 1, 7 * DAY_NS),
])
def test_intervals_that_divide_a_day_and_calendar_intervals_are_accepted(raw: str | None, unit: str, count: int,
                                                                         width: int) -> None:
    interval = parse_bar_interval(raw)
    assert (interval.unit, interval.count, interval.width_ns) == (unit, count, width)


@pytest.mark.parametrize("raw", ["7m", "11m", "1441m", "5h", "7h", "25h", "2w", "0m", "0d", "01m", "m", "1", "1M",
                                 "1 m", " 1m", "1y", "1.5h", "-1d", "\u0661m", "９m", "999999999m", ""])
def test_other_intervals_are_a_400_naming_interval(raw: str) -> None:
    with pytest.raises(InvalidQuery, match="interval"):
        parse_bar_interval(raw)


@pytest.mark.parametrize(("raw", "stored"), [("1m", "1m"), ("60m", "1h"), ("1440m", "1d"), ("24h", "1d"),
                                             ("15m", "15m"), ("30m", None), ("1w", None), ("2d", None)])
def test_an_interval_that_is_a_stored_level_is_read_as_it_is(raw: str, stored: str | None) -> None:
    assert parse_bar_interval(raw).stored == stored


@pytest.mark.parametrize(("raw", "level"), [("2m", "1m"), ("10m", "5m"), ("20m", "5m"), ("30m", "15m"),
                                            ("45m", "15m"), ("90m", "15m"), ("2h", "1h"), ("4h", "1h"), ("12h", "1h"),
                                            ("3d", "1d"), ("1w", "1d")])
def test_a_derived_interval_is_built_from_the_coarsest_level_that_tiles_it(raw: str, level: str) -> None:
    windows = windows_of(parse_bar_interval(raw), None)
    assert isinstance(windows, FixedWindows) and level_for_fixed(windows) == level


def test_fixed_windows_align_on_utc_midnight_multi_day_on_the_epoch_and_weeks_on_monday() -> None:
    four_hours = windows_of(parse_bar_interval("4h"), None)
    assert four_hours.start_of(ns("2024-07-01T03:59:59Z")) == ns("2024-07-01T00:00:00Z")
    assert four_hours.start_of(ns("2024-07-01T04:00:00Z")) == ns("2024-07-01T04:00:00Z")
    ninety = windows_of(parse_bar_interval("90m"), None)
    assert ninety.start_of(ns("2024-07-01T00:00:00Z")) == ns("2024-07-01T00:00:00Z")  # midnight = epoch alignment
    assert ninety.start_of(ns("2024-07-01T23:59:00Z")) == ns("2024-07-01T22:30:00Z")
    three_days = windows_of(parse_bar_interval("3d"), None)
    day = ns("2024-07-01T12:00:00Z") // DAY_NS
    assert three_days.start_of(ns("2024-07-01T12:00:00Z")) == (day - day % 3) * DAY_NS
    assert three_days.start_of(ns("1970-01-03T23:00:00Z")) == 0 and three_days.start_of(ns("1970-01-04T00:00:00Z")) == \
        3 * DAY_NS
    week = windows_of(parse_bar_interval("1w"), None)
    for text in ("2024-07-01T00:00:00Z", "2024-07-03T10:00:00Z", "2024-07-07T23:59:59Z"):
        assert week.start_of(ns(text)) == ns("2024-07-01T00:00:00Z")  # Monday 1 July 2024
    assert week.start_of(ns("2024-07-08T00:00:00Z")) == ns("2024-07-08T00:00:00Z")
    assert ceil_start(week, ns("2024-07-02T00:00:00Z")) == ns("2024-07-08T00:00:00Z")
    assert ceil_start(week, ns("2024-07-08T00:00:00Z")) == ns("2024-07-08T00:00:00Z")


@pytest.mark.parametrize(("zone", "first", "lengths"), [
    # the day before, of and after the change, each from local midnight
    ("America/New_York", "2024-03-09", [24, 23, 24]),
    ("America/New_York", "2024-11-02", [24, 25, 24]),
    ("Australia/Lord_Howe", "2024-04-06", [24, 24.5, 24]),  # DST ends: clocks back 30 minutes
    ("Australia/Lord_Howe", "2024-10-05", [24, 23.5, 24]),
    ("Asia/Kolkata", "2024-03-09", [24, 24, 24]),
    ("America/Sao_Paulo", "2018-11-03", [24, 23, 24]),  # DST began at midnight: the day starts at 01:00
])
def test_local_days_run_from_local_midnight_to_the_next_across_dst_changes(zone: str, first: str,
                                                                           lengths: list[float]) -> None:
    windows = LocalDays(ZoneInfo(zone))
    tz = ZoneInfo(zone)
    start = ns(f"{first}T12:00:00Z")
    starts = []
    s = windows.start_of(start)
    for _ in range(4):
        starts.append(s)
        s = windows.end_of(s)
    assert [(b - a) / HOUR_NS for a, b in pairwise(starts)] == lengths
    for s in starts:
        local = datetime.fromtimestamp(s // 10**9, tz)
        assert local.minute == 0 and local.second == 0 and local.hour in (0, 1)  # 1: a gap swallowed midnight
        assert datetime.fromtimestamp(s // 10**9 - 1, tz).date() == local.date() - timedelta(days=1)


def test_local_days_of_kathmandu_start_at_18_15_utc_and_levels_follow_the_midnights() -> None:
    windows = LocalDays(ZoneInfo("Asia/Kathmandu"))
    assert windows.start_of(ns("2024-07-01T18:14:59Z")) == ns("2024-06-30T18:15:00Z")
    assert windows.start_of(ns("2024-07-01T18:15:00Z")) == ns("2024-07-01T18:15:00Z")
    assert windows.local_date(ns("2024-07-01T18:15:00Z")) == "2024-07-02"
    assert level_for_boundaries([ns("2024-07-01T18:15:00Z")]) == "15m"
    assert level_for_boundaries([ns("2024-07-01T04:00:00Z"), ns("2024-07-02T05:00:00Z")]) == "1h"
    assert level_for_boundaries([ns("2024-07-01T00:00:00Z")]) == "1d"
    assert level_for_boundaries([ns("2024-07-01T04:20:00Z")]) == "5m"
    assert level_for_boundaries([ns("2024-07-01T04:07:00Z")]) == "1m"
    assert level_for_boundaries([ns("1970-01-01T00:19:32Z")]) is None  # an LMT offset in seconds


def test_local_weeks_and_multi_day_windows_count_local_dates_from_the_epoch() -> None:
    ny = ZoneInfo("America/New_York")
    weeks = LocalDays(ny, weeks=True)
    assert weeks.start_of(ns("2024-03-13T12:00:00Z")) == ns("2024-03-11T04:00:00Z")  # Monday, after the change
    assert weeks.end_of(ns("2024-03-04T05:00:00Z")) == ns("2024-03-11T04:00:00Z")  # a week of 167 hours
    three = LocalDays(ny, days=3)
    local = datetime.fromtimestamp(ns("2024-07-01T12:00:00Z") // 10**9, ny).date()
    number = (local - date(1970, 1, 1)).days
    assert three.local_date(three.start_of(ns("2024-07-01T12:00:00Z"))) == \
        (date(1970, 1, 1) + timedelta(days=number - number % 3)).isoformat()


def test_tz_is_for_day_and_week_intervals_and_must_be_a_known_zone() -> None:
    day = parse_bar_interval("1d")
    assert parse_zone("Asia/Kolkata", day).utcoffset(datetime(2024, 1, 1)) == timedelta(hours=5, minutes=30)
    for raw in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "America//New_York", "", "x" * 80, "UTC\n"):
        with pytest.raises(InvalidQuery, match="tz"):
            parse_zone(raw, day)
    with pytest.raises(InvalidQuery, match="tz applies to day and week intervals"):
        parse_zone("UTC", parse_bar_interval("1h"))


# ------------------------------------------------------------------------------------------ decimals
@pytest.mark.parametrize(("value", "text"), [
    ("414.0", "414"), ("413", "413"), ("4.14E+2", "414"), ("0", "0"), ("0E-8", "0"), ("-0", "0"), ("1E+3", "1000"),
    ("5528.50", "5528.5"), ("0.00139676", "0.00139676"), ("1.000000000000000000000", "1"),
    ("1E-30", "0." + "0" * 29 + "1"),
    ("123456789012345678.123456789012345678000", "123456789012345678.123456789012345678"), ("100.00", "100"),
    ("0.10", "0.1"), ("5528.736111111111111111111111", "5528.736111111111111111111111"),
])
def test_decimals_are_plain_without_trailing_zeros_and_exact(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text
    assert Decimal(text) == Decimal(value)  # value-preserving: nothing rounded
    assert "E" not in text and "e" not in text


# ------------------------------------------------------------------------------------------ query string
def test_unknown_parameters_are_all_named_and_repeated_ones_too() -> None:
    with pytest.raises(InvalidQuery) as unknown:
        single_values({"symbol": "A", "foo": "1", "Limit": "2", "page_token": "x"})
    assert all(name in unknown.value.message for name in ("'foo'", "'Limit'", "'page_token'"))
    with pytest.raises(InvalidQuery) as repeated:
        single_values(MultiDict({"symbol": ["A"], "limit": ["1", "2"], "sort": ["asc", "asc"]}))
    assert "'limit'" in repeated.value.message and "'sort'" in repeated.value.message
    assert "'symbol'" not in repeated.value.message
    assert single_values(MultiDict({"symbol": ["A"], "limit": ["5"]})) == {"symbol": "A", "limit": "5"}


@pytest.mark.parametrize(("params", "named"), [
    ({"symbol": "A", "symbols": "A,B"}, "not both"), ({}, "symbol is required"), ({"symbols": ""}, "symbols"),
    ({"symbols": "A,,B"}, "empty name at position 2"), ({"symbols": "A,B,A"}, "twice"),
    ({"symbols": ",".join(f"S{i}" for i in range(101))}, "1 to 100"), ({"symbols": "A,B C"}, "symbols (position 2)"),
    ({"symbol": "A", "sort": "DESC"}, "sort"), ({"symbol": "A", "sort": ""}, "sort"),
    ({"symbol": "A", "tz": "UTC"}, "tz applies"), ({"symbol": "A", "interval": "1d", "tz": "Nowhere/Land"}, "tz"),
    ({"symbol": "A", "limit": "10001"}, "between 1 and 10000"), ({"symbol": "A", "limit": "0"}, "limit"),
])
def test_bad_queries_name_the_parameter(params: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidQuery, match=named.replace("(", r"\(").replace(")", r"\)")):
        bars_query(params)


def test_defaults_and_a_full_query() -> None:
    plain = bars_query({"symbol": "AAPL"})
    assert (plain.symbols, plain.interval.text, plain.limit, plain.descending, plain.zone) == (("AAPL",), "1m", 1000,
                                                                                              False, None)
    assert (plain.start_ns, plain.end_ns) == (0, END_OF_TIME_NS)
    full = bars_query({"symbols": "AAPL,BTC/USDT", "interval": "1w", "tz": "Asia/Kathmandu", "sort": "desc",
                       "limit": "10000", "start": "2024-01-01", "end": "2024-07-01"})
    assert full.symbols == ("AAPL", "BTC/USDT") and full.descending and full.limit == 10000
    assert full.zone_name == "Asia/Kathmandu"


# ------------------------------------------------------------------------------------------ cursor
def test_cursors_round_trip_and_belong_to_their_query() -> None:
    query = bars_query({"symbols": "A,B,C", "interval": "30m", "sort": "desc"})
    for position in (Position(0, 0), Position(2, ns("2024-07-01T10:30:00Z")), Position(1, END_OF_TIME_NS - 1)):
        cursor = encode_cursor(query, position)
        assert len(cursor) == 24 and cursor.replace("-", "").replace("_", "").isalnum()  # url-safe, no padding
        assert decode_cursor(cursor)[0] == position
        again = bars_query({"symbols": "A,B,C", "interval": "30m", "sort": "desc", "next": cursor, "limit": "7"})
        assert again.position == position  # the limit may change from page to page
        for other in ({"symbols": "A,B,D"}, {"symbols": "A,C,B"}, {"interval": "15m"}, {"sort": "asc"},
                      {"end": "2262-01-01"}, {"symbol": "A", "symbols": None}):
            changed = {"symbols": "A,B,C", "interval": "30m", "sort": "desc", "next": cursor, **other}
            with pytest.raises(InvalidQuery, match="next"):
                bars_query({k: v for k, v in changed.items() if v is not None})
    cursor = encode_cursor(query, Position(1, ns("2024-07-01T10:30:00Z")))
    for bad in (cursor[:-1], cursor + "A", cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), "%%%", "",
                "A" * 24, "MTIz"):
        if bad == "":
            continue  # an empty next is no next
        with pytest.raises(InvalidQuery, match="next"):
            bars_query({"symbols": "A,B,C", "interval": "30m", "sort": "desc", "next": bad})


def test_next_url_repeats_the_parameters_with_the_cursor() -> None:
    url = next_url("https://api.example.com/v1", {"symbols": "BTC/USDT,AAPL", "start": "2024-07-01T00:00:00+05:30",
                                                  "next": "old", "limit": "2"}, "abc-_")
    assert url == ("https://api.example.com/v1/bars?symbols=BTC/USDT,AAPL&start=2024-07-01T00:00:00%2B05:30&limit=2"
                   "&next=abc-_")
    assert next_url("", {"symbol": "A B"}, "x") == "/bars?symbol=A%20B&next=x"


# ------------------------------------------------------------------------------------------ pages on the fake store
def ticks(symbol: str, stamps: list[str]) -> list[Tick]:
    return [Tick(symbol, Decimal(100 + i) / 4, Decimal(i % 3 + 1), ns(t), trade_id=str(i), seq=i)
            for i, t in enumerate(stamps)]


def stored(symbol: str, rows: list[Tick]) -> list[tuple[Bar, int]]:
    return [(bar, 1) for level in ("1m", "5m", "15m", "1h", "1d") for bar in bars_from_ticks(rows, level)
            if bar.symbol == symbol]


def test_derived_bars_merge_their_parts_and_sum_their_revisions() -> None:
    store = MemoryStateStore()
    rows = ticks("A", ["2024-07-01T00:01:00Z", "2024-07-01T00:14:00Z", "2024-07-01T00:16:00Z", "2024-07-01T00:31:00Z",
                       "2024-07-01T01:59:59Z"])
    seed_bars(store, stored("A", rows))
    page = BarPages(store)(BarsQuery(("A",), parse_bar_interval("30m"), 0, END_OF_TIME_NS))
    got = [(bar.start_ns, bar.open, bar.close, bar.trades, rev) for bar, rev in page.bars["A"]]
    assert got == [(ns("2024-07-01T00:00:00Z"), Decimal(25), Decimal("25.5"), 3, 2),  # two 15m parts
                   (ns("2024-07-01T00:30:00Z"), Decimal("25.75"), Decimal("25.75"), 1, 1),
                   (ns("2024-07-01T01:30:00Z"), Decimal(26), Decimal(26), 1, 1)]
    expected = merge_all(bars_from_ticks(rows[:3], "1m"), "30m", ns("2024-07-01T00:00:00Z"))
    assert expected is not None and page.bars["A"][0][0].same_values(expected)
    assert page.position is None


def test_pages_of_several_symbols_never_skip_or_repeat_in_either_direction() -> None:
    store = MemoryStateStore()
    a = ticks("A", [f"2024-07-01T0{h}:{m:02d}:00Z" for h in range(3) for m in (5, 35)])
    c = ticks("C", [f"2024-07-02T1{h}:10:00Z" for h in range(4)])
    seed_bars(store, stored("A", a) + stored("C", c))
    for interval, per in (("1h", {"A": 3, "C": 4}), ("30m", {"A": 6, "C": 4}), ("1d", {"A": 1, "C": 1})):
        for descending in (False, True):
            full = BarPages(store)(BarsQuery(("A", "B", "C"), parse_bar_interval(interval), 0, END_OF_TIME_NS,
                                             descending=descending))
            assert {s: len(r) for s, r in full.bars.items()} == {"A": per["A"], "B": 0, "C": per["C"]}
            total = per["A"] + per["C"]
            for limit in range(1, total + 2):
                seen: dict[str, list[int]] = {"A": [], "B": [], "C": []}
                position, pages = None, 0
                while True:
                    page = BarPages(store)(BarsQuery(("A", "B", "C"), parse_bar_interval(interval), 0, END_OF_TIME_NS,
                                                     limit=limit, descending=descending, position=position))
                    pages += 1
                    assert sum(len(r) for r in page.bars.values()) <= limit
                    for s, r in page.bars.items():
                        seen[s] += [bar.start_ns for bar, _ in r]
                    if page.position is None:
                        break
                    position = page.position
                assert seen == {s: [bar.start_ns for bar, _ in r] for s, r in full.bars.items()}
                assert pages == -(-total // limit), (interval, descending, limit)
