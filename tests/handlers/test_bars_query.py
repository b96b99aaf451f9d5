"""GET /bars through the Chalice app on moto: ticks posted, processed and aggregated by the handlers, then read
back in every interval, time zone, direction and page size, and compared with bars computed here from the same
ticks by a small aggregator of its own (windows from datetime and zoneinfo, open and close by timestamp)."""

from __future__ import annotations

import json
import random
import re
from calendar import timegm
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import Context, Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain.timefmt import parse_timestamp
from tests.handlers.test_app import get, post
from tests.moto_stack import ROOT, deliver_events, moto_stack, run_processor

NS = 10**9
MINUTE = 60 * NS
DAY = 86400 * NS
EPOCH = date(1970, 1, 1)
DECIMAL_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
# Days around the DST changes of New York (10 March, 3 November 2024) and Lord Howe (7 April, 6 October 2024).
DAYS = [date(2024, 3, 8) + timedelta(days=i) for i in range(5)] + \
       [date(2024, 4, 5) + timedelta(days=i) for i in range(4)] + \
       [date(2024, 10, 4) + timedelta(days=i) for i in range(4)] + \
       [date(2024, 11, 1) + timedelta(days=i) for i in range(5)]
# UTC times on either side of local midnights: New York (04:00 / 05:00), Lord Howe (13:00 / 13:30), Kathmandu
# (18:15), Kolkata (18:30), UTC.
NEAR_MIDNIGHTS = ["00:00:30", "03:59:30", "04:00:30", "04:59:30", "05:00:30", "12:59:30", "13:00:30", "13:29:30",
                  "13:30:30", "18:14:30", "18:15:30", "18:29:30", "18:30:30", "23:59:30"]


