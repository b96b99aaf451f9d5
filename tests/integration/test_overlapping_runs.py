"""Aggregation runs that overlap, through the DynamoDB store on moto: however their steps interleave with each
other and with processing, the bars end equal to a reference computed from the ticks, and a bar's revision
only goes up when its values change.

The deterministic cases pause a run right after it read the partials; the randomised one lets a seeded
scheduler pick, at every store call, which of several runs takes the next step.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.bootstrap import UseCases, wire
from chalicelib.domain.bars import INTERVALS, window_start
from chalicelib.domain.timefmt import parse_timestamp
from chalicelib.entrypoints.events import on_aggregator_event
from chalicelib.schemas import AGGREGATION_PENDING, TICKS_PROCESSED
from chalicelib.settings import Settings
from tests.fakes import MemoryEvents, MemoryObjects, MemoryQueue

T0 = parse_timestamp("2024-07-01T23:50:00Z")  # ticks straddle midnight: 1d and 1h windows split too
SECOND = 1_000_000_000


class Recorder:
    """The store, with every successful bar write logged (to check revisions) and an optional hook per call."""

    def __init__(self, store: DynamoStateStore) -> None:
        self._store = store
        self.writes: list[tuple[tuple[str, str, int], int, tuple[Any, ...]]] = []
        self.before: Callable[[str], None] = lambda name: None
        self.after: Callable[[str], None] = lambda name: None

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.before(name)
            result = method(*args, **kwargs)
            if name == "write_bars":
                lease, puts = args[0], args[1]
                self.writes += [((lease.symbol, bar.interval, bar.start_ns), rev, _values(bar)) for bar, rev in puts]
            self.after(name)
            return result

        return call


def _values(bar: Any) -> tuple[Any, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades)


def _tick(symbol: str, n: int, price: str, volume: str) -> dict[str, Any]:
    seconds = T0 // SECOND + 37 * n  # distinct times: the reference need not break ties
    return {"symbol": symbol, "price": price, "volume": volume,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))}


def reference(ticks: list[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    """OHLCV of every window, straight from the ticks."""
    out: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    by_window: dict[tuple[str, str, int], list[tuple[int, Decimal, Decimal]]] = defaultdict(list)
    for t in ticks:
        ts = parse_timestamp(t["timestamp"])
        for interval in INTERVALS:
            by_window[(t["symbol"], interval, window_start(ts, interval))].append(
                (ts, Decimal(t["price"]), Decimal(t["volume"])))
    for key, rows in by_window.items():
        rows.sort()
        prices = [p for _, p, _ in rows]
        out[key] = (prices[0], max(prices), min(prices), prices[-1], sum(v for _, _, v in rows), len(rows))
    return out


def stored(store: DynamoStateStore, symbols: list[str]) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    out = {}
    for symbol in symbols:
        for interval in INTERVALS:
            for bar, _ in store.query_bars(symbol, interval, 0, 10**19)[0]:
                out[(symbol, interval, bar.start_ns)] = _values(bar)
    return out


def assert_revisions_only_rise_with_changes(writes: list[tuple[tuple[str, str, int], int, tuple[Any, ...]]]) -> None:
    last: dict[tuple[str, str, int], tuple[int, tuple[Any, ...]]] = {}
    for key, revision, values in writes:
        if key in last:
            old_revision, old_values = last[key]
            assert revision == old_revision + 1, f"{key}: revision {old_revision} -> {revision}"
            assert values != old_values, f"{key}: rewritten with the same values as revision {revision}"
        else:
            assert revision == 1, f"{key}: first written with revision {revision}"
        last[key] = (revision, values)


class Pipeline:
    def __init__(self, store: Any, settings: Settings, clock: Callable[[], int] = time.time_ns) -> None:
        self.queue = MemoryQueue()
        self.events = MemoryEvents()
        self.use_cases: UseCases = wire(store, self.queue, self.events, MemoryObjects(), settings, clock=clock)

    def deliver_events(self) -> None:
        """Hand the aggregator the events its rule matches, as EventBridge does (a run per event)."""
        while self.events.published:
            detail_type, detail = self.events.published.pop(0)
            if detail_type in (TICKS_PROCESSED, AGGREGATION_PENDING):
                on_aggregator_event(detail_type, detail, self.use_cases.aggregate)

    def ingest_and_process(self, ticks: list[dict[str, Any]]) -> None:
        self.use_cases.ingest_body(json.dumps(ticks).encode(), "application/json")
        outcome = self.use_cases.process_batch([(m, b, 1) for m, b in self.queue.receive_all()])
        assert outcome.failed_message_ids == []


@pytest.fixture
def store(provisioned: dict[str, str], settings: Settings, session: boto3.session.Session) -> DynamoStateStore:
    return DynamoStateStore(session.client("dynamodb"), settings.table_name)


def _run_paused_after_reading(recorder: Recorder, pipeline: Pipeline) -> tuple[threading.Thread, threading.Event,
                                                                               threading.Event]:
    """Start an aggregation that stops right after its first read of partials, until told to go on."""
    read, resume = threading.Event(), threading.Event()
    me = threading.current_thread

    def after(name: str) -> None:
        if name == "query_partials" and me().name == "run-A" and not read.is_set():
            read.set()
            assert resume.wait(30)

    recorder.after = after
    thread = threading.Thread(target=pipeline.use_cases.aggregate, name="run-A")
    thread.start()
    assert read.wait(30)
    return thread, read, resume


def test_a_run_paused_after_its_reads_cannot_overwrite_newer_bars(store: DynamoStateStore, settings: Settings) -> None:
    recorder = Recorder(store)
    first = [_tick("XRP/ETH", 0, "10", "1")]
    late = [_tick("XRP/ETH", 1, "12", "2")]
    a = Pipeline(recorder, settings)
    a.ingest_and_process(first)
    thread, _, resume = _run_paused_after_reading(recorder, a)
    # Meanwhile: a new tick of the same minute is processed, and another run starts (its own clock).
    b = Pipeline(store, settings)
    b.ingest_and_process(late)
    summary = b.use_cases.aggregate()
    assert summary["skipped_leased"] == 1  # A holds the symbol: B leaves it to A, which looks again
    resume.set()
    thread.join(30)
    assert stored(store, ["XRP/ETH"]) == reference(first + late)
    assert store.list_dirty(None, 100) == []
    assert_revisions_only_rise_with_changes(recorder.writes)


def test_a_run_paused_past_its_lease_has_its_writes_refused(store: DynamoStateStore, settings: Settings) -> None:
    recorder = Recorder(store)
    first = [_tick("XRP/ETH", 0, "10", "1")]
    late = [_tick("XRP/ETH", 1, "12", "2")]
    a = Pipeline(recorder, settings)
    a.ingest_and_process(first)
    thread, _, resume = _run_paused_after_reading(recorder, a)
    b = Pipeline(recorder, settings, clock=lambda: time.time_ns() + 2 * settings.lease_seconds * SECOND)
    b.ingest_and_process(late)
    summary = b.use_cases.aggregate()  # A's lease expired (by B's clock): B takes the symbol over
    assert summary["skipped_leased"] == 0 and summary["windows"] >= 1
    after_b = stored(store, ["XRP/ETH"])
    resume.set()
    thread.join(30)
    assert stored(store, ["XRP/ETH"]) == after_b == reference(first + late)
    assert {rev for key, rev, _ in recorder.writes} == {1}  # A's stale result was never written
    assert store.list_dirty(None, 100) == []


class Interleaver:
    """Runs actors on threads, one store call at a time; a seeded RNG picks which actor steps next."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._cv = threading.Condition()
        self._alive: set[str] = set()
        self._waiting: set[str] = set()
        self._running: str | None = None
        self.errors: list[BaseException] = []

    def step(self, _: str = "") -> None:
        name = threading.current_thread().name
        with self._cv:
            if name not in self._alive:
                return
            self._running = None
            self._waiting.add(name)
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._running == name)
            self._waiting.discard(name)

    def run(self, actors: dict[str, Callable[[], Any]]) -> None:
        def body(name: str, actor: Callable[[], Any]) -> None:
            try:
                self.step()
                actor()
            except BaseException as exc:  # reported by run()
                self.errors.append(exc)
            finally:
                with self._cv:
                    self._alive.discard(name)
                    self._running = None
                    self._cv.notify_all()

        with self._cv:
            self._alive = set(actors)
        threads = [threading.Thread(target=body, args=item, name=item[0]) for item in actors.items()]
        for thread in threads:
            thread.start()
        with self._cv:
            while self._alive:
                assert self._cv.wait_for(lambda: self._running is None and self._waiting >= self._alive, 60)
                if self._alive:
                    self._running = self._rng.choice(sorted(self._waiting & self._alive))
                    self._cv.notify_all()
        for thread in threads:
            thread.join(30)
        assert not self.errors, self.errors


