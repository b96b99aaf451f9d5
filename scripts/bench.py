"""Benchmark: validation+aggregation throughput in-process, and AWS requests per 1,000 ticks through the local stack.

(a) In-process, on N synthetic ticks (several symbols, unique timestamps per symbol, hours apart):
    the project's path, ``chalicelib.domain.formats`` (parse_json_document / parse_csv_document) followed by
    ``chalicelib.domain.bars.partials_from_ticks``, next to a baseline measured in the same run on the same
    JSON text: ``json.loads`` + one plain pydantic ``BaseModel`` (symbol: str, price: Decimal, volume: Decimal,
    timestamp: datetime) validated per tick dict + a naive dict-of-lists OHLCV aggregation. Best of 3 runs.
    Both results are checked against each other (same OHLCV per symbol and minute).

(b) Through the local stack: start ``python -m localrun`` on free ports (as the e2e fixture does, with the
    production schedule period unless --schedule-seconds says otherwise), POST the N ticks to /ingest as JSON
    arrays of --batch ticks (in time order, as a feed would send them), wait until the pipeline is done,
    check that every 1-minute bar is what the ticks give, and count the AWS requests it took.

How AWS requests are counted: with moto's own request recorder. moto records every request that reaches
any of its service backends (S3, SQS, DynamoDB, EventBridge, ...) into the file named by
MOTO_RECORDER_FILEPATH while recording is on (POST /moto-api/recorder/start-recording). The emulator is the
only AWS endpoint of every component (the API process `chalice local`, and the driver that runs the S3,
SQS, EventBridge and schedule handlers), so the recording holds ALL of their requests, counted where
they arrive, with nothing patched in the code under test. Recording starts after provisioning and stops
once the pipeline has gone quiet: no request other than an SQS ReceiveMessage (the event-source pollers)
for --quiet-seconds. The bench watches the recording itself for that, so it does not add requests of its
own; the bars are then read through the API after the recording has stopped. The service is read from
each request's SigV4 credential scope, the operation from X-Amz-Target (JSON protocols) or from the
method and path (S3). ReceiveMessage calls are shown apart: the pollers make them continuously (long polls
of 1 s on two processor threads and one event thread), so their number depends on wall time, not on ticks.

Usage: python scripts/bench.py [--ticks N] [--skip-stack]      (make bench ARGS="--ticks 20000")
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pydantic import BaseModel  # noqa: E402

from chalicelib.domain.bars import partials_from_ticks  # noqa: E402
from chalicelib.domain.csv_rows import parse_csv_document  # noqa: E402
from chalicelib.domain.formats import ParseContext, parse_json_document  # noqa: E402

BASE_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
MINUTE_MS = 60_000
IDLE_OPERATIONS = {("sqs", "ReceiveMessage")}

Window = tuple[str, int]  # (symbol, minute start in epoch ms)
Ohlcv = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


# ---------------------------------------------------------------------------------------------- data


def synthetic_ticks(n: int, symbols: int, hours: float, seed: int = 7) -> list[tuple[str, str, str, int, int]]:
    """(symbol, price, volume, timestamp ms, trade id), in time order; timestamps are unique per symbol."""
    rng = random.Random(seed)
    span = int(hours * 3600 * 1000)
    ticks: list[tuple[str, str, str, int, int]] = []
    for s in range(symbols):
        count = n // symbols + (1 if s < n % symbols else 0)
        symbol = f"BENCH{s}"
        cents = 10_000 + 5_000 * s
        for i, offset in enumerate(sorted(rng.sample(range(span), count))):
            cents = max(1, cents + rng.randint(-5, 5))
            volume = Decimal(rng.randint(1, 4000)) / 1000
            ticks.append((symbol, f"{cents // 100}.{cents % 100:02d}", str(volume), BASE_MS + offset, i + 1))
    ticks.sort(key=lambda t: (t[3], t[0]))
    return ticks


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def json_body(ticks: list[tuple[str, str, str, int, int]]) -> str:
    return "[" + ",".join(
        f'{{"symbol":"{s}","price":{p},"volume":{v},"timestamp":"{iso_ms(ts)}","trade_id":"{tid}"}}'
        for s, p, v, ts, tid in ticks) + "]"


def csv_body(ticks: list[tuple[str, str, str, int, int]]) -> str:
    return "timestamp,symbol,price,volume,trade_id\n" + "".join(
        f"{iso_ms(ts)},{s},{p},{v},{tid}\n" for s, p, v, ts, tid in ticks)


def expected_minute_bars(ticks: list[tuple[str, str, str, int, int]]) -> dict[Window, Ohlcv]:
    """Plain OHLCV per (symbol, minute) of ticks in time order."""
    out: dict[Window, list[Decimal]] = {}
    for s, p, v, ts, _ in ticks:
        price, volume = Decimal(p), Decimal(v)
        key = (s, ts - ts % MINUTE_MS)
        acc = out.get(key)
        if acc is None:
            out[key] = [price, price, price, price, volume]
        else:
            acc[1], acc[2], acc[3], acc[4] = max(acc[1], price), min(acc[2], price), price, acc[4] + volume
    return {k: (a[0], a[1], a[2], a[3], a[4]) for k, a in out.items()}


# ---------------------------------------------------------------------------------------------- (a) in-process


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


def bench_in_process(ticks: list[tuple[str, str, str, int, int]], runs: int = 3) -> None:
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
    print(f"(a) validate + aggregate in-process: {n:,} synthetic ticks, {len(expected):,} one-minute windows, "
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


# ---------------------------------------------------------------------------------------------- (b) stack


class Recording:
    """Reads moto's request recording as it grows; classifies each request as (service, operation)."""

    _SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.pending = ""
        self.counts: Counter[tuple[str, str]] = Counter()
        self.decoder = json.JSONDecoder()

    def read_new(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open("r", encoding="utf-8", errors="replace") as f:
            f.seek(self.offset)
            chunk = f.read()
            self.offset = f.tell()
        text = self.pending + chunk
        seen, i = [], 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            try:
                entry, i = self.decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                break  # an entry still being written: keep it for the next read
            seen.append(self.classify(entry))
        self.pending = text[i:]
        self.counts.update(seen)
        return seen

    @classmethod
    def classify(cls, entry: dict[str, Any]) -> tuple[str, str]:
        headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
        match = cls._SCOPE.search(headers.get("authorization", ""))
        service = match.group(1) if match else "unsigned"
        target = headers.get("x-amz-target")
        if target:
            return service, target.rsplit(".", 1)[-1]
        method = entry.get("method", "?")
        url = entry.get("url", "")
        path, _, query = url.partition("?")
        if service == "s3":
            is_object = path.count("/") >= 2 or ("/" in path.lstrip("/") and not path.endswith("/"))
            operation = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject",
                         "POST": "PostObject"}.get(method, method) if is_object else f"{method} bucket"
            if "range" in headers and method == "GET":
                operation = "GetObject (range)"
            return service, operation
        action = re.search(r"(?:^|&)Action=([A-Za-z]+)", query or entry.get("body") or "")
        return service, action.group(1) if action else f"{method} {path}"


