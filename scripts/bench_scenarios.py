"""The benchmark's scenarios through the local stack, each in a stack of its own.

Every scenario starts ``python -m localrun`` on free ports in a temporary directory (moto's request recorder on),
plus a second API process (``chalice local`` on the same emulator) that serves the benchmark's own reads, so the
AWS requests those reads cause can be told apart (see bench_recording.py). It then feeds the stack, waits until
the bars are ready, compares them with bars computed from the ticks here, and reports:

- last request → ready: from the last response to POST /ingest (or the end of the upload) to the moment the bars
  were seen complete: every polled ingestion answering ``"bars": "ready"`` where GET /ingestions/{id} has that
  field, else the 1d bars of every symbol equal to the reference; in both cases confirmed by a full comparison;
- AWS requests per 1,000 ticks by service and operation, and the estimated DynamoDB write units;
- whether the bars equal the reference: every 1m bar of every symbol, and the 1h and 1d bars of a sample of
  symbols against a roll-up of the reference minute bars.

Recording starts once the stack is up and stops when the bars are ready and the pipeline has made no write
request for --quiet-seconds (at most --settle-seconds), so requests made after "ready" are counted too.
"""

from __future__ import annotations

import argparse
import calendar
import functools
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import bench_bars
from bench_data import (
    MINUTE_MS,
    Ohlcv,
    TickRow,
    Window,
    expected_minute_bars,
    json_body,
    roll_up,
    streamed_ticks,
    synthetic_ticks,
    write_csv,
)
from bench_recording import BATCH_WRITE_ITEMS, BENCH_CLIENT_APP, BENCH_READER_APP, Tally, Watch, tally

from chalicelib.domain.ingestion import object_ingestion_id, real_version
from chalicelib.settings import Settings, resource_names
from localrun.control import (
    REPO_ROOT,
    LocalStack,
    Response,
    child_environment,
    free_port,
    running_local_stack,
    stop_local_stack,
    wait_for,
)
from localrun.provision import events_queue_name
from localrun.stage import stage_environment

STAGE = "dev"
INGEST_QUEUE = resource_names(STAGE)["QUEUE_NAME"]
EVENTS_QUEUE = events_queue_name(Settings(stage=STAGE))
LEVELS = ("1m", "5m", "15m", "1h", "1d")
FIELDS = ("open", "high", "low", "close", "volume")
ROLLUP_SAMPLE = 10  # symbols whose 1h and 1d bars are compared
STATUS_WATCH = 5  # of thousands of ingestions, the last ones whose status is polled
GIVEN_UP = ("rejected", "failed", "stalled", "superseded")


class ScenarioError(Exception):
    """A scenario could not run to its end (the stack refused input, an ingestion failed...)."""


@dataclass
class Options:
    schedule_seconds: float
    quiet_seconds: float
    settle_seconds: float
    poll_seconds: float
    timeout: float
    keep_logs: Path | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Options:
        return cls(args.schedule_seconds, args.quiet_seconds, args.settle_seconds, args.poll_seconds, args.timeout,
                   args.keep_logs)


@dataclass
class Result:
    """One line of the summary."""

    scenario: str
    ticks: int
    ready_s: float | None = None
    requests_per_k: float | None = None
    units_per_k: float | None = None
    equal: str = "-"

    @property
    def failed(self) -> bool:
        return self.equal != "yes"


# ---------------------------------------------------------------------------------------------- the stack


@dataclass
class ReaderApi(LocalStack):
    """The API process that answers the benchmark's reads; counts the HTTP requests made to it."""

    calls: int = 0

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> Response:
        self.calls += 1
        return super().request(method, path, body, headers, timeout)