def make_ticks(symbol: str, seed: int) -> list[dict[str, Any]]:
    """Ticks with distinct timestamps (the order is never a tie), prices and volumes with trailing zeros too."""
    rng = random.Random(seed)
    stamps: set[int] = set()
    for day in DAYS:
        midnight = timegm(day.timetuple())
        for text in NEAR_MIDNIGHTS:
            h, m, s = map(int, text.split(":"))
            stamps.add((midnight + 3600 * h + 60 * m + s) * NS + rng.randrange(1000) * 1000)
        for _ in range(6):
            stamps.add(midnight * NS + rng.randrange(DAY // 1000) * 1000)
    out = []
    for number, ts in enumerate(sorted(stamps)):
        price = Decimal(rng.randrange(10_000, 11_000)) / 100  # "101.50": trailing zeros as sent
        volume = Decimal(rng.randrange(1, 40)) / (10 if rng.random() < 0.3 else 1)
        out.append({"symbol": symbol, "price": f"{price:.2f}", "volume": str(volume), "timestamp": ts,
                    "trade_id": str(number + 1)})
    rng.shuffle(out)  # arrival order does not matter
    return out


# ------------------------------------------------------------------------------------------ the reference
Window = Callable[[int], int]


def utc_minutes(n: int) -> Window:
    return lambda ts: ts - ts % (n * MINUTE)


def utc_days(n: int) -> Window:
    return lambda ts: (ts // DAY - (ts // DAY) % n) * DAY


def utc_weeks(ts: int) -> int:
    day = datetime.utcfromtimestamp(ts // NS).date()
    monday = day - timedelta(days=day.weekday())
    return timegm(monday.timetuple()) * NS


def local_days(zone: str, n: int = 1, weeks: bool = False) -> Window:
    tz = ZoneInfo(zone)

    def start(ts: int) -> int:
        local = datetime.fromtimestamp(ts // NS, tz).date()
        if weeks:
            first = local - timedelta(days=local.weekday())
        else:
            number = (local - EPOCH).days
            first = EPOCH + timedelta(days=number - number % n)
        return int(datetime.combine(first, time(0), tzinfo=tz).timestamp()) * NS

    return start


def reference(ticks: list[dict[str, Any]], window: Window) -> dict[int, dict[str, Any]]:
    groups: dict[int, list[dict[str, Any]]] = {}
    for tick in ticks:
        groups.setdefault(window(tick["timestamp"]), []).append(tick)
    out = {}
    for start, members in sorted(groups.items()):
        members.sort(key=lambda t: t["timestamp"])
        prices = [Decimal(t["price"]) for t in members]
        volume = sum((Decimal(t["volume"]) for t in members), Decimal(0))
        notional = sum((Decimal(t["price"]) * Decimal(t["volume"]) for t in members), Decimal(0))
        out[start] = {"open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1],
                      "volume": volume, "vwap": Context(prec=28).divide(notional, volume),
                      "trades": len(members), "first_tick": members[0]["timestamp"],
                      "last_tick": members[-1]["timestamp"], "ticks": members}
    return out


def as_compared(bar: dict[str, Any]) -> dict[str, Any]:
    for name in ("open", "high", "low", "close", "volume", "vwap"):
        assert DECIMAL_TEXT.fullmatch(bar[name]), (name, bar[name])  # one format: plain, no trailing zeros
    return {**{name: Decimal(bar[name]) for name in ("open", "high", "low", "close", "volume", "vwap")},
            "trades": bar["trades"], "first_tick": parse_timestamp(bar["first_tick"]),
            "last_tick": parse_timestamp(bar["last_tick"])}


def expected_values(ref: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {start: {k: v for k, v in bar.items() if k != "ticks"} for start, bar in ref.items()}


# ------------------------------------------------------------------------------------------ the stack
def aggregate(stack: dict[str, Any]) -> None:
    run_processor(stack)
    while deliver_events(stack):  # TicksProcessed, then AggregationPending until every symbol is done
        pass


@pytest.fixture(scope="module")
def bars_stack() -> Iterator[dict[str, Any]]:
    """One stack for the module: REF's ticks (every interval and zone is checked on them), LATE's (revised
    later), and the symbols the pages are read over."""
    from chalice.test import Client

    with pytest.MonkeyPatch.context() as monkeypatch, moto_stack(monkeypatch) as resources, \
            Client(resources["app"].app, stage_name="dev", project_dir=str(ROOT)) as client:
        stack = {"client": client, **resources}
        ticks = make_ticks("REF", 7)
        late = make_ticks("LATE", 8)[:60]
        pages = [{"symbol": "P1", "price": 10 + i, "volume": 1, "timestamp": f"2024-07-01T1{i // 3}:{i * 7:02d}:00Z"}
                 for i in range(8)] + \
                [{"symbol": "P3", "price": 20 + i, "volume": "0.50", "timestamp": f"2024-07-02T0{i}:30:00Z"}
                 for i in range(5)]
        for body in (ticks[: len(ticks) // 2], ticks[len(ticks) // 2 :], late, pages):
            assert post(stack, body).status_code == 202
        aggregate(stack)
        stack["ticks"] = ticks
        stack["late"] = late
        yield stack


def all_bars(stack: dict[str, Any], query: str) -> list[dict[str, Any]]:
    status, body = get(stack, f"/bars?{query}&limit=10000")
    assert status == 200, body
    assert body["next"] is None and body["next_url"] is None
    bars: list[dict[str, Any]] = body["bars"]
    return bars


# ------------------------------------------------------------------------------------------ every interval
@pytest.mark.parametrize(("interval", "window"), [
    ("1m", utc_minutes(1)), ("2m", utc_minutes(2)), ("5m", utc_minutes(5)), ("10m", utc_minutes(10)),
    ("30m", utc_minutes(30)), ("45m", utc_minutes(45)), ("90m", utc_minutes(90)), ("1h", utc_minutes(60)),
    ("2h", utc_minutes(120)), ("4h", utc_minutes(240)), ("12h", utc_minutes(720)), ("24h", utc_minutes(1440)),
    ("1d", utc_days(1)), ("2d", utc_days(2)), ("3d", utc_days(3)), ("7d", utc_days(7)), ("1w", utc_weeks),
])
def test_every_utc_interval_equals_the_bars_of_its_ticks(bars_stack: dict[str, Any], interval: str,
                                                         window: Window) -> None:
    ref = reference(bars_stack["ticks"], window)
    bars = all_bars(bars_stack, f"symbol=REF&interval={interval}")
    assert [parse_timestamp(b["start"]) for b in bars] == sorted(ref)
    assert {parse_timestamp(b["start"]): as_compared(b) for b in bars} == expected_values(ref)
    assert all("date" not in b for b in bars)


@pytest.mark.parametrize(("zone", "interval", "window"), [
    ("America/New_York", "1d", local_days("America/New_York")),  # both DST changes: days of 23 and 25 hours
    ("Asia/Kolkata", "1d", local_days("Asia/Kolkata")),
    ("Asia/Kathmandu", "1d", local_days("Asia/Kathmandu")),
    ("Australia/Lord_Howe", "1d", local_days("Australia/Lord_Howe")),  # a 30-minute DST shift
    ("UTC", "1d", utc_days(1)),
    ("America/New_York", "2d", local_days("America/New_York", 2)),
    ("Asia/Kathmandu", "3d", local_days("Asia/Kathmandu", 3)),
    ("America/New_York", "1w", local_days("America/New_York", weeks=True)),
    ("Australia/Lord_Howe", "1w", local_days("Australia/Lord_Howe", weeks=True)),
])
def test_local_days_and_weeks_equal_the_bars_of_their_ticks(bars_stack: dict[str, Any], zone: str, interval: str,
                                                            window: Window) -> None:
    ref = reference(bars_stack["ticks"], window)
    status, body = get(bars_stack, f"/bars?symbol=REF&interval={interval}&tz={quote(zone, safe='')}&limit=10000")
    assert status == 200, body
    assert body["tz"] == zone and body["interval"] == interval
    bars = body["bars"]
    assert {parse_timestamp(b["start"]): as_compared(b) for b in bars} == expected_values(ref)
    tz = ZoneInfo(zone)
    for bar in bars:  # the start is the UTC instant of local midnight; date is that local date
        local = datetime.fromtimestamp(parse_timestamp(bar["start"]) // NS, tz)
        assert (local.hour, local.minute, local.second) == (0, 0, 0) and bar["date"] == local.date().isoformat()


@pytest.mark.parametrize(("query", "source"), [
    ("interval=30m", utc_minutes(15)), ("interval=4h", utc_minutes(60)), ("interval=3d", utc_days(1)),
    ("interval=1d&tz=America/New_York", utc_minutes(60)),  # every New York midnight is on a UTC hour
    ("interval=1d&tz=Asia/Kolkata", utc_minutes(15)), ("interval=1d&tz=Australia/Lord_Howe", utc_minutes(15)),
])
def test_a_derived_bars_revision_is_the_sum_of_its_parts(bars_stack: dict[str, Any], query: str,
                                                         source: Window) -> None:
    bars = all_bars(bars_stack, f"symbol=REF&{query}")
    ticks_by_start = {parse_timestamp(b["start"]): b for b in bars}
    interval = query.split("&")[0].split("=")[1]
    zone = query.split("tz=")[1] if "tz=" in query else None
    window = local_days(zone) if zone else {"30m": utc_minutes(30), "4h": utc_minutes(240), "3d": utc_days(3)}[interval]
    for start, ref in reference(bars_stack["ticks"], window).items():
        parts = {source(t["timestamp"]) for t in ref["ticks"]}  # each stored part at revision 1
        assert ticks_by_start[start]["revision"] == len(parts)


def test_a_late_tick_revises_the_derived_bars_it_falls_in(bars_stack: dict[str, Any]) -> None:
    late = bars_stack["late"]
    last = max(t["timestamp"] for t in late)
    before = {q: {b["start"]: b for b in all_bars(bars_stack, f"symbol=LATE&{q}")}
              for q in ("interval=30m", "interval=1d&tz=Asia/Kolkata", "interval=1w")}
    tick = {"symbol": "LATE", "price": "999.5", "volume": "2", "timestamp": last - 1000, "trade_id": "999999"}
    assert post(bars_stack, [tick]).status_code == 202
    aggregate(bars_stack)
    windows = {"interval=30m": utc_minutes(30), "interval=1d&tz=Asia/Kolkata": local_days("Asia/Kolkata"),
               "interval=1w": utc_weeks}
    for query, window in windows.items():
        after = {b["start"]: b for b in all_bars(bars_stack, f"symbol=LATE&{query}")}
        ref = reference([*late, tick], window)
        assert {parse_timestamp(s): as_compared(b) for s, b in after.items()} == expected_values(ref)
        changed = [s for s in after if after[s]["revision"] != before[query][s]["revision"]]
        assert len(changed) == 1 and after[changed[0]]["revision"] > before[query][changed[0]]["revision"]
        assert parse_timestamp(changed[0]) == window(tick["timestamp"]) and after[changed[0]]["high"] == "999.5"


# ------------------------------------------------------------------------------------------ pages
def read_pages(stack: dict[str, Any], query: str, limit: int, follow_url: bool) -> tuple[list[dict[str, Any]], int]:
    pages: list[dict[str, Any]] = []
    path = f"/bars?{query}&limit={limit}"
    while True:
        status, page = get(stack, path)
        assert status == 200, page
        pages.append(page)
        if page["next"] is None:
            assert page["next_url"] is None
            return pages, len(pages)
        assert page["next_url"].startswith("/bars?") and page["next_url"].endswith("next=" + page["next"])
        path = page["next_url"] if follow_url else f"/bars?{query}&limit={limit}&next={page['next']}"


@pytest.mark.parametrize("interval", ["1m", "30m", "1d&tz=America/New_York", "1h"])
@pytest.mark.parametrize("sort", ["asc", "desc"])
def test_pages_over_several_symbols_never_skip_or_repeat(bars_stack: dict[str, Any], interval: str, sort: str) -> None:
    query = f"symbols=P1,P2,P3&interval={interval}&sort={sort}"
    status, whole = get(bars_stack, f"/bars?{query}&limit=10000")
    assert status == 200 and whole["symbols"] == ["P1", "P2", "P3"] and whole["next"] is None
    assert list(whole["bars"]) == ["P1", "P2", "P3"] and whole["bars"]["P2"] == []  # in the order asked
    for symbol in ("P1", "P3"):
        starts = [b["start"] for b in whole["bars"][symbol]]
        assert starts == sorted(starts, reverse=sort == "desc") and starts == list(dict.fromkeys(starts))
        assert whole["bars"][symbol] == all_bars(bars_stack, f"symbol={symbol}&interval={interval}&sort={sort}")
    total = sum(len(b) for b in whole["bars"].values())
    assert total >= 3
    for limit in range(1, total + 2):
        pages, count = read_pages(bars_stack, query, limit, follow_url=limit % 2 == 0)
        assert count == -(-total // limit)  # full pages, then the rest: no empty last page
        joined: dict[str, list[dict[str, Any]]] = {"P1": [], "P2": [], "P3": []}
        for page in pages:
            assert list(page["bars"]) == ["P1", "P2", "P3"]  # every symbol, an empty list when none on this page
            assert sum(len(b) for b in page["bars"].values()) <= limit
            for symbol, bars in page["bars"].items():
                joined[symbol] += bars
        assert joined == whole["bars"]


def test_one_symbol_pages_in_both_directions_keep_the_shape(bars_stack: dict[str, Any]) -> None:
    asc = all_bars(bars_stack, "symbol=REF&interval=4h")
    desc = all_bars(bars_stack, "symbol=REF&interval=4h&sort=desc")
    assert desc == asc[::-1]
    status, page = get(bars_stack, "/bars?symbol=REF&interval=4h&sort=desc&limit=3")
    assert status == 200 and set(page) == {"symbol", "interval", "bars", "next", "next_url"}
    assert page["symbol"] == "REF" and page["bars"] == desc[:3]
    _, rest = get(bars_stack, f"/bars?symbol=REF&interval=4h&sort=desc&limit=3&next={page['next']}")
    assert rest["bars"] == desc[3:6]
    # the same range asked for in parts: start and end filter on bar start
    start, end = asc[2]["start"], asc[5]["start"]
    middle = all_bars(bars_stack, f"symbol=REF&interval=4h&start={start}&end={end}")
    assert middle == asc[2:5]


def test_next_url_is_built_on_the_configured_base_url(bars_stack: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bars_stack["app"], "settings", replace(bars_stack["settings"],
                                                               api_base_url="https://api.example.com/v1"))
    status, page = get(bars_stack, "/bars?symbols=P1,P3&interval=30m&limit=2&start=2024-07-01T00:00:00Z")
    assert status == 200
    assert page["next_url"] == ("https://api.example.com/v1/bars?symbols=P1,P3&interval=30m&limit=2"
                                f"&start=2024-07-01T00:00:00Z&next={page['next']}")


def test_a_cursor_of_another_query_is_refused(bars_stack: dict[str, Any]) -> None:
    _, page = get(bars_stack, "/bars?symbols=P1,P3&interval=30m&limit=2")
    cursor = page["next"]
    for other in ("symbols=P1,P2", "symbols=P3,P1", "symbol=P1", "symbols=P1,P3&interval=15m",
                  "symbols=P1,P3&interval=30m&sort=desc", "symbols=P1,P3&interval=30m&start=2024-01-01T00:00:00Z"):
        status, body = get(bars_stack, f"/bars?{other}&limit=2&next={cursor}")
        assert status == 400 and body["error"] == "InvalidQuery" and "next" in body["message"], (other, body)
    status, _ = get(bars_stack, f"/bars?symbols=P1,P3&interval=30m&limit=5&next={cursor}")
    assert status == 200  # another limit is the same query


@pytest.mark.parametrize(("query", "named"), [
    ("symbol=REF&foo=1&Interval=1m&bar=", ["'foo'", "'Interval'", "'bar'"]),
    ("symbol=REF&limit=1&limit=2", ["'limit'"]),
    ("symbol=REF&symbol=REF", ["'symbol'"]),
    ("symbol=REF&symbols=REF", ["symbol", "symbols"]),
    ("symbols=REF,REF", ["twice"]),
    ("symbol=REF&interval=7m", ["interval"]),
    ("symbol=REF&interval=1h&tz=America/New_York", ["tz"]),
    ("symbol=REF&interval=1d&tz=America/Gotham", ["tz"]),
    ("symbol=REF&sort=newest", ["sort"]),
    ("symbol=REF&limit=10001", ["limit", "10000"]),
])
def test_bad_queries_are_a_400_naming_the_parameters(bars_stack: dict[str, Any], query: str, named: list[str]) -> None:
    status, body = get(bars_stack, f"/bars?{query}")
    assert status == 400 and body["error"] == "InvalidQuery", body
    assert all(name in body["message"] for name in named), body


def test_a_page_of_ten_thousand_is_answered(bars_stack: dict[str, Any]) -> None:
    status, body = get(bars_stack, "/bars?symbol=REF&limit=10000")
    assert status == 200 and len(body["bars"]) == len(bars_stack["ticks"]) and body["next"] is None
    assert json.dumps(body).count("E+") == 0