def moto_api(endpoint: str, action: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/recorder/{action}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()


def bench_stack(ticks: list[tuple[str, str, str, int, int]], batch: int, schedule_seconds: float,
                quiet_seconds: float, timeout: float) -> int:
    from localrun.control import running_local_stack, wait_for

    n = len(ticks)
    bodies = [json_body(ticks[i : i + batch]) for i in range(0, n, batch)]
    expected = expected_minute_bars(ticks)
    symbols = sorted({s for s, _ in expected})
    print(f"(b) through the local stack: {n:,} ticks, {len(symbols)} symbols, {len(expected):,} one-minute windows, "
          f"posted as {len(bodies)} JSON requests of up to {batch:,} ticks")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        record_path = Path(tmp) / "moto-recording.jsonl"
        started = time.monotonic()
        with running_local_stack(Path(tmp) / "localrun.log", schedule_seconds=schedule_seconds,
                                 extra_env={"MOTO_RECORDER_FILEPATH": str(record_path)}) as stack:
            print(f"    stack up in {time.monotonic() - started:.1f}s "
                  f"(API {stack.api_url}, emulator {stack.endpoint_url})")
            recording = Recording(record_path)
            moto_api(stack.endpoint_url, "reset-recording")
            moto_api(stack.endpoint_url, "start-recording")
            t0 = time.monotonic()
            for body in bodies:
                resp = stack.post_ingest(body, "application/json")
                if resp.status != 202:
                    raise SystemExit(f"POST /ingest answered {resp.status}: {resp.body[:500]!r}")
            posted = time.monotonic() - t0
            last_work = time.monotonic()
            while True:
                if any(op not in IDLE_OPERATIONS for op in recording.read_new()):
                    last_work = time.monotonic()
                if time.monotonic() - last_work >= quiet_seconds:
                    break
                if time.monotonic() - t0 > timeout:
                    raise SystemExit(f"the pipeline did not go quiet within {timeout:.0f}s")
                time.sleep(0.2)
            moto_api(stack.endpoint_url, "stop-recording")
            recording.read_new()
            done = last_work - t0

            def complete() -> bool:
                got: dict[Window, Ohlcv] = {}
                for symbol in symbols:
                    for bar in stack.bars(symbol, "1m"):
                        start_ms = int(datetime.strptime(bar["start"], "%Y-%m-%dT%H:%M:%SZ")
                                       .replace(tzinfo=UTC).timestamp() * 1000)
                        got[(symbol, start_ms)] = tuple(Decimal(bar[k]) for k in  # type: ignore[assignment]
                                                        ("open", "high", "low", "close", "volume"))
                assert got == expected, f"{sum(1 for k in expected if got.get(k) != expected[k])} window(s) differ"
                return True

            try:
                complete()
            except AssertionError as exc:
                wait_for(complete, timeout, "the bars")  # raises if they never arrive
                print(f"    WARNING: the recording stopped before the bars were complete ({exc}); "
                      "the counts below miss requests. Raise --quiet-seconds.")
                return 1
    print(f"    wall time: POSTs {posted:.1f}s ({n / posted:,.0f} ticks/s accepted); all bars in after {done:.1f}s "
          f"({n / done:,.0f} ticks/s end to end); verified: every 1m bar equals the ticks' OHLCV")
    report_counts(recording.counts, n)
    return 0


def report_counts(counts: Counter[tuple[str, str]], n: int) -> None:
    per_k = 1000 / n
    work = Counter({k: v for k, v in counts.items() if k not in IDLE_OPERATIONS})
    idle = sum(v for k, v in counts.items() if k in IDLE_OPERATIONS)
    by_service: Counter[str] = Counter()
    for (service, _), v in work.items():
        by_service[service] += v
    print(f"    AWS requests (moto's recorder), excluding {idle:,} SQS ReceiveMessage polls (time-based):")
    print(f"      {'service':<10} {'operation':<24} {'requests':>10} {'per 1,000 ticks':>16}")
    for service, total in by_service.most_common():
        ops = sorted(((op, v) for (s, op), v in work.items() if s == service), key=lambda x: -x[1])
        for op, v in ops:
            print(f"      {service:<10} {op:<24} {v:>10,} {v * per_k:>16.2f}")
        print(f"      {service:<10} {'(total)':<24} {total:>10,} {total * per_k:>16.2f}")
    total = sum(work.values())
    print(f"      {'all':<10} {'(total)':<24} {total:>10,} {total * per_k:>16.2f}")
    print(f"      {'sqs':<10} {'ReceiveMessage (polls)':<24} {idle:>10,} {idle * per_k:>16.2f}")
    print(f"      {'all':<10} {'(with polls)':<24} {total + idle:>10,} {(total + idle) * per_k:>16.2f}")


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=100_000, help="number of synthetic ticks (default 100000)")
    parser.add_argument("--skip-stack", action="store_true", help="only the in-process benchmark (a)")
    parser.add_argument("--symbols", type=int, default=5, help="symbols the ticks are spread over (default 5)")
    parser.add_argument("--hours", type=float, default=6, help="time span of the ticks in hours (default 6)")
    parser.add_argument("--batch", type=int, default=5_000,
                        help="ticks per POST /ingest (default 5000: about 500 kB, under the body limit)")
    parser.add_argument("--schedule-seconds", type=float, default=300,
                        help="period of the scheduled aggregator in the stack (default 300, as deployed)")
    parser.add_argument("--quiet-seconds", type=float, default=10,
                        help="the pipeline is done after this long without a request other than polls (default 10)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up on the stack after this long (s)")
    args = parser.parse_args(argv)
    if args.ticks < args.symbols:
        parser.error("--ticks must be at least --symbols")

    started = time.monotonic()
    ticks = synthetic_ticks(args.ticks, args.symbols, args.hours)
    bench_in_process(ticks)
    status = 0
    if not args.skip_stack:
        status = bench_stack(ticks, args.batch, args.schedule_seconds, args.quiet_seconds, args.timeout)
    print(f"\nbench wall time: {time.monotonic() - started:.1f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