@dataclass
class Session:
    stack: LocalStack  # the stack under test: POST /ingest goes to its API
    reader: ReaderApi
    recording: Path
    _s3: Any = field(default=None, repr=False)

    @property
    def s3(self) -> Any:
        """The benchmark's own S3 client (its requests are marked as the benchmark's)."""
        if self._s3 is None:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]

            self._s3 = boto3.client("s3", endpoint_url=self.stack.endpoint_url, region_name="us-east-1",
                                    aws_access_key_id="testing", aws_secret_access_key="testing",
                                    config=Config(user_agent_appid=BENCH_CLIENT_APP))
        return self._s3

    def recorder(self, action: str) -> None:
        request = urllib.request.Request(f"{self.stack.endpoint_url}/moto-api/recorder/{action}", data=b"",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()

    def start_recording(self) -> None:
        self.recorder("reset-recording")
        self.recorder("start-recording")

    def tally(self) -> Tally:
        return tally(self.recording, EVENTS_QUEUE, INGEST_QUEUE)


def start_reader(stack: LocalStack, log_path: Path, timeout: float = 60) -> ReaderApi:
    """`chalice local` for the stage on a free port, against the stack's emulator, its AWS clients marked with
    the user-agent app id BENCH_READER_APP."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_environment({**stage_environment(STAGE, stack.endpoint_url), "API_BASE_URL": url,
                             "AWS_SDK_UA_APP_ID": BENCH_READER_APP})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "chalice"), "local", "--host", "127.0.0.1", "--port", str(port),
             "--stage", STAGE, "--no-autoreload"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    reader = ReaderApi(api_url=url, endpoint_url=stack.endpoint_url, bucket=stack.bucket, process=process,
                       log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if reader.get("/symbols").status == 200:
                reader.calls = 0
                return reader
        except RuntimeError as exc:
            raise ScenarioError(f"the reader API exited while starting:\n{reader.log_tail()}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_local_stack(process)
            raise ScenarioError(f"the reader API was not ready within {timeout:.0f}s:\n{reader.log_tail()}")
        time.sleep(0.2)


@contextmanager
def bench_session(name: str, tmp: Path, options: Options) -> Iterator[Session]:
    recording = tmp / "moto-recording.jsonl"
    started = time.monotonic()
    try:
        with running_local_stack(tmp / "localrun.log", schedule_seconds=options.schedule_seconds,
                                 extra_env={"MOTO_RECORDER_FILEPATH": str(recording)}) as stack:
            reader = start_reader(stack, tmp / "reader.log")
            print(f"    stack up in {time.monotonic() - started:.1f}s (API {stack.api_url}, emulator "
                  f"{stack.endpoint_url}; the benchmark reads through {reader.api_url})", flush=True)
            try:
                yield Session(stack, reader, recording)
            finally:
                stop_local_stack(reader.process)
    finally:
        if options.keep_logs is not None:
            options.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in ("localrun.log", "reader.log", recording.name):
                if (tmp / log).exists():
                    shutil.copyfile(tmp / log, options.keep_logs / f"{name}-{log}")


# ---------------------------------------------------------------------------------------------- the reference


def start_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


def by_symbol(bars: dict[Window, Ohlcv]) -> dict[str, dict[int, Ohlcv]]:
    out: dict[str, dict[int, Ohlcv]] = {}
    for (symbol, start), bar in bars.items():
        out.setdefault(symbol, {})[start] = bar
    return out


@dataclass
class Reference:
    """The bars the ticks give: 1m of every symbol, 1h and 1d of a sample, and how many bars there are."""

    symbols: list[str]
    bars: dict[str, dict[str, dict[int, Ohlcv]]]  # interval -> symbol -> start ms -> OHLCV
    sample: list[str]
    counts: dict[str, int]  # bars per interval, all symbols

    @classmethod
    def of(cls, minute: dict[Window, Ohlcv]) -> Reference:
        counts = {"1m": len(minute)}
        bars = {"1m": by_symbol(minute)}
        for interval in LEVELS[1:]:
            rolled = roll_up(minute, interval)
            counts[interval] = len(rolled)
            if interval in ("1h", "1d"):
                bars[interval] = by_symbol(rolled)
        symbols = sorted(bars["1m"])
        step = max(1, math.ceil(len(symbols) / ROLLUP_SAMPLE))
        return cls(symbols, bars, symbols[::step][:ROLLUP_SAMPLE], counts)

    @property
    def windows(self) -> int:
        return self.counts["1m"]


def api_bars(reader: LocalStack, symbol: str, interval: str) -> dict[int, Ohlcv]:
    out: dict[int, Ohlcv] = {}
    for bar in reader.bars(symbol, interval):
        o, h, lo, c, v = (Decimal(bar[k]) for k in FIELDS)
        out[start_ms(bar["start"])] = (o, h, lo, c, v)
    return out


def differing(expected: dict[int, Ohlcv], got: dict[int, Ohlcv]) -> int:
    return sum(1 for start in expected.keys() | got.keys() if expected.get(start) != got.get(start))


@dataclass
class Check:
    differ: dict[str, int]  # interval -> windows that differ from the reference (missing, extra or unequal)
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(self.differ.values())

    def describe(self, ref: Reference) -> str:
        if self.ok:
            return (f"yes: every 1m bar of {len(ref.symbols)} symbol(s), and the 1h and 1d bars of "
                    f"{len(ref.sample)}, equal the reference")
        return "no: " + ", ".join(f"{n:,} {iv} window(s) differ" for iv, n in self.differ.items() if n)


def full_check(reader: LocalStack, ref: Reference) -> Check:
    started = time.monotonic()
    differ = dict.fromkeys(("1m", "1h", "1d"), 0)
    for symbol in ref.symbols:
        differ["1m"] += differing(ref.bars["1m"][symbol], api_bars(reader, symbol, "1m"))
    for interval in ("1h", "1d"):
        for symbol in ref.sample:
            differ[interval] += differing(ref.bars[interval][symbol], api_bars(reader, symbol, interval))
    return Check(differ, time.monotonic() - started)


# ---------------------------------------------------------------------------------------------- waiting for bars


@dataclass
class Readiness:
    ready_s: float | None = None  # last request → bars seen complete and confirmed
    processed_s: float | None = None  # last request → every watched ingestion "processed"
    status_ready_s: float | None = None  # last request → every watched ingestion said "bars": "ready"
    field: bool | None = None  # whether GET /ingestions/{id} has the "bars" field
    signal: str = ""
    check: Check | None = None
    failed_checks: int = 0
    last_status: str = ""  # the last status document polled, in short


def ingestion_doc(reader: LocalStack, ingestion_id: str) -> dict[str, Any] | None:
    resp = reader.ingestion(ingestion_id)
    if resp.status == 404:
        return None  # not recorded yet (an upload's event is still on its way)
    if resp.status != 200:
        raise ScenarioError(f"GET /ingestions/{ingestion_id} answered {resp.status}: {resp.body[:300]!r}")
    doc: dict[str, Any] = resp.json()
    return doc


def wait_ready(session: Session, ref: Reference, ingestion_ids: list[str], last_request: float, options: Options,
               need_processed: bool = False) -> Readiness:
    """Poll (lightly) until the bars are complete, then confirm with a full comparison.

    Ingestions are polled one at a time, the first that is not done yet, so a poll costs one request while the
    pipeline works. Without the status's "bars" field, completeness is seen in the 1d bars, one symbol at a time
    (each symbol found complete is not read again before the full comparison).
    """
    reader = session.reader
    out = Readiness()
    watching = list(ingestion_ids)
    processed_left = set(ingestion_ids) if need_processed else set()
    bars_left = set(ingestion_ids)
    complete_symbols = 0
    seen_complete: float | None = None
    next_full = 0.0
    deadline = last_request + options.timeout
    while True:
        now = time.monotonic()
        while watching:
            ingestion_id = watching[0]
            doc = ingestion_doc(reader, ingestion_id)
            if doc is None:
                out.last_status = f"{ingestion_id}: not found yet"
                break
            chunks = doc.get("chunks") or {}
            out.last_status = (f"{ingestion_id}: {doc.get('status')}, chunks {chunks.get('processed')}/"
                               f"{chunks.get('total')}" + (f', bars {doc["bars"]}' if "bars" in doc else ""))
            if doc.get("status") in GIVEN_UP:
                raise ScenarioError(f"ingestion {ingestion_id} is {doc.get('status')}: {doc.get('errors')}")
            if doc.get("status") == "processed":
                processed_left.discard(ingestion_id)
            if "bars" in doc:
                out.field = True
                if doc["bars"] == "ready":
                    bars_left.discard(ingestion_id)
            elif out.field is None:
                out.field = False
            if ingestion_id in processed_left or (out.field and ingestion_id in bars_left):
                break
            watching.pop(0)
            if out.field is False and not processed_left:
                watching.clear()  # nothing more to learn from the statuses
        now = time.monotonic()
        if need_processed and not processed_left and out.processed_s is None:
            out.processed_s = now - last_request
        if out.field and not bars_left and out.status_ready_s is None:
            out.status_ready_s = now - last_request
        if not processed_left and out.field is not None:
            if out.field:
                complete = not bars_left
            else:
                while complete_symbols < len(ref.symbols):
                    symbol = ref.symbols[complete_symbols]
                    if differing(ref.bars["1d"][symbol], api_bars(reader, symbol, "1d")):
                        break
                    complete_symbols += 1
                complete = complete_symbols == len(ref.symbols)
            if complete and seen_complete is None:
                seen_complete = time.monotonic()
            if seen_complete is not None and time.monotonic() >= next_full:
                out.check = full_check(reader, ref)
                if out.check.ok:
                    out.ready_s = seen_complete - last_request
                    out.signal = ('every watched ingestion said "bars": "ready"' if out.field else
                                  "the 1d bars of every symbol equalled the reference")
                    return out
                out.failed_checks += 1
                seen_complete, complete_symbols = None, 0
                next_full = time.monotonic() + max(2.0, 2 * out.check.seconds)
        if time.monotonic() > deadline:
            out.check = full_check(reader, ref)  # what is still missing, for the report
            return out
        time.sleep(options.poll_seconds)


def settle(session: Session, options: Options, readiness: Readiness) -> str:
    """Wait until the pipeline has made no write request for quiet_seconds (at most settle_seconds)."""
    watch = Watch(session.recording)
    deadline = time.monotonic() + options.settle_seconds
    while watch.quiet_for() < options.quiet_seconds and time.monotonic() < deadline:
        time.sleep(0.5)
        watch.poll()
    session.recorder("stop-recording")
    if watch.quiet_for() < options.quiet_seconds:
        busy = ", ".join(f"{op} {n}" for op, n in watch.recent.most_common(4))
        when = "the bars were ready" if readiness.ready_s is not None else "the timeout"
        return (f"WARNING: the pipeline was still writing {options.settle_seconds:.0f}s after {when} ({busy}); "
                "the counts stop there")
    return ""


# ---------------------------------------------------------------------------------------------- reporting


def per_k(value: float, ticks: int) -> float:
    return value * 1000 / ticks if ticks else 0.0


def print_requests(t: Tally, ticks: int, bench_calls: int) -> None:
    work = {(sv, op): s for (c, sv, op), s in t.ops.items() if c == "work"}
    services: dict[str, int] = {}
    for (service, _), s in work.items():
        services[service] = services.get(service, 0) + s.requests
    print("    AWS requests of the pipeline (moto's recorder), per 1,000 ticks; DynamoDB write units estimated from "
          "the request bodies:")
    print(f"      {'service':<10} {'operation':<28} {'requests':>10} {'per 1k ticks':>13} {'write units':>12} "
          f"{'per 1k ticks':>13}")
    for service, total in sorted(services.items(), key=lambda x: -x[1]):
        rows = sorted(((op, s) for (sv, op), s in work.items() if sv == service), key=lambda x: -x[1].requests)
        for op, s in rows:
            wu = f"{s.write_units:>12,} {per_k(s.write_units, ticks):>13.2f}" if s.write_units else ""
            print(f"      {service:<10} {op:<28} {s.requests:>10,} {per_k(s.requests, ticks):>13.2f} {wu}")
        units = sum(s.write_units for (sv, _), s in work.items() if sv == service)
        wu = f"{units:>12,} {per_k(units, ticks):>13.2f}" if units else ""
        print(f"      {service:<10} {'(total)':<28} {total:>10,} {per_k(total, ticks):>13.2f} {wu}")
    total, units = sum(services.values()), t.write_units()
    print(f"      {'all':<10} {'(total)':<28} {total:>10,} {per_k(total, ticks):>13.2f} {units:>12,} "
          f"{per_k(units, ticks):>13.2f}")
    reads, consistent = t.reads()
    checks = t.condition_checks()
    print(f"    DynamoDB reads: {reads:,} requests ({per_k(reads, ticks):.2f} per 1k ticks), {consistent:,} of them "
          f"strongly consistent; read units not estimated (the recorder keeps requests, not responses)"
          + (f"; transaction ConditionChecks: {checks:,}" if checks else ""))
    polls, local = t.total("poll"), t.total("local")
    bench_read, bench_client = t.total("bench-read"), t.total("bench-client")
    print(f"    not counted above: {polls:,} SQS ReceiveMessage on the processing queue (long polls: their number "
          f"follows wall time); {local:,} requests of the driver to its local events queue (stands in for "
          f"EventBridge invoking Lambda)")
    detail = ", ".join(f"{sv} {op} {s.requests:,}" for (c, sv, op), s in sorted(t.ops.items())
                       if c == "bench-read")
    print(f"    the benchmark's own reads: {bench_calls:,} API requests (GET /bars, GET /ingestions/{{id}}), which "
          f"made {bench_read:,} AWS requests ({detail or 'none'})"
          + (f"; its uploads and deletes: {bench_client:,}" if bench_client else ""))
    if t.damaged:
        imputed = sum(s.imputed for s in t.ops.values())
        print(f"    note: {t.damaged:,} recorded line(s) were not one JSON entry (moto's recorder writes entries from "
              f"concurrent threads without a lock, so long ones can interleave): the {imputed:,} request(s) whose "
              f"head could be read are counted above, with the mean write units of their operation "
              f"({', '.join(f'{op} {n}' for op, n in t.damaged_targets.most_common(4))})")


def print_readiness(r: Readiness, ref: Reference, what: str, timeout: float) -> None:
    status = {None: "not polled", True: "present", False: "absent"}[r.field]
    if r.ready_s is not None:
        confirm = r.check.seconds if r.check else 0.0
        earlier = f"; {r.failed_checks} earlier comparison(s) failed" if r.failed_checks else ""
        print(f"    {what} → bars ready: {r.ready_s:.1f}s (seen when {r.signal}; confirmed by a full comparison "
              f"of {confirm:.1f}s{earlier})")
    else:
        print(f"    {what} → bars ready: not within the timeout ({timeout:.0f}s); last status polled: "
              f"{r.last_status or '-'}")
    print(f'    GET /ingestions/{{id}} "bars" field: {status}'
          + (f'; "ready" after {r.status_ready_s:.1f}s' if r.status_ready_s is not None else ""))
    if r.field and r.status_ready_s is not None and r.ready_s is not None and r.status_ready_s + 1 < r.ready_s:
        print(f'    WARNING: the status said "ready" {r.ready_s - r.status_ready_s:.1f}s before the bars equalled '
              f"the reference")
    if r.check is not None:
        print(f"    bars equal the reference: {r.check.describe(ref)}")


SQS_BATCH = 10  # messages per processor invocation, at most (the event source mapping's batch size)


@dataclass
class Floor:
    posts: int
    messages: int
    partial_writes: int
    bars: int
    symbols: int
    exact_partials: bool

    @property
    def total(self) -> int:
        return 2 * self.posts + 3 * self.batches + self.partial_writes + math.ceil(
            self.bars / BATCH_WRITE_ITEMS) + len(LEVELS) * self.symbols

    @property
    def batches(self) -> int:
        return math.ceil(self.messages / SQS_BATCH)


def rest_floor(posts: int, post_windows: list[int], t: Tally, ref: Reference) -> Floor:
    windows = t.message_windows
    if windows and all(w is not None for w in windows):
        partials = math.ceil(sum(w for w in windows if w is not None) / BATCH_WRITE_ITEMS)
        return Floor(posts, len(windows), partials, sum(ref.counts.values()), len(ref.symbols), True)
    partials = math.ceil(sum(post_windows) / BATCH_WRITE_ITEMS)
    return Floor(posts, max(len(windows), posts), partials, sum(ref.counts.values()), len(ref.symbols), False)


def print_floor(floor: Floor, t: Tally) -> None:
    bar_writes = math.ceil(floor.bars / BATCH_WRITE_ITEMS)
    queries = len(LEVELS) * floor.symbols
    print("    floor, the fewest requests for this input = 2 per POST (ingestion record, queue send)"
          f" + 3 per batch of {SQS_BATCH} queue messages (receive, delete, chunk results) + ⌈partials/25⌉"
          " BatchWriteItem + ⌈bars of 1m,5m,15m,1h,1d / 25⌉ + one query per symbol and interval")
    source = "from the queued messages" if floor.exact_partials else "per POST (queued messages not readable)"
    print(f"      = 2×{floor.posts:,} + 3×⌈{floor.messages:,}/{SQS_BATCH}⌉ + {floor.partial_writes:,} ({source}) "
          f"+ ⌈{floor.bars:,}/25⌉={bar_writes:,} + 5×{floor.symbols}={queries:,} = {floor.total:,}")
    work = t.total("work")
    deliveries = t.total("work", "sqs", "DeleteMessageBatch") + t.total("work", "sqs", "DeleteMessage")
    measured = work + deliveries
    print(f"      measured: {work:,} requests + {deliveries:,} ReceiveMessage that delivered messages (one per "
          f"delete batch) = {measured:,}, {measured / floor.total:.2f}× the floor")


# ---------------------------------------------------------------------------------------------- REST scenarios


def run_rest(name: str, ticks: list[TickRow], batch: int, options: Options, description: str) -> Result:
    chunks = [ticks[i : i + batch] for i in range(0, len(ticks), batch)]
    bodies = [json_body(chunk) for chunk in chunks]
    post_windows = [len({(s, ts - ts % MINUTE_MS) for s, _, _, ts, _ in chunk}) for chunk in chunks]
    ref = Reference.of(expected_minute_bars(ticks))
    n = len(ticks)
    print(f"[{name}] {n:,} ticks, {description}, {ref.windows:,} one-minute windows; {len(bodies)} POST /ingest of "
          f"up to {batch:,} ticks", flush=True)
    result = Result(name, n)
    with (tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp,
          bench_session(name, Path(tmp), options) as session):
        session.start_recording()
        started = time.monotonic()
        ids = []
        for body in bodies:
            resp = session.stack.post_ingest(body, "application/json")
            if resp.status != 202:
                raise ScenarioError(f"POST /ingest answered {resp.status}: {resp.body[:500]!r}")
            ids.append(resp.json()["ingestion_id"])
        last = time.monotonic()
        print(f"    POSTs: {last - started:.1f}s ({n / (last - started):,.0f} ticks/s accepted)", flush=True)
        readiness = wait_ready(session, ref, ids, last, options)
        warning = settle(session, options, readiness)
        t = session.tally()
        print_readiness(readiness, ref, "last response", options.timeout)
        print_requests(t, n, session.reader.calls)
        print_floor(rest_floor(len(bodies), post_windows, t, ref), t)
        if warning:
            print("    " + warning)
    return finish(result, readiness, t, ref)


def finish(result: Result, readiness: Readiness, t: Tally, ref: Reference) -> Result:
    result.ready_s = readiness.ready_s
    result.requests_per_k = per_k(t.total("work"), result.ticks)
    result.units_per_k = per_k(t.write_units(), result.ticks)
    if readiness.check is None:
        result.equal = "not checked"
    elif readiness.check.ok:
        result.equal = "yes"
    else:
        result.equal = "no (" + ", ".join(f"{n:,} {iv}" for iv, n in readiness.check.differ.items() if n) + ")"
        if readiness.ready_s is None:
            result.equal += ", timed out"
    print(flush=True)
    return result


def rest(args: argparse.Namespace) -> Result:
    ticks = synthetic_ticks(args.ticks, args.symbols, args.hours)
    return run_rest("rest", ticks, args.batch, Options.of(args), f"{args.symbols} symbols over {args.hours:g} h")


def breadth(args: argparse.Namespace) -> Result:
    n = args.breadth_ticks if args.breadth_ticks is not None else args.ticks
    ticks = synthetic_ticks(n, args.breadth_symbols, args.breadth_hours)
    return run_rest("breadth", ticks, args.batch, Options.of(args),
                    f"{args.breadth_symbols} symbols over {args.breadth_hours:g} h")


# ---------------------------------------------------------------------------------------------- live


class LiveFeed:
    """Ticks stamped with the current time, strictly increasing per symbol (so no two tie), shared by the
    client threads."""

    def __init__(self, symbols: int, seed: int) -> None:
        self.symbols = [f"LIVE{i}" for i in range(symbols)]
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._cents = {s: 10_000 + 5_000 * i for i, s in enumerate(self.symbols)}
        self._last = dict.fromkeys(self.symbols, 0)
        self._trades = dict.fromkeys(self.symbols, 0)

    def ticks(self, count: int) -> list[TickRow]:
        out = []
        with self._lock:
            now = time.time_ns() // 1_000_000
            for _ in range(count):
                symbol = self._rng.choice(self.symbols)
                ts = max(now, self._last[symbol] + 1)
                self._last[symbol] = ts
                self._trades[symbol] += 1
                cents = self._cents[symbol] = max(1, self._cents[symbol] + self._rng.randint(-5, 5))
                volume = Decimal(self._rng.randint(1, 4000)) / 1000
                out.append((symbol, f"{cents // 100}.{cents % 100:02d}", str(volume), ts, self._trades[symbol]))
        return out


def live(args: argparse.Namespace) -> Result:
    options = Options.of(args)
    feed = LiveFeed(args.live_symbols, seed=23)
    print(f"[live] {args.live_threads} client threads posting 1–{args.live_max_ticks} ticks of current time per "
          f"request for {args.live_seconds:g}s over {args.live_symbols} symbols", flush=True)
    accepted: list[TickRow] = []
    post_windows: list[int] = []
    done: list[tuple[float, str]] = []
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    with (tempfile.TemporaryDirectory(prefix="bench-live-") as tmp,
          bench_session("live", Path(tmp), options) as session):

        def client(number: int, until: float) -> None:
            rng = random.Random(1000 + number)
            while time.monotonic() < until:
                ticks = feed.ticks(rng.randint(1, args.live_max_ticks))
                sent = time.monotonic()
                try:
                    resp = session.stack.post_ingest(json_body(ticks), "application/json")
                except Exception as exc:  # a refused connection is a result too
                    with lock:
                        failures.append(repr(exc)[:200])
                    continue
                answered = time.monotonic()
                with lock:
                    latencies.append(answered - sent)
                    if resp.status == 202:
                        accepted.extend(ticks)
                        post_windows.append(len({(s, ts - ts % MINUTE_MS) for s, _, _, ts, _ in ticks}))
                        done.append((answered, resp.json()["ingestion_id"]))
                    else:
                        failures.append(f"{resp.status} {resp.body[:200]!r}")

        session.start_recording()
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(i, started + args.live_seconds), daemon=True)
                   for i in range(args.live_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not done:
            raise ScenarioError(f"no POST /ingest was accepted: {failures[:3]}")
        done.sort()
        last = done[-1][0]
        accepted.sort(key=lambda tick: (tick[3], tick[0]))
        n = len(accepted)
        result = Result("live", n)
        ref = Reference.of(expected_minute_bars(accepted))
        quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        print(f"    {len(done):,} POSTs accepted in {last - started:.1f}s ({len(done) / (last - started):,.0f}/s, "
              f"{n:,} ticks, {n / (last - started):,.0f} ticks/s), {ref.windows:,} one-minute windows; latency p50 "
              f"{quantiles[49] * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms; refused: {len(failures):,}"
              + (f" (first: {failures[0]}; their ticks are left out of the reference)" if failures else ""),
              flush=True)
        watched = [ingestion_id for _, ingestion_id in done[-STATUS_WATCH:]]
        readiness = wait_ready(session, ref, watched, last, options)
        warning = settle(session, options, readiness)
        t = session.tally()
        print_readiness(readiness, ref, "last response", options.timeout)
        print_requests(t, n, session.reader.calls)
        print_floor(rest_floor(len(done), post_windows, t, ref), t)
        if warning:
            print("    " + warning)
    return finish(result, readiness, t, ref)


# ---------------------------------------------------------------------------------------------- backfill


def backfill(args: argparse.Namespace) -> Result:
    options = Options.of(args)
    n = args.backfill_ticks
    print(f"[backfill] one CSV of {n:,} ticks, {args.backfill_symbols} symbols over {args.backfill_days:g} days, "
          f"uploaded to the bucket with S3 PutObject", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        path = Path(tmp) / "backfill.csv"
        started = time.monotonic()
        with path.open("w", encoding="utf-8", newline="") as out:
            count, minute = write_csv(out, streamed_ticks(n, args.backfill_symbols, args.backfill_days))
        ref = Reference.of(minute)
        del minute
        size = path.stat().st_size
        print(f"    wrote {size / 1e6:,.1f} MB ({count:,} ticks, {ref.windows:,} one-minute windows) in "
              f"{time.monotonic() - started:.1f}s", flush=True)
        result = Result("backfill", count)
        with bench_session("backfill", Path(tmp), options) as session:
            key = f"bench/backfill-{uuid.uuid4().hex[:12]}.csv"
            bucket = session.stack.bucket
            session.start_recording()
            started = time.monotonic()
            with path.open("rb") as body:
                put = session.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
            uploaded = time.monotonic()
            version = real_version(put.get("VersionId"))
            ingestion_id = object_ingestion_id(bucket, key, version or put["ETag"].strip('"'))
            print(f"    upload: {uploaded - started:.1f}s (s3://{bucket}/{key}, ingestion {ingestion_id})", flush=True)
            try:
                readiness = wait_ready(session, ref, [ingestion_id], uploaded, options, need_processed=True)
                warning = settle(session, options, readiness)
            finally:
                session.s3.delete_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
            t = session.tally()
            processed = "not within the timeout" if readiness.processed_s is None else f"{readiness.processed_s:.1f}s"
            print(f'    end of upload → ingestion "processed": {processed}')
            print_readiness(readiness, ref, "end of upload", options.timeout)
            if readiness.processed_s and readiness.ready_s is not None:
                print(f"    bars ready / processed: {readiness.ready_s / readiness.processed_s:.2f}×")
            print_requests(t, count, session.reader.calls)
            if warning:
                print("    " + warning)
    return finish(result, readiness, t, ref)


def bars_ready(stack: LocalStack, ingestion_id: str) -> bool | None:
    return stack.ingestion(ingestion_id).json().get("bars") == "ready" or None


def post(args: argparse.Namespace) -> Result:
    """How long POST /ingest takes to answer one large JSON body on the local stack, with the fast path and
    with the precise parsers alone (FAST_PATH=false), each in a stack of its own; best of --post-repeats, each
    POST once the bars of the one before it are ready."""
    n = args.post_ticks
    ticks = synthetic_ticks(n, args.symbols, args.hours)
    body = json_body(ticks).encode()
    print(f"[post] one JSON body of {n:,} ticks ({len(body) / 1e6:,.1f} MB; the stacks take bodies that large: "
          f"MAX_BODY_BYTES), best of {args.post_repeats}", flush=True)
    best: dict[bool, float] = {}
    for fast in (True, False):
        env = {"MAX_BODY_BYTES": str(len(body) + 1024), "FAST_PATH": "true" if fast else "false"}
        with tempfile.TemporaryDirectory(prefix="bench-post-") as tmp, \
                running_local_stack(Path(tmp) / "localrun.log", schedule_seconds=args.schedule_seconds,
                                    extra_env=env) as stack:
            times = []
            for _ in range(args.post_repeats):
                started = time.monotonic()
                resp = stack.post_ingest(body, "application/json")
                times.append(time.monotonic() - started)
                if resp.status != 202 or resp.json().get("accepted") != n:
                    raise ScenarioError(f"POST /ingest answered {resp.status}: {resp.body[:300]!r}")
                wait_for(functools.partial(bars_ready, stack, resp.json()["ingestion_id"]), args.timeout,
                         "its bars")  # so that the next POST has the CPU to itself
            best[fast] = min(times)
            label = "fast path" if fast else "precise parsers alone (FAST_PATH=false)"
            print(f"    {label:<42} answered in {best[fast]:.2f}s (each: "
                  f"{', '.join(f'{t:.2f}' for t in times)})", flush=True)
    print(f"    precise / fast: {best[False] / best[True]:.2f}x")
    print()
    return Result("post", n, ready_s=None, equal="yes")


# ---------------------------------------------------------------------------------------------- all of them


SCENARIOS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "rest": rest, "live": live, "backfill": backfill, "breadth": breadth, "post": post, "bars": bench_bars.bars,
}


def run(names: list[str], args: argparse.Namespace) -> list[Result]:
    results = []
    for name in names:
        try:
            results.append(SCENARIOS[name](args))
        except Exception as exc:  # one scenario's failure is reported; the others still run
            if not isinstance(exc, ScenarioError):
                traceback.print_exc()
            print(f"    ERROR: {exc}\n", flush=True)
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            results.append(Result(name, 0, equal=f"error: {first[:60]}"))
    return results


def print_summary(results: list[Result]) -> None:
    def number(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    print("summary")
    print(f"  {'scenario':<10} {'ticks':>11} {'last request→ready s':>21} {'requests/1k ticks':>18} "
          f"{'write units/1k ticks':>21}  bars equal reference")
    for r in results:
        print(f"  {r.scenario:<10} {r.ticks:>11,} {number(r.ready_s, 1):>21} {number(r.requests_per_k, 2):>18} "
              f"{number(r.units_per_k, 2):>21}  {r.equal}")

