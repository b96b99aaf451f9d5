"""OHLCV bars: invariants, agreement with a naive reference, and merge independence of order and batching."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.bars import (
    INTERVALS,
    MINUTE_NS,
    Bar,
    bars_from_ticks,
    merge,
    merge_all,
    partials_from_ticks,
    window_start,
)
from chalicelib.domain.ticks import Tick

BASE_NS = 1_719_878_100 * 1_000_000_000  # 2024-07-01T23:55:00Z, on a 5-minute boundary
PROPERTY = settings(max_examples=75, deadline=None)

# A few timestamps only, so many ticks share one (ties are the interesting case), spread over ~7 minutes.
timestamps = st.sampled_from([BASE_NS + k * 20 * 1_000_000_000 + extra for k in range(21) for extra in (0, 1)])
prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("99999"), places=4, allow_nan=False)
volumes = st.decimals(min_value=Decimal(0), max_value=Decimal("5000"), places=3, allow_nan=False)
trade_ids = st.one_of(
    st.none(),
    st.integers(0, 10_000).map(str),
    st.integers(0, 999).map(lambda n: f"{n:06d}"),  # leading zeros: same number as without
    st.sampled_from(["ccc3c1fa-212c", "b46c84da", "X1"]),  # non-numeric ids carry no order
)
raw_ticks = st.lists(
    st.tuples(st.sampled_from(["ESU4", "BTC/USDT"]), prices, volumes, timestamps, trade_ids), min_size=1, max_size=40
)


def make_ticks(rows: Sequence[tuple[str, Decimal, Decimal, int, str | None]]) -> list[Tick]:
    return [
        Tick(symbol, price, volume, ts, seq, trade_id)
        for seq, (symbol, price, volume, ts, trade_id) in enumerate(rows)
    ]


def naive_order(tick: Tick, rank: str) -> tuple:
    """The documented total order, written independently of bars.order_key."""
    tid = tick.trade_id
    numeric = (1, int(tid)) if tid is not None and tid.isdigit() else (0, 0)
    return (tick.ts_ns, numeric, rank, tick.seq)


def naive_bars(ranked: Sequence[tuple[Tick, str]], interval: str) -> dict[tuple[str, int], dict]:
    groups: dict[tuple[str, int], list[tuple[Tick, str]]] = defaultdict(list)
    width = INTERVALS[interval]
    for tick, rank in ranked:
        groups[(tick.symbol, tick.ts_ns - tick.ts_ns % width)].append((tick, rank))
    out = {}
    for key, members in groups.items():
        ordered = sorted(members, key=lambda tr: naive_order(*tr))
        ticks = [t for t, _ in ordered]
        out[key] = {
            "open": ticks[0].price, "close": ticks[-1].price,
            "high": max(t.price for t in ticks), "low": min(t.price for t in ticks),
            "volume": sum((t.volume for t in ticks), Decimal(0)),
            "notional": sum((t.price * t.volume for t in ticks), Decimal(0)),
            "trades": len(ticks),
            "first_ns": min(t.ts_ns for t in ticks), "last_ns": max(t.ts_ns for t in ticks),
        }
    return out


def summary(bar: Bar) -> dict:
    return {
        "open": bar.open, "close": bar.close, "high": bar.high, "low": bar.low, "volume": bar.volume,
        "notional": bar.notional, "trades": bar.trades, "first_ns": bar.first_ns, "last_ns": bar.last_ns,
    }


def random_split(items: list, rnd: random.Random, parts: int) -> list[list]:
    batches: list[list] = [[] for _ in range(parts)]
    for item in items:
        batches[rnd.randrange(parts)].append(item)
    return batches


def merge_partials(partials: list[Bar], interval: str) -> dict[tuple[str, int], Bar]:
    grouped: dict[tuple[str, int], list[Bar]] = defaultdict(list)
    for partial in partials:
        grouped[(partial.symbol, window_start(partial.start_ns, interval))].append(partial)
    out = {}
    for (symbol, start), parts in grouped.items():
        merged = merge_all(parts, interval, start)
        assert merged is not None
        out[(symbol, start)] = merged
    return out


# ---------------------------------------------------------------------------------- invariants
@PROPERTY
@given(raw_ticks, st.sampled_from(list(INTERVALS)))
def test_bar_invariants(rows: list, interval: str) -> None:
    ticks = make_ticks(rows)
    bars = bars_from_ticks(ticks, interval)
    assert sum(b.trades for b in bars) == len(ticks)
    for bar in bars:
        members = [t for t in ticks if t.symbol == bar.symbol and window_start(t.ts_ns, interval) == bar.start_ns]
        assert bar.interval == interval
        assert bar.start_ns % INTERVALS[interval] == 0
        assert bar.low <= bar.open <= bar.high
        assert bar.low <= bar.close <= bar.high
        assert bar.high == max(t.price for t in members) and bar.low == min(t.price for t in members)
        assert bar.volume == sum((t.volume for t in members), Decimal(0))
        assert bar.trades == len(members)
        assert bar.start_ns <= bar.first_ns <= bar.last_ns < bar.start_ns + INTERVALS[interval]
        if bar.volume > 0:
            assert bar.vwap is not None
            assert bar.low <= bar.vwap <= bar.high
        else:
            assert bar.vwap is None
    # Bars come out sorted by (symbol, start) and there is one per non-empty window.
    keys = [(b.symbol, b.start_ns) for b in bars]
    assert keys == sorted(set(keys))


@PROPERTY
@given(raw_ticks, st.sampled_from(["1m", "5m", "1h"]))
def test_bars_match_a_naive_reference(rows: list, interval: str) -> None:
    ticks = make_ticks(rows)
    expected = naive_bars([(t, "r0") for t in ticks], interval)
    got = {(b.symbol, b.start_ns): summary(b) for b in bars_from_ticks(ticks, interval, "r0")}
    assert got == expected


# ---------------------------------------------------------------------------------- merging
@PROPERTY
@given(raw_ticks, st.integers(1, 6), st.randoms(use_true_random=False), st.sampled_from(["1m", "5m", "15m", "1d"]))
def test_merging_partials_is_independent_of_batching_and_order(
    rows: list, parts: int, rnd: random.Random, interval: str
) -> None:
    ticks = make_ticks(rows)
    whole = {(b.symbol, b.start_ns): b for b in bars_from_ticks(ticks, interval)}

    partials: list[Bar] = []
    for batch in random_split(ticks, rnd, parts):
        rnd.shuffle(batch)  # order inside a batch does not matter either
        partials.extend(partials_from_ticks(batch, "").values())
    rnd.shuffle(partials)

    merged = merge_partials(partials, interval)
    assert merged == whole


@PROPERTY
@given(raw_ticks, st.integers(1, 4), st.randoms(use_true_random=False))
def test_sources_with_ranks_merge_like_one_ordered_stream(rows: list, sources: int, rnd: random.Random) -> None:
    ticks = make_ticks(rows)
    ranked: list[tuple[Tick, str]] = []
    partials: list[Bar] = []
    for n, batch in enumerate(random_split(ticks, rnd, sources)):
        rank = f"{1_000 + rnd.randrange(9_000):05d}:src{n}"  # fixed width, like the pipeline's ranks
        ranked.extend((t, rank) for t in batch)
        partials.extend(partials_from_ticks(batch, rank).values())
    rnd.shuffle(partials)
    got = {key: summary(bar) for key, bar in merge_partials(partials, "1m").items()}
    assert got == naive_bars(ranked, "1m")


@PROPERTY
@given(st.lists(raw_ticks, min_size=3, max_size=3))
def test_merge_is_commutative_and_associative(groups: list) -> None:
    start = window_start(BASE_NS, "1h")
    bars = []
    for n, rows in enumerate(groups):
        ticks = [Tick("ESU4", p, v, ts, seq) for seq, (_, p, v, ts, _tid) in enumerate(rows)]
        bar = merge_all(partials_from_ticks(ticks, f"r{n}").values(), "1h", start)
        assert bar is not None
        bars.append(bar)
    a, b, c = bars
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


def test_merge_all_of_nothing_is_none() -> None:
    assert merge_all([], "1m", BASE_NS) is None


# ---------------------------------------------------------------------------------- tie-breaking
def _bar(ticks: list[Tick], rank: str = "") -> Bar:
    [bar] = bars_from_ticks(ticks, "1m", rank)
    return bar


def test_equal_timestamps_are_ordered_by_numeric_trade_id_not_arrival() -> None:
    ticks = [
        Tick("ESU4", Decimal("3"), Decimal(1), BASE_NS, 0, "10"),
        Tick("ESU4", Decimal("1"), Decimal(1), BASE_NS, 1, "9"),
        Tick("ESU4", Decimal("2"), Decimal(1), BASE_NS, 2, "0011"),
    ]
    bar = _bar(ticks)
    # 9 < 10 < 11 numerically, although "10" < "9" as text and the arrival order is 10, 9, 11.
    assert (bar.open, bar.close) == (Decimal("1"), Decimal("2"))


def test_equal_timestamps_without_numeric_ids_fall_back_to_position() -> None:
    ticks = [
        Tick("XBTUSD", Decimal("5"), Decimal(1), BASE_NS, 7, "ccc3c1fa-212c"),
        Tick("XBTUSD", Decimal("6"), Decimal(1), BASE_NS, 3, "b46c84da"),
        Tick("XBTUSD", Decimal("7"), Decimal(1), BASE_NS, 5, None),
    ]
    bar = _bar(ticks)
    assert (bar.open, bar.close) == (Decimal("6"), Decimal("5"))


def test_timestamp_wins_over_trade_id() -> None:
    ticks = [
        Tick("ESU4", Decimal("1"), Decimal(1), BASE_NS + 5, 0, "1"),
        Tick("ESU4", Decimal("2"), Decimal(1), BASE_NS + 1, 1, "999"),
    ]
    bar = _bar(ticks)
    assert (bar.open, bar.close) == (Decimal("2"), Decimal("1"))


def test_equal_timestamps_across_sources_are_ordered_by_source_rank_then_seq() -> None:
    early = partials_from_ticks([Tick("ESU4", Decimal("1"), Decimal(1), BASE_NS, 9),
                                 Tick("ESU4", Decimal("2"), Decimal(1), BASE_NS, 8)], "00000000000000000001:api-a")
    late = partials_from_ticks([Tick("ESU4", Decimal("3"), Decimal(1), BASE_NS, 0)], "00000000000000000002:api-b")
    for parts in ([*early.values(), *late.values()], [*late.values(), *early.values()]):
        bar = merge_all(parts, "1m", BASE_NS)
        assert bar is not None
        # The earlier source opens even though the later source's seq is smaller; inside a source, seq orders.
        assert (bar.open, bar.close) == (Decimal("2"), Decimal("3"))


def test_vwap_and_exact_sums() -> None:
    ticks = [
        Tick("XRP/ETH", Decimal("0.1"), Decimal("3"), BASE_NS, 0),
        Tick("XRP/ETH", Decimal("0.2"), Decimal("1"), BASE_NS + MINUTE_NS - 1, 1),
    ]
    bar = _bar(ticks)
    assert bar.volume == Decimal("4") and bar.notional == Decimal("0.5")
    assert bar.vwap == Decimal("0.125")
    assert bar.first_ns == BASE_NS and bar.last_ns == BASE_NS + MINUTE_NS - 1


@pytest.mark.parametrize(
    ("interval", "ts", "start"),
    [
        ("1m", BASE_NS + 59_999_999_999, BASE_NS),
        ("1m", BASE_NS + 60_000_000_000, BASE_NS + MINUTE_NS),
        ("5m", BASE_NS + 4 * MINUTE_NS + 1, BASE_NS),
        ("15m", BASE_NS + 4 * MINUTE_NS, BASE_NS - 10 * MINUTE_NS),  # 23:55 lies in 23:45-00:00
        ("1h", BASE_NS, BASE_NS - 55 * MINUTE_NS),
        ("1d", BASE_NS + 5 * MINUTE_NS, BASE_NS + 5 * MINUTE_NS),  # 00:00 UTC starts a day
        ("1d", BASE_NS, 1_719_792_000 * 1_000_000_000),
    ],
)
def test_window_start(interval: str, ts: int, start: int) -> None:
    assert window_start(ts, interval) == start
