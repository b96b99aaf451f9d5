"""Benchmark: validation+aggregation throughput in-process, then scenarios through the local stack.

inprocess: on N synthetic ticks (several symbols, unique timestamps per symbol, hours apart), the project's path,
    ``chalicelib.domain.formats`` (parse_json_document / parse_csv_document) followed by
    ``chalicelib.domain.bars.partials_from_ticks``, next to a baseline measured in the same run on the same JSON
    text: ``json.loads`` + one plain pydantic ``BaseModel`` (symbol: str, price: Decimal, volume: Decimal,
    timestamp: datetime) validated per tick dict + a naive dict-of-lists OHLCV aggregation. Best of 3 runs. Both
    results are checked against each other (same OHLCV per symbol and minute).

Through the local stack (bench_scenarios.py), each scenario in a stack of its own:
    rest      --ticks ticks (5 symbols, 6 h) posted in time order as JSON arrays of --batch ticks;
    live      --live-threads clients posting small JSON bodies (1 to --live-max-ticks ticks) of current time over
              --live-symbols symbols for --live-seconds, so the bars are live;
    backfill  one CSV of --backfill-ticks ticks (--backfill-symbols symbols, --backfill-days days) uploaded to the
              bucket with S3 PutObject; also the time to "processed" (GET /ingestions/{id});
    breadth   --breadth-ticks ticks (default --ticks) over --breadth-symbols symbols and one hour, via REST.
Each prints the time from the last request (or the end of the upload) to "bars ready", the AWS requests per
1,000 ticks by service and operation (moto's recorder, see bench_recording.py) with the estimated DynamoDB
write units, and whether the bars equal the reference computed here from the ticks (bench_data.py); rest,
live and breadth also the floor (the fewest requests the input needs) and measured/floor. A summary table ends it.

Usage: python scripts/bench.py [--scenario NAME ...] [sizes]   (make bench ARGS="--scenario rest --ticks 20000")
       python scripts/bench.py --help
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent
for path in (str(REPO_ROOT), str(SCRIPTS)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_data import (  # noqa: E402
    Ohlcv,
    TickRow,
    Window,
    csv_body,
    expected_minute_bars,
    json_body,
    synthetic_ticks,
)
from pydantic import BaseModel  # noqa: E402

from chalicelib.domain.bars import partials_from_ticks  # noqa: E402
from chalicelib.domain.csv_rows import parse_csv_document  # noqa: E402
from chalicelib.domain.formats import ParseContext, parse_json_document  # noqa: E402

STACK_SCENARIOS = ("rest", "live", "backfill", "breadth")
SCENARIO_NAMES = ("inprocess", *STACK_SCENARIOS)


# ---------------------------------------------------------------------------------------------- in-process


class BaselineTick(BaseModel):
    symbol: str
    price: Decimal
    volume: Decimal
    timestamp: datetime


def baseline(text: str) -> dict[Window, Ohlcv]:
    """json.loads, one pydantic model per tick dict, naive aggregation in arrival order."""
    bars: dict[tuple[str, datetime], list[Decimal]] = {}
    for record in json.loads(text, parse_float=Decimal):
        tick = BaselineTick.model_validate({k: record[k] for k in ("symbol", "price", "volume", "timestamp")})
        key = (tick.symbol, tick.timestamp.replace(second=0, microsecond=0))
        acc = bars.get(key)
        if acc is None:
            bars[key] = [tick.price, tick.price, tick.price, tick.price, tick.volume]
        else:
            price = tick.price
            acc[1], acc[2], acc[3], acc[4] = max(acc[1], price), min(acc[2], price), price, acc[4] + tick.volume
    return {(s, int(m.timestamp() * 1000)): (a[0], a[1], a[2], a[3], a[4]) for (s, m), a in bars.items()}


def project(parse: Callable[[str, ParseContext], Any], text: str) -> dict[Window, Ohlcv]:
    ctx = ParseContext(received_ns=time.time_ns(), strict=parse is parse_json_document)
    parsed = parse(text, ctx)
    if parsed.rejected:
        raise SystemExit(f"the project's parser rejected synthetic ticks: {parsed.errors[:3]}")
    partials = partials_from_ticks(parsed.ticks, "bench")
    return {(s, m // 1_000_000): (b.open, b.high, b.low, b.close, b.volume) for (s, m), b in partials.items()}


def best_of(runs: int, call: Callable[[], dict[Window, Ohlcv]]) -> tuple[float, dict[Window, Ohlcv]]:
    best, result = float("inf"), {}
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def bench_in_process(ticks: list[TickRow], runs: int = 3) -> None:
    n = len(ticks)
    as_json, as_csv = json_body(ticks), csv_body(ticks)
    expected = expected_minute_bars(ticks)
    rows = [
        ("project  JSON  formats.parse_json_document + bars.partials_from_ticks",
         lambda: project(parse_json_document, as_json)),
        ("project  CSV   csv_rows.parse_csv_document + bars.partials_from_ticks",
         lambda: project(parse_csv_document, as_csv)),
        ("baseline JSON  json.loads + pydantic BaseModel per tick + naive aggregation",
         lambda: baseline(as_json)),
    ]
    print(f"[inprocess] validate + aggregate: {n:,} synthetic ticks, {len(expected):,} one-minute windows, "
          f"best of {runs}")
    rates = []
    for label, call in rows:
        seconds, result = best_of(runs, call)
        if result != expected:
            raise SystemExit(f"{label}: the bars differ from the plain OHLCV of the ticks")
        rates.append(n / seconds)
        print(f"    {label:<80} {n / seconds:>12,.0f} ticks/s  ({seconds * 1000:,.0f} ms)")
    print(f"    project JSON / baseline: {rates[0] / rates[2]:.2f}x   "
          f"project CSV / baseline: {rates[1] / rates[2]:.2f}x")
    print()


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIO_NAMES, metavar="NAME",
                        help=f"run this scenario (repeatable; one of {', '.join(SCENARIO_NAMES)}; default: all)")
    parser.add_argument("--skip-stack", action="store_true", help="only the in-process benchmark")
    d = " (default %(default)s)"
    sizes = parser.add_argument_group("rest (and inprocess)")
    sizes.add_argument("--ticks", type=int, default=100_000, help="synthetic ticks" + d)
    sizes.add_argument("--symbols", type=int, default=5, help="symbols the ticks are spread over" + d)
    sizes.add_argument("--hours", type=float, default=6, help="time span of the ticks in hours" + d)
    sizes.add_argument("--batch", type=int, default=5_000,
                       help="ticks per POST /ingest in rest and breadth (5000: about 500 kB, under the body limit)" + d)
    live = parser.add_argument_group("live")
    live.add_argument("--live-seconds", type=float, default=60, help="how long the clients post" + d)
    live.add_argument("--live-threads", type=int, default=16, help="concurrent clients" + d)
    live.add_argument("--live-symbols", type=int, default=4, help="symbols" + d)
    live.add_argument("--live-max-ticks", type=int, default=10, help="ticks per request: 1 to this many" + d)
    fill = parser.add_argument_group("backfill")
    fill.add_argument("--backfill-ticks", type=int, default=1_000_000, help="ticks in the CSV file" + d)
    fill.add_argument("--backfill-symbols", type=int, default=5, help="symbols" + d)
    fill.add_argument("--backfill-days", type=float, default=30, help="time span in days" + d)
    wide = parser.add_argument_group("breadth")
    wide.add_argument("--breadth-ticks", type=int, default=None, help="ticks (default: --ticks)")
    wide.add_argument("--breadth-symbols", type=int, default=100, help="symbols" + d)
    wide.add_argument("--breadth-hours", type=float, default=1, help="time span in hours" + d)
    stack = parser.add_argument_group("the local stack")
    stack.add_argument("--schedule-seconds", type=float, default=300,
                       help="period of the scheduled aggregator (300 as deployed; a short one lets a slow aggregator "
                            "catch up)" + d)
    stack.add_argument("--poll-seconds", type=float, default=0.5, help="pause between the benchmark's polls" + d)
    stack.add_argument("--quiet-seconds", type=float, default=10,
                       help="once the bars are ready, the recording stops after this long without a pipeline write"
                            + d)
    stack.add_argument("--settle-seconds", type=float, default=120,
                       help="... or after this long, if the pipeline keeps writing" + d)
    stack.add_argument("--timeout", type=float, default=1800,
                       help="give up waiting for the bars of a scenario after this long, in seconds" + d)
    stack.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                       help="copy each scenario's stack log and reader log into DIR (<scenario>-localrun.log...)")
    args = parser.parse_args(argv)
    if args.ticks < args.symbols:
        parser.error("--ticks must be at least --symbols")
    if args.skip_stack:
        args.scenario = ["inprocess"]
    args.scenario = list(dict.fromkeys(args.scenario or SCENARIO_NAMES))
    return args


def stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the with blocks: stacks stopped, temporary files removed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    started = time.monotonic()
    if "inprocess" in args.scenario:
        bench_in_process(synthetic_ticks(args.ticks, args.symbols, args.hours))
    stack_scenarios = [name for name in args.scenario if name in STACK_SCENARIOS]
    failed = False
    if stack_scenarios:
        from bench_scenarios import print_summary, run

        results = run(stack_scenarios, args)
        print_summary(results)
        failed = any(r.failed for r in results)
    print(f"\nbench wall time: {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