@pytest.mark.parametrize("seed", range(12))
def test_any_interleaving_of_runs_and_processing_ends_at_the_reference(
        store: DynamoStateStore, settings: Settings, seed: int) -> None:
    rng = random.Random(seed)
    random.seed(seed)  # where each run starts in its list of symbols: the same for a seed
    symbols = ["XRP/ETH", "ESU4"]
    recorder = Recorder(store)
    interleaver = Interleaver(seed)
    recorder.before = interleaver.step
    batches = [[_tick(rng.choice(symbols), 3 * b + i, f"{rng.randint(90, 110)}.{rng.randint(0, 99):02d}",
                      str(rng.randint(1, 5))) for i in range(3)] for b in range(4)]
    initial, live = batches[0], batches[1:]
    Pipeline(store, settings).ingest_and_process(initial)
    slow = settings.lease_seconds * 2 * SECOND  # one run's clock is ahead: it takes leases over as expired
    actors: dict[str, Callable[[], Any]] = {
        "aggregate-1": Pipeline(recorder, settings).use_cases.aggregate,
        "aggregate-2": Pipeline(recorder, settings).use_cases.aggregate,
        "aggregate-ahead": Pipeline(recorder, settings, clock=lambda: time.time_ns() + slow).use_cases.aggregate,
    }
    for n, batch in enumerate(live):
        pipeline = Pipeline(recorder, settings)

        def process_then_aggregate(p: Pipeline = pipeline, b: list[dict[str, Any]] = batch) -> None:
            p.ingest_and_process(b)
            p.deliver_events()  # its run skips the symbols whose marks another run worked off meanwhile

        actors[f"processor-{n}"] = process_then_aggregate
    interleaver.run(actors)
    recorder.before = lambda name: None
    # The safety net (the schedule) after the storm: what a lease-skipping run left is picked up.
    Pipeline(recorder, settings, clock=lambda: time.time_ns() + 4 * slow).use_cases.aggregate()
    assert store.list_dirty(None, 1000) == []
    assert stored(store, symbols) == reference([t for b in batches for t in b])
    assert_revisions_only_rise_with_changes(recorder.writes)


