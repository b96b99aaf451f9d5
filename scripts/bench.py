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
    breadth   --breadth-ticks ticks (default --ticks) over --breadth-symbols symbols and one hour, via REST;
    post      one JSON body of --post-ticks ticks posted to a stack with the fast path and to one without
              (FAST_PATH=false): the time POST /ingest takes to answer;
    bars      --bars minute bars of one symbol (and the coarser levels) written straight to the table, then
              GET /bars timed for pages of 5,000 and 10,000 1m bars, 5,000 30m bars and local days
              (bench_bars.py); what it writes is deleted at the end.
Each prints the time from the last request (or the end of the upload) to "bars ready", the AWS requests per
1,000 ticks by service and operation (moto's recorder, see bench_recording.py) with the estimated DynamoDB
write units, and whether the bars equal the reference computed here from the ticks (bench_data.py); rest,
live and breadth also the floor (the fewest requests the input needs) and measured/floor. A summary table ends it.

Usage: python scripts/bench.py [--scenario NAME ...] [sizes]   (make bench ARGS="--scenario rest --ticks 20000")
       python scripts/bench.py --help
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent
for path in (str(REPO_ROOT), str(SCRIPTS)):
    if path not in sys.path:
        sys.path.insert(0, path)

import msgspec  # noqa: E402
from bench_data import (  # noqa: E402
    CSV_HEADER,
    Ohlcv,
    TickRow,
    Window,
    csv_body,
    expected_minute_bars,
    json_body,
    merge_minute_bars,
    synthetic_ticks,
)
from pydantic import BaseModel, TypeAdapter  # noqa: E402

from chalicelib.domain.bars import partials_from_columns, partials_from_ticks  # noqa: E402
from chalicelib.domain.csv_rows import parse_csv_document  # noqa: E402
from chalicelib.domain.formats import ParseContext, parse_json_document, parse_ndjson_lines, text_lines  # noqa: E402
from chalicelib.schemas import (  # noqa: E402
    ColumnsMessage,
    TicksMessage,
    decode_columns,
    decode_message,
    decode_ticks,
    encode_column_messages,
    encode_tick_messages,
)

STACK_SCENARIOS = ("rest", "live", "backfill", "breadth", "post", "bars")
SCENARIO_NAMES = ("inprocess", *STACK_SCENARIOS)


# ---------------------------------------------------------------------------------------------- in-process


class BaselineTick(BaseModel):
    symbol: str
    price: Decimal
    volume: Decimal
    timestamp: datetime


class TypedTick(TypedDict):
    symbol: str
    price: Decimal
    volume: Decimal
    timestamp: datetime


TYPED_TICKS = TypeAdapter(list[TypedTick])


class StructTick(msgspec.Struct):
    symbol: str
    price: Decimal
    volume: Decimal
    timestamp: datetime
    trade_id: str | None = None


STRUCT_TICKS = msgspec.json.Decoder(list[StructTick])


def naive_bars(ticks: Iterable[tuple[str, Decimal, Decimal, datetime]]) -> dict[Window, Ohlcv]:
    """Plain dict aggregation in arrival order (what the baselines do after validating)."""
    bars: dict[tuple[str, datetime], list[Decimal]] = {}
    for symbol, price, volume, stamp in ticks:
        key = (symbol, stamp.replace(second=0, microsecond=0))
        acc = bars.get(key)
        if acc is None:
            bars[key] = [price, price, price, price, volume]
        else:
            acc[1], acc[2], acc[3], acc[4] = max(acc[1], price), min(acc[2], price), price, acc[4] + volume
    return {(s, int(m.timestamp() * 1000)): (a[0], a[1], a[2], a[3], a[4]) for (s, m), a in bars.items()}


def baseline(text: str) -> dict[Window, Ohlcv]:
    """json.loads, one pydantic model per tick dict, naive aggregation in arrival order."""
    ticks = (BaselineTick.model_validate({k: r[k] for k in ("symbol", "price", "volume", "timestamp")})
             for r in json.loads(text, parse_float=Decimal))
    return naive_bars((t.symbol, t.price, t.volume, t.timestamp) for t in ticks)


def typed_adapter(text: str) -> dict[Window, Ohlcv]:
    """pydantic's TypeAdapter(list[TypedDict]).validate_json on the whole body, then the naive aggregation."""
    return naive_bars((t["symbol"], t["price"], t["volume"], t["timestamp"]) for t in TYPED_TICKS.validate_json(text))


def msgspec_alone(text: str) -> dict[Window, Ohlcv]:
    """msgspec Structs with Decimal fields (exact for JSON numbers), then the naive aggregation."""
    return naive_bars((t.symbol, t.price, t.volume, t.timestamp) for t in STRUCT_TICKS.decode(text))


def minute_bars(partials: dict[tuple[str, int], Any]) -> dict[Window, Ohlcv]:
    return {(s, m // 1_000_000): (b.open, b.high, b.low, b.close, b.volume) for (s, m), b in partials.items()}


def project(fmt: str, text: str, fast: bool) -> dict[Window, Ohlcv]:
    """The project's parser for ``fmt`` and its partials; ``fast=False``: the precise parsers alone and the
    per-tick partials, as the project read payloads before its fast path."""
    ctx = ParseContext(received_ns=time.time_ns(), fast=fast)  # POST /ingest's rules, as files
    if fmt == "json":
        parsed = parse_json_document(text, ctx)
    elif fmt == "ndjson":
        parsed = parse_ndjson_lines(text_lines(text), 1, ctx)
    else:
        parsed = parse_csv_document(text, ctx)
    if parsed.rejected:
        raise SystemExit(f"the project's parser rejected synthetic ticks: {parsed.errors[:3]}")
    return minute_bars(partials_from_ticks(parsed.columns() if fast else parsed.ticks, "bench"))


def chain(text: str, fast: bool) -> dict[Window, Ohlcv]:
    """POST /ingest's work and the processors': parse the JSON body, pack its ticks into queue messages, decode
    each as a processor does, and make its partials. ``fast=False``: the precise parsers, the per-tick message
    form and per-tick partials."""
    ctx = ParseContext(received_ns=time.time_ns(), fast=fast)
    parsed = parse_json_document(text, ctx)
    bars: dict[Window, Ohlcv] = {}
    if fast:
        for body in encode_column_messages(parsed.columns(), "api-1", "r", ctx.received_ns, 240_000):
            message = decode_message(body)
            assert isinstance(message, ColumnsMessage)
            merge_minute_bars(bars, minute_bars(partials_from_columns(decode_columns(message), message.rank)))
    else:
        for body in encode_tick_messages(parsed.ticks, "api-1", "r", ctx.received_ns, 240_000):
            message = decode_message(body)
            assert isinstance(message, TicksMessage)
            merge_minute_bars(bars, minute_bars(partials_from_ticks(decode_ticks(message), message.rank)))
    return bars


def best_of(runs: int, call: Callable[[], dict[Window, Ohlcv]]) -> tuple[float, dict[Window, Ohlcv]]:
    best, result = float("inf"), {}
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def import_cpu_ms(compiled: bool, runs: int = 5) -> float:
    """CPU time of ``import app`` in a new interpreter, as a Lambda cold start: app.py and chalicelib/ copied
    alone to a read-only-like place (no bytecode is written), ``compiled``: with the bytecode the package
    ships (infra.build compiles chalicelib/ before chalice package), else from the sources."""
    code = "import time; t = time.process_time(); import app; print((time.process_time() - t) * 1000)"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO_ROOT / "app.py", root / "app.py")
        shutil.copytree(REPO_ROOT / "chalicelib", root / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
        if compiled:
            compileall.compile_dir(str(root / "chalicelib"), quiet=1,
                                   invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        return min(float(subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True,
                                        capture_output=True, text=True).stdout) for _ in range(runs))


def bench_in_process(ticks: list[TickRow], runs: int = 5) -> None:
    n = len(ticks)
    as_json, as_csv = json_body(ticks), csv_body(ticks)
    as_ndjson = as_json[1:-1].replace("},{", "}\n{") + "\n"
    as_epoch_csv = CSV_HEADER + "".join(f"{ts},{s},{p},{v},{tid}\n" for s, p, v, ts, tid in ticks)  # epoch ms
    expected = expected_minute_bars(ticks)
    rows: list[tuple[str, str, Callable[[], dict[Window, Ohlcv]]]] = [
        ("json", "project  JSON    fast path (columns) + partials", lambda: project("json", as_json, True)),
        ("json0", "project  JSON    precise parser alone + per-tick partials", lambda: project("json", as_json, False)),
        ("ndjson", "project  NDJSON  fast path (columns) + partials", lambda: project("ndjson", as_ndjson, True)),
        ("ndjson0", "project  NDJSON  precise parser alone + per-tick partials",
         lambda: project("ndjson", as_ndjson, False)),
        ("csv", "project  CSV     fast path (columns) + partials", lambda: project("csv", as_csv, True)),
        ("csv0", "project  CSV     precise parser alone + per-tick partials", lambda: project("csv", as_csv, False)),
        ("epoch", "project  CSV     epoch-ms timestamps, fast path + partials",
         lambda: project("csv", as_epoch_csv, True)),
        ("epoch0", "project  CSV     epoch-ms timestamps, precise parser alone + per-tick partials",
         lambda: project("csv", as_epoch_csv, False)),
        ("chain", "project  JSON    body -> column messages -> processor -> partials", lambda: chain(as_json, True)),
        ("chain0", "project  JSON    precise, per-tick messages -> processor -> per-tick partials",
         lambda: chain(as_json, False)),
        ("pydantic", "baseline JSON    json.loads + pydantic BaseModel per tick + naive aggregation",
         lambda: baseline(as_json)),
        ("typed", "baseline JSON    TypeAdapter(list[TypedDict]).validate_json + naive aggregation",
         lambda: typed_adapter(as_json)),
        ("msgspec", "baseline JSON    msgspec Struct (Decimal fields) alone + naive aggregation",
         lambda: msgspec_alone(as_json)),
    ]
    print(f"[inprocess] validate + aggregate: {n:,} synthetic ticks, {len(expected):,} one-minute windows, "
          f"best of {runs}, interleaved")
    best = {name: float("inf") for name, _, _ in rows}
    for _ in range(runs):  # interleaved, so that the machine's load falls on every row alike
        for name, label, call in rows:
            seconds, result = best_of(1, call)
            if result != expected:
                raise SystemExit(f"{label}: the bars differ from the plain OHLCV of the ticks")
            best[name] = min(best[name], seconds)
    rate = {name: n / seconds for name, seconds in best.items()}
    for name, label, _ in rows:
        print(f"    {label:<84} {rate[name]:>12,.0f} ticks/s  ({best[name] * 1000:,.0f} ms)")
    print("    fast path / precise path:  " + "   ".join(
        f"{fmt.upper()} {rate[fmt] / rate[fmt + '0']:.2f}x" for fmt in ("json", "ndjson", "csv", "epoch", "chain")))
    print("    JSON fast path / baselines:  " + "   ".join(
        f"{name} {rate['json'] / rate[name]:.2f}x" for name in ("pydantic", "typed", "msgspec")))
    source, compiled = import_cpu_ms(compiled=False), import_cpu_ms(compiled=True)
    print(f"    import app: {compiled:,.0f} ms CPU with the package's bytecode, {source:,.0f} ms compiling the sources "
          f"({compiled / source:.2f}x; best of 5, a new interpreter each)")
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
    posting = parser.add_argument_group("post")
    posting.add_argument("--post-ticks", type=int, default=100_000, help="ticks in the one JSON body" + d)
    posting.add_argument("--post-repeats", type=int, default=3, help="POSTs of it per stack" + d)
    reads = parser.add_argument_group("bars")
    reads.add_argument("--bars", type=int, default=10_000, help="minute bars written, one every 15 minutes" + d)
    reads.add_argument("--bars-repeats", type=int, default=5, help="times each GET /bars is timed" + d)
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
