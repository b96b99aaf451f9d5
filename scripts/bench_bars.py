"""The ``bars`` scenario of the benchmark: how long GET /bars takes to answer big pages on the local stack.

It writes the bars of one symbol straight into the stack's table (every stored level, merged from synthetic
minute bars with the domain's own merge, so the levels agree as the aggregator's do), then times GET /bars
through the stack's API: 5,000 and 10,000 1m bars (stored, one query each), 5,000 30m bars (merged from 10,000
15m bars) and local days (America/New_York from 1h bars, Asia/Kolkata from 15m bars). Each query runs
--bars-repeats times and every page is checked: the count of bars, and the first bar against the merge of its
minute bars. It deletes what it wrote at the end, and checks nothing of it is left.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.domain.bars import MINUTE_NS, Bar, merge_all, window_start
from chalicelib.domain.timefmt import format_ns, parse_timestamp
from chalicelib.settings import resource_names
from localrun.control import LocalStack, running_local_stack

LEVELS = ("1m", "5m", "15m", "1h", "1d")
FIRST_MINUTE = parse_timestamp("2024-01-02T00:00:00Z")
WRITE_BATCH = 990  # bars per write_bars call (ten transactions)


def minute_bars(symbol: str, count: int, every: int) -> list[Bar]:
    """``count`` minute bars, one every ``every`` minutes, prices walking by cents."""
    out = []
    for i in range(count):
        start = FIRST_MINUTE + i * every * MINUTE_NS
        price = Decimal(10_000 + (i * 37) % 500) / 100
        out.append(Bar(symbol, "1m", start, price, price + Decimal("0.25"), price - Decimal("0.10"), price,
                       Decimal(i % 7 + 1), price * (i % 7 + 1), i % 5 + 1, start + 1_000, start + 59 * 10**9,
                       f"{start + 1_000:020d}|b", f"{start + 59 * 10**9:020d}|b"))
    return out


def all_levels(minutes: list[Bar]) -> list[Bar]:
    out = list(minutes)
    for level in LEVELS[1:]:
        groups: dict[int, list[Bar]] = {}
        for bar in minutes:
            groups.setdefault(window_start(bar.start_ns, level), []).append(bar)
        for start, parts in sorted(groups.items()):
            merged = merge_all(parts, level, start)
            assert merged is not None
            out.append(merged)
    return out


def store_of(stack: LocalStack) -> DynamoStateStore:
    import boto3  # type: ignore[import-untyped]

    client = boto3.client("dynamodb", endpoint_url=stack.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return DynamoStateStore(client, resource_names("dev")["TABLE_NAME"])


def write(store: DynamoStateStore, symbol: str, puts: list[Bar], deletes: list[tuple[str, int]]) -> None:
    lease = store.acquire_lease(symbol, f"bench-{uuid.uuid4().hex}", time.time_ns(), 600 * 10**9)
    assert lease is not None, f"{symbol} is leased"
    try:
        for i in range(0, max(len(puts), len(deletes)), WRITE_BATCH):
            store.write_bars(lease, [(bar, 1) for bar in puts[i : i + WRITE_BATCH]], deletes[i : i + WRITE_BATCH],
                             time.time_ns())
    finally:
        store.release_lease(lease)


def timed_pages(stack: LocalStack, repeats: int, **params: Any) -> tuple[list[float], dict[str, Any]]:
    times, page = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        resp = stack.get("/bars", **params)
        times.append(time.perf_counter() - started)
        if resp.status != 200:
            raise RuntimeError(f"GET /bars {params} answered {resp.status}: {resp.body[:300]!r}")
        page = resp.json()
    return times, page


def bars(args: argparse.Namespace) -> Any:
    from bench_scenarios import Result, ScenarioError

    count, every = args.bars, 15  # one minute bar every 15 minutes: 30m bars have two 15m parts each
    symbol = f"BENCH.BARS.{uuid.uuid4().hex[:8]}".upper()
    minutes = minute_bars(symbol, count, every)
    levels = all_levels(minutes)
    per_level = {level: sum(1 for b in levels if b.interval == level) for level in LEVELS}
    span_days = count * every / 1440
    print(f"[bars] {len(levels):,} bars of {symbol} written straight to the table "
          f"({', '.join(f'{n:,} {lv}' for lv, n in per_level.items())}; {span_days:,.0f} days), then GET /bars "
          f"timed through the stack's API, best and median of {args.bars_repeats}", flush=True)
    queries: list[tuple[str, dict[str, Any], int, str]] = [
        ("1m, limit 5,000", {"interval": "1m", "limit": 5000}, 5000, "5,000 1m bars, stored"),
        ("1m, limit 10,000", {"interval": "1m", "limit": 10000}, min(10000, count), "10,000 1m bars, stored"),
        ("30m, limit 5,000", {"interval": "30m", "limit": 5000}, min(5000, count // 2), "merged from 10,000 15m bars"),
        ("1d tz=America/New_York", {"interval": "1d", "tz": "America/New_York", "limit": 5000}, 0,
         f"merged from {per_level['1h']:,} 1h bars"),
        ("1d tz=Asia/Kolkata", {"interval": "1d", "tz": "Asia/Kolkata", "limit": 5000}, 0,
         f"merged from {per_level['15m']:,} 15m bars"),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-bars-") as tmp, \
            running_local_stack(Path(tmp) / "localrun.log", schedule_seconds=args.schedule_seconds) as stack:
        store = store_of(stack)
        started = time.monotonic()
        write(store, symbol, levels, [])
        print(f"    written in {time.monotonic() - started:.1f}s", flush=True)
        try:
            for label, params, expected, source in queries:
                times, page = timed_pages(stack, args.bars_repeats, symbol=symbol, **params)
                got = page["bars"]
                if expected and len(got) != expected:
                    raise ScenarioError(f"{label}: {len(got)} bars, expected {expected}")
                if params["interval"] == "30m":
                    first = merge_all(minutes[:2], "30m", minutes[0].start_ns)
                    assert first is not None
                    if (got[0]["start"], Decimal(got[0]["volume"])) != (format_ns(first.start_ns), first.volume):
                        raise ScenarioError(f"{label}: the first bar differs from the merge of its minutes")
                print(f"    GET /bars {label:<24} {len(got):>6,} bars ({source}): best {min(times):.3f}s, median "
                      f"{statistics.median(times):.3f}s, {len(got) / min(times):,.0f} bars/s", flush=True)
        finally:
            started = time.monotonic()
            write(store, symbol, [], [(b.interval, b.start_ns) for b in levels])
            left = {level: store.query_bars(symbol, level, 0, 10**19, limit=1)[0] for level in LEVELS}
            if any(left.values()):
                raise ScenarioError(f"bars of {symbol} were left after the clean-up: {left}")
            print(f"    deleted in {time.monotonic() - started:.1f}s; none left", flush=True)
    print()
    return Result("bars", 0, equal="yes")