def test_the_aggregators_reads_are_consistent_and_its_bar_writes_fenced(
        provisioned: dict[str, str], settings: Settings, session: boto3.session.Session) -> None:
    client = session.client("dynamodb")
    store = DynamoStateStore(client, settings.table_name)
    ticks = [_tick("XRP/ETH", n, f"{10 + n}", "1") for n in range(40)]  # 25 minutes: both read paths
    pipeline = Pipeline(store, settings)
    pipeline.ingest_and_process(ticks[:30])
    calls: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register("before-parameter-build.dynamodb",
                                lambda params, model, **_: calls.append((model.name, params)))
    pipeline.use_cases.aggregate()
    pipeline.ingest_and_process(ticks[30:])
    pipeline.use_cases.aggregate(["XRP/ETH"])
    assert stored(store, ["XRP/ETH"]) == reference(ticks)
    reads = [(n, p) for n, p in calls if n in ("Query", "GetItem", "BatchGetItem", "Scan")]
    assert {n for n, _ in reads} >= {"Query", "BatchGetItem"}
    for name, params in reads:
        flags = [r.get("ConsistentRead") for r in params["RequestItems"].values()] if name == "BatchGetItem" \
            else [params.get("ConsistentRead")]
        assert flags == [True] * len(flags), f"{name} is not strongly consistent: {params}"
    bar_writes = [(n, p) for n, p in calls if "B#" in json.dumps(p) and n not in ("Query", "BatchGetItem")]
    assert bar_writes and {n for n, _ in bar_writes} == {"TransactWriteItems"}
    for _, params in bar_writes:
        fence = params["TransactItems"][0]["ConditionCheck"]
        assert fence["Key"]["pk"]["S"] == "L#XRP/ETH" and fence["ConditionExpression"] == "tok = :t"


def test_a_run_for_symbols_without_marks_writes_nothing(
        provisioned: dict[str, str], settings: Settings, session: boto3.session.Session) -> None:
    client = session.client("dynamodb")
    store = DynamoStateStore(client, settings.table_name)
    ticks = [_tick("XRP/ETH", n, f"{10 + n}", "1") for n in range(5)]
    pipeline = Pipeline(store, settings)
    pipeline.ingest_and_process(ticks)
    pipeline.use_cases.aggregate()
    calls: list[str] = []
    client.meta.events.register("before-parameter-build.dynamodb", lambda model, **_: calls.append(model.name))
    summary = pipeline.use_cases.aggregate(["XRP/ETH", "NEVER/SEEN"])  # as an event naming them would
    assert summary["skipped_clean"] == 2 and summary["windows"] == 0
    assert calls and set(calls) == {"Query"}, calls  # one look at each symbol's marks; no lease taken
    assert len(calls) == 2
    assert stored(store, ["XRP/ETH"]) == reference(ticks)
