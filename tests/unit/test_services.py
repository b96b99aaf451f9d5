"""The use cases (chalicelib/usecases) wired to the in-memory fakes: ingest, process, aggregate, read.

Every test asserts on state: what is in the queue, the store, the published events, or what a call returned.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from chalicelib.bootstrap import UseCases, wire
from chalicelib.domain.bars import INTERVALS, bars_from_ticks, window_start
from chalicelib.domain.errors import (
    IdempotencyConflict,
    InputError,
    InvalidQuery,
    InvalidTicks,
    NotFound,
    PayloadTooLarge,
    TransientError,
    UnsupportedFormat,
)
from chalicelib.domain.ingestion import Status
from chalicelib.domain.ticks import Tick
from chalicelib.domain.timefmt import format_ns, parse_timestamp
from chalicelib.entrypoints.api import http_error
from chalicelib.entrypoints.events import on_aggregator_event
from chalicelib.ports import announced_marks
from chalicelib.schemas import (
    ColumnsMessage,
    RangeMessage,
    TicksMessage,
    TicksProcessedDetail,
    decode_columns,
    decode_message,
    detail_of,
    queue_body,
)
from chalicelib.settings import Settings
from tests.fakes import HeldResults, MemoryEvents, MemoryObjects, MemoryQueue, MemoryStateStore, bars_json

BUCKET = "market-data-bucket-dev"
BASE_NS = parse_timestamp("2024-07-01T23:55:00Z")
SECOND = 1_000_000_000
MINUTE = 60 * SECOND


@dataclass
class Env:
    store: MemoryStateStore
    queue: MemoryQueue
    events: MemoryEvents
    objects: MemoryObjects
    pipeline: UseCases

    def with_queue(self, queue: Any) -> None:
        """The same store and objects, behind another queue."""
        self.pipeline = wire(self.store, queue, self.events, self.objects, self.pipeline.settings)

    def process(self, shuffle: random.Random | None = None) -> Any:
        messages = self.queue.receive_all()
        if shuffle is not None:
            shuffle.shuffle(messages)
        return self.pipeline.process_batch(messages)

    def run(self) -> None:
        outcome = self.process()
        assert outcome.failed_message_ids == []
        self.aggregate_all()

    def aggregate_all(self) -> None:
        """Aggregate every dirty symbol, and run the runs that handed symbols on, as their events would."""
        seen = len(self.events.published)
        self.pipeline.aggregate()
        while seen < len(self.events.published):
            kind, detail = self.events.published[seen]
            seen += 1
            if kind == "AggregationPending":
                self.pipeline.aggregate(detail["symbols"])

    def bars(self, symbol: str, interval: str) -> list[dict[str, Any]]:
        return bars_json(self.pipeline, symbol, interval, limit="5000")["bars"]


def make_env(**settings: Any) -> Env:
    store, queue, events, objects = MemoryStateStore(), MemoryQueue(), MemoryEvents(), MemoryObjects(block_size=128)
    return Env(store, queue, events, objects, wire(store, queue, events, objects, Settings(**settings)))


@pytest.fixture
def env() -> Env:
    return make_env()


# ---------------------------------------------------------------------------------- sample ticks
def sample_rows(count: int = 60) -> list[dict[str, Any]]:
    """Two symbols over ~8 minutes across 00:00 UTC (so 1m..1d windows all split), pairs sharing a timestamp."""
    rows = []
    for i in range(count):
        symbol = "ESU4" if i % 3 else "BTC/USDT"
        row: dict[str, Any] = {
            "symbol": symbol,
            "price": str(Decimal("5528") + Decimal((i * 37) % 11) * Decimal("0.25")),
            "volume": str(1 + i % 5),
            "timestamp": format_ns(BASE_NS + (i // 2) * 17 * SECOND + 123_456_789),
        }
        if symbol == "BTC/USDT":
            row["trade_id"] = str(5000 + i)
        rows.append(row)
    return rows


def as_json(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps(rows).encode()


def as_ndjson(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def as_csv(rows: list[dict[str, Any]], eol: str = "\n") -> bytes:
    lines = ["symbol,price,volume,timestamp,trade_id"]
    lines += [f"{r['symbol']},{r['price']},{r['volume']},{r['timestamp']},{r.get('trade_id', '')}" for r in rows]
    return (eol.join(lines) + eol).encode()


def expected_bars(rows: list[dict[str, Any]], symbol: str, interval: str) -> list[tuple]:
    ticks = [
        Tick(r["symbol"], Decimal(r["price"]), Decimal(r["volume"]), parse_timestamp(r["timestamp"]), seq,
             r.get("trade_id"))
        for seq, r in enumerate(rows)
    ]
    return [
        (format_ns(b.start_ns), b.open, b.high, b.low, b.close, b.volume, b.trades)
        for b in bars_from_ticks(ticks, interval) if b.symbol == symbol
    ]


def values(bars: list[dict[str, Any]]) -> list[tuple]:
    return [
        (b["start"], Decimal(b["open"]), Decimal(b["high"]), Decimal(b["low"]), Decimal(b["close"]),
         Decimal(b["volume"]), b["trades"])
        for b in bars
    ]


def all_bars(env: Env) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {(s, iv): env.bars(s, iv) for s in ("ESU4", "BTC/USDT") for iv in INTERVALS}


# ---------------------------------------------------------------------------------- ingest: REST
def test_ingest_one_json_object(env: Env) -> None:
    body = json.dumps({"symbol": "AAPL", "price": 187.25, "volume": 10, "timestamp": "2024-07-01T23:58:01Z"}).encode()
    response = env.pipeline.ingest_body(body, "application/json; charset=utf-8")
    assert response["accepted"] == 1 and response["status"] == "queued"
    assert response["status_path"] == f"/ingestions/{response['ingestion_id']}"
    [body_out] = env.queue.messages
    message = decode_message(body_out)
    assert isinstance(message, ColumnsMessage)
    assert message.ingestion_id == response["ingestion_id"]
    assert decode_columns(message).ticks() == [
        Tick("AAPL", Decimal("187.25"), Decimal(10), parse_timestamp("2024-07-01T23:58:01Z"), 0)]
    assert (message.symbols, message.s, message.p, message.q, message.id) == (["AAPL"], [0], ["187.25"], ["10"], None)
    stored = env.store.ingestions[response["ingestion_id"]]
    assert (stored["source"], stored["status"], stored["accepted"], stored["chunks"]) == ("api", "queued", 1, 1)


@pytest.mark.parametrize(
    ("encode", "content_type"),
    [(as_json, "application/json"), (as_ndjson, "application/x-ndjson"), (as_ndjson, "application/jsonl"),
     (as_csv, "text/csv")],
)
def test_ingest_formats_queue_every_tick_and_give_the_same_bars(encode: Any, content_type: str) -> None:
    rows = sample_rows()
    env = make_env(message_bytes=1_500)  # several messages per body
    response = env.pipeline.ingest_body(encode(rows), content_type)
    assert response["accepted"] == len(rows)
    queued = [decode_message(m) for m in env.queue.messages]
    assert len(queued) > 1
    assert all(isinstance(m, ColumnsMessage) for m in queued)
    assert [m.chunk for m in queued] == list(range(len(queued)))
    assert all(len(body) <= 1_500 for body in env.queue.messages)
    assert sum(len(m.t) for m in queued if isinstance(m, ColumnsMessage)) == len(rows)
    assert env.store.ingestions[response["ingestion_id"]]["chunks"] == len(queued)

    env.run()
    for symbol in ("ESU4", "BTC/USDT"):
        for interval in INTERVALS:
            assert values(env.bars(symbol, interval)) == expected_bars(rows, symbol, interval), (symbol, interval)
    status = env.pipeline.ingestion_status(response["ingestion_id"])
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", len(rows), 0)
    assert status["chunks"] == {"total": len(queued), "processed": len(queued), "failed": 0}


def test_a_small_example_computed_by_hand(env: Env) -> None:
    body = json.dumps([
        {"symbol": "ESU4", "price": "5528.75", "volume": 2, "timestamp": "2024-07-01T23:58:01Z"},
        {"symbol": "ESU4", "price": "5528.50", "volume": 1, "timestamp": "2024-07-01T23:58:30Z"},
        {"symbol": "ESU4", "price": "5529.00", "volume": 3, "timestamp": "2024-07-01T23:58:30Z"},
        {"symbol": "ESU4", "price": "5528.25", "volume": 4, "timestamp": "2024-07-01T23:59:10.5Z"},
    ]).encode()
    env.pipeline.ingest_body(body, "application/json")
    env.run()
    one_minute = env.bars("ESU4", "1m")
    assert [{k: b[k] for k in ("start", "open", "high", "low", "close", "volume", "trades", "first_tick", "last_tick",
                               "revision")} for b in one_minute] == [
        {"start": "2024-07-01T23:58:00Z", "open": "5528.75", "high": "5529", "low": "5528.5", "close": "5529",
         "volume": "6", "trades": 3, "first_tick": "2024-07-01T23:58:01Z", "last_tick": "2024-07-01T23:58:30Z",
         "revision": 1},
        {"start": "2024-07-01T23:59:00Z", "open": "5528.25", "high": "5528.25", "low": "5528.25", "close": "5528.25",
         "volume": "4", "trades": 1, "first_tick": "2024-07-01T23:59:10.500Z", "last_tick": "2024-07-01T23:59:10.500Z",
         "revision": 1},
    ]
    assert Decimal(one_minute[0]["vwap"]).quantize(Decimal("0.0001")) == Decimal("5528.8333")  # 33173 / 6
    [five] = env.bars("ESU4", "5m")
    assert (five["start"], five["open"], five["high"], five["low"], five["close"], five["volume"], five["trades"]) == (
        "2024-07-01T23:55:00Z", "5528.75", "5529", "5528.25", "5528.25", "10", 4
    )
    [day] = env.bars("ESU4", "1d")
    assert (day["start"], day["volume"], day["trades"]) == ("2024-07-01T00:00:00Z", "10", 4)
    assert env.pipeline.list_symbols() == [("ESU4", parse_timestamp("2024-07-01T23:59:00Z"))]
    assert env.store.dirty_minutes() == set()


@pytest.mark.parametrize(
    ("body", "content_type", "locations"),
    [
        (b'[{"symbol":"A","price":"1","volume":"1"},{"symbol":"A","price":"-1","volume":"1"}]', "application/json",
         ["record 2"]),
        (b'{"symbol":"A","price":"1","volume":"1","side":"a\\u0000b"}', "application/json", ["record 1"]),
        (b'{"symbol":"A","price":"1","volume":"1"}\n\nnot json\n', "application/x-ndjson", ["line 3"]),
        (b"symbol,price,volume\nA,1,1\nA,NaN,1\nA B,1,1\n", "text/csv", ["line 3", "line 4"]),
        (b"symbol,volume\nA,1\n", "text/csv", ["line 1"]),
        (b"", "application/json", ["body"]),
        (b"[]", "application/json", ["body"]),
        (b"\xff\xfe{}", "application/json", ["byte 0"]),
        (b"symbol,price,volume\n", "text/csv", ["body"]),  # a header alone has no records
    ],
)
def test_invalid_body_is_rejected_whole_and_nothing_is_queued(
    env: Env, body: bytes, content_type: str, locations: list[str]
) -> None:
    with pytest.raises(InvalidTicks) as raised:
        env.pipeline.ingest_body(body, content_type)
    assert [e.location for e in raised.value.errors] == locations
    assert http_error(raised.value)[1]["error_count"] == raised.value.total_errors >= 1
    assert env.queue.messages == []
    assert env.store.ingestions == {}


def test_invalid_body_error_list_is_capped_but_counted() -> None:
    env = make_env(max_errors=3)
    body = ("symbol,price,volume\n" + "A,0,1\n" * 10).encode()
    with pytest.raises(InvalidTicks) as raised:
        env.pipeline.ingest_body(body, "text/csv")
    assert len(raised.value.errors) == 3
    assert raised.value.total_errors == 10
    assert env.queue.messages == []


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/xml", "multipart/form-data"])
def test_unsupported_content_type(env: Env, content_type: str | None) -> None:
    with pytest.raises(UnsupportedFormat) as raised:
        env.pipeline.ingest_body(b'{"symbol":"A","price":"1","volume":"1"}', content_type)
    assert http_error(raised.value)[0] == 415
    assert env.queue.messages == []


def test_payload_too_large() -> None:
    env = make_env(max_body_bytes=60)
    fits = b'{"symbol":"A","price":"1","volume":"1"}'.ljust(60)
    env.pipeline.ingest_body(fits, "application/json")
    assert len(env.queue.messages) == 1
    with pytest.raises(PayloadTooLarge) as raised:
        env.pipeline.ingest_body(fits + b" ", "application/json")
    assert http_error(raised.value)[0] == 413
    assert len(env.queue.messages) == 1


# ---------------------------------------------------------------------------------- idempotency
def test_idempotency_key_replay_returns_the_first_response_and_queues_nothing(env: Env) -> None:
    body = as_json(sample_rows(5))
    first = env.pipeline.ingest_body(body, "application/json", idempotency_key="order-42")
    queued = list(env.queue.messages)
    again = env.pipeline.ingest_body(body, "application/json", idempotency_key=" order-42 ")
    assert again == {**first, "replayed": True}
    assert env.queue.messages == queued
    assert list(env.store.ingestions) == [first["ingestion_id"]]


@pytest.mark.parametrize(
    ("second_body", "second_type"),
    [
        (json.dumps(sample_rows(2)[1]).encode(), "application/json"),
        (json.dumps(sample_rows(1)[0]).encode(), "application/x-ndjson"),  # same bytes, another media type
    ],
)
def test_idempotency_key_with_a_different_body_conflicts(env: Env, second_body: bytes, second_type: str) -> None:
    env.pipeline.ingest_body(json.dumps(sample_rows(1)[0]).encode(), "application/json", idempotency_key="k1")
    queued = list(env.queue.messages)
    with pytest.raises(IdempotencyConflict) as raised:
        env.pipeline.ingest_body(second_body, second_type, idempotency_key="k1")
    assert http_error(raised.value)[0] == 409
    assert env.queue.messages == queued


def test_rejected_body_does_not_use_up_its_idempotency_key(env: Env) -> None:
    with pytest.raises(InvalidTicks):
        env.pipeline.ingest_body(b'{"symbol":"A","price":"-1","volume":"1"}', "application/json", idempotency_key="k2")
    response = env.pipeline.ingest_body(b'{"symbol":"A","price":"1","volume":"1"}', "application/json",
                                        idempotency_key="k2")
    assert response["accepted"] == 1 and len(env.queue.messages) == 1


@pytest.mark.parametrize("key", ["", "   ", "x" * 129, "tab\there"])
def test_bad_idempotency_key(env: Env, key: str) -> None:
    with pytest.raises(InputError):
        env.pipeline.ingest_body(b'{"symbol":"A","price":"1","volume":"1"}', "application/json", idempotency_key=key)
    assert env.queue.messages == []


# ---------------------------------------------------------------------------------- process + aggregate
def test_processing_publishes_the_changed_windows(env: Env) -> None:
    rows = sample_rows()
    response = env.pipeline.ingest_body(as_json(rows), "application/json")
    outcome = env.process()
    assert (outcome.ticks, outcome.rejected, outcome.failed_message_ids) == (len(rows), 0, [])
    [(detail_type, detail)] = env.events.published
    assert detail_type == "TicksProcessed"
    parsed = detail_of(TicksProcessedDetail, detail)
    assert parsed.ingestion_ids == [response["ingestion_id"]]
    by_symbol = {c.symbol: c for c in parsed.changes}
    assert set(by_symbol) == {"ESU4", "BTC/USDT"}
    assert sum(c.ticks for c in parsed.changes) == len(rows)
    es_minutes = sorted({parse_timestamp(r["timestamp"]) // (60 * SECOND) * 60 * SECOND
                         for r in rows if r["symbol"] == "ESU4"})
    assert (by_symbol["ESU4"].first_minute_ns, by_symbol["ESU4"].last_minute_ns) == (es_minutes[0], es_minutes[-1])
    # Dirty windows wait for aggregation; aggregating clears them and writes the bars.
    assert {(s, m) for s, m in env.store.dirty_minutes() if s == "ESU4"} == {("ESU4", m) for m in es_minutes}
    summary = env.pipeline.aggregate()
    assert summary["windows"] == len(set(env.store.partials)) and env.store.dirty_minutes() == set()
    assert len(env.store.bars_of("ESU4", "1m")) == len(es_minutes)


def _delivered(env: Env, detail: dict[str, Any]) -> dict[str, int]:
    return on_aggregator_event("TicksProcessed", detail, env.pipeline.aggregate)


def test_a_run_skips_the_symbols_whose_announced_marks_another_run_worked_off(env: Env) -> None:
    rows = sample_rows()
    env.pipeline.ingest_body(as_json(rows), "application/json")
    env.process()
    [(_, detail)] = env.events.published
    # The event names the batch's marks: the ones the store holds.
    assert detail_of(TicksProcessedDetail, detail).mark_tokens == sorted({t for _, _, t in env.store.dirty})
    env.pipeline.aggregate(["ESU4"])  # another run, for one of the symbols
    summary = _delivered(env, detail)
    assert (summary["skipped_worked"], summary["skipped_clean"], summary["symbols"]) == (1, 0, 1)
    assert env.store.dirty_minutes() == set()
    assert {key: values(bars) for key, bars in all_bars(env).items()} == {
        (s, iv): expected_bars(rows, s, iv) for s in ("ESU4", "BTC/USDT") for iv in INTERVALS}


def test_a_symbol_marked_again_is_aggregated_by_the_event_of_its_new_marks(env: Env) -> None:
    rows = sample_rows()
    env.pipeline.ingest_body(as_json(rows[:30]), "application/json")
    env.process()
    env.pipeline.ingest_body(as_json(rows[30:]), "application/json")
    env.process()
    (_, first), (_, second) = env.events.published
    env.pipeline.aggregate(["ESU4", "BTC/USDT"])
    env.pipeline.ingest_body(as_json([{**rows[1], "volume": "7"}]), "application/json")
    env.process()
    third = env.events.published[-1][1]
    # The earlier events come late: their marks are gone, so their runs skip both symbols without a look.
    assert _delivered(env, second)["skipped_worked"] == 2 and _delivered(env, first)["skipped_worked"] == 2
    assert env.store.dirty_minutes() != set()  # the new tick's mark waits for the event that announced it
    assert _delivered(env, third)["symbols"] == 1
    assert env.store.dirty_minutes() == set()
    everything = [*rows, {**rows[1], "volume": "7"}]
    assert values(env.bars(rows[1]["symbol"], "1m")) == expected_bars(everything, rows[1]["symbol"], "1m")


def _held_until_the_second_lookup(env: Env, then: Callable[[Any], None]) -> Any:
    """ESU4's lease held by another run, which does ``then(lease)`` just before the event's run looks up its
    announced marks the second time (the first lookup is before it works its symbols)."""
    holder = env.store.acquire_lease("ESU4", "holder", time.time_ns(), 600 * SECOND)
    real = env.store.still_marked
    lookups = []

    def still_marked(marks: Any) -> Any:
        lookups.append(sorted({symbol for symbol, _, _ in marks}))
        if len(lookups) == 2:
            then(holder)
        return real(marks)

    env.store.still_marked = still_marked  # type: ignore[method-assign]
    return lookups


@pytest.mark.parametrize("holder_works", [True, False])
def test_a_symbol_found_leased_is_tried_again_after_the_others_without_asking_its_holder(
        env: Env, holder_works: bool) -> None:
    rows = sample_rows()
    env.pipeline.ingest_body(as_json(rows), "application/json")
    env.process()
    [(_, detail)] = env.events.published
    asked = []

    def holder_finishes(lease: Any) -> None:
        if holder_works:
            env.store.release_lease(lease)  # it let go...
            env.pipeline.aggregate(["ESU4"])  # ...and (as another run) worked the marks off
        else:
            asked.append(env.store.release_lease(lease))  # it let go without reaching this run's marks

    lookups = _held_until_the_second_lookup(env, holder_finishes)
    summary = _delivered(env, detail)
    assert lookups == [["BTC/USDT", "ESU4"], ["ESU4"]]  # the held symbol alone is looked up again
    assert asked in ([], [False])  # the holder was never asked to look again
    assert summary["skipped_leased"] == 0
    assert (summary["skipped_worked"], summary["symbols"]) == ((1, 1) if holder_works else (0, 2))
    assert env.store.dirty_minutes() == set()
    assert {key: values(bars) for key, bars in all_bars(env).items()} == {
        (s, iv): expected_bars(rows, s, iv) for s in ("ESU4", "BTC/USDT") for iv in INTERVALS}


def test_a_symbol_still_leased_when_tried_again_asks_its_holder_to_look_again(env: Env) -> None:
    rows = sample_rows()
    env.pipeline.ingest_body(as_json(rows), "application/json")
    env.process()
    [(_, detail)] = env.events.published
    held: list[Any] = []
    _held_until_the_second_lookup(env, held.append)
    summary = _delivered(env, detail)
    assert (summary["skipped_leased"], summary["symbols"]) == (1, 1)
    assert {s for s, _ in env.store.dirty_minutes()} == {"ESU4"}  # the holder's to work off...
    assert env.store.release_lease(held[0]) is True  # ...as it was asked to when it lets go
    env.pipeline.aggregate(["ESU4"])
    assert values(env.bars("ESU4", "1m")) == expected_bars(rows, "ESU4", "1m")


def test_a_backlog_hands_the_other_symbols_on_at_once_and_itself_when_its_slice_runs_out() -> None:
    env = make_env(symbol_slice_seconds=0.0, max_windows_per_run=2)  # more marks than a round takes; one round
    rows = sample_rows()
    env.pipeline.ingest_body(as_json(rows), "application/json")
    env.process()
    env.events.published.clear()
    real_write = env.store.write_bars
    writes: list[tuple[str, list[list[str]]]] = []  # each bar write, with the symbol lists handed on by then

    def write_bars(lease: Any, *args: Any) -> None:
        handed = [d["symbols"] for kind, d in env.events.published if kind == "AggregationPending"]
        writes.append((lease.symbol, handed))
        real_write(lease, *args)

    env.store.write_bars = write_bars  # type: ignore[method-assign]
    summary = env.pipeline.aggregate(["ESU4", "BTC/USDT"])
    [(first, handed_before)] = writes  # one round of the first symbol: the other was handed on before it
    other = ({"ESU4", "BTC/USDT"} - {first}).pop()
    assert handed_before == [[other]]
    pending = [d["symbols"] for kind, d in env.events.published if kind == "AggregationPending"]
    assert pending == [[other], [first]] and summary["handed_on"] == 2  # then itself, its slice over
    while env.events.published:  # the new runs go on, a round each, until every window is done
        kind, detail = env.events.published.pop(0)
        if kind == "AggregationPending":
            env.pipeline.aggregate(detail["symbols"])
    assert env.store.dirty_minutes() == set()
    assert {key: values(bars) for key, bars in all_bars(env).items()} == {
        (s, iv): expected_bars(rows, s, iv) for s in ("ESU4", "BTC/USDT") for iv in INTERVALS}


def test_marks_are_announced_per_hour_and_token_unless_a_change_spans_many_hours() -> None:
    hour = INTERVALS["1h"]
    changes = [("A", 5 * hour + 59 * MINUTE, 6 * hour), ("B", 0, 0), ("C", 0, 3 * hour)]
    assert announced_marks(changes, ["t1", "t2"]) == [
        ("A", 5 * hour, "t1"), ("A", 5 * hour, "t2"), ("A", 6 * hour, "t1"), ("A", 6 * hour, "t2"),
        ("B", 0, "t1"), ("B", 0, "t2")]  # C spans four hours: it is looked at as any other symbol
    assert announced_marks(changes, []) == []


def test_aggregate_only_the_symbols_asked_for(env: Env) -> None:
    env.pipeline.ingest_body(as_json(sample_rows()), "application/json")
    env.process()
    env.pipeline.aggregate(["BTC/USDT"])
    assert env.store.bars_of("ESU4", "1m") == []
    assert env.store.bars_of("BTC/USDT", "1m") != []
    assert {s for s, _ in env.store.dirty_minutes()} == {"ESU4"}


def test_redelivered_messages_do_not_double_the_bars() -> None:
    rows = sample_rows()
    env = make_env(message_bytes=1_500)
    env.pipeline.ingest_body(as_json(rows), "application/json")
    messages = env.queue.receive_all()
    env.pipeline.process_batch(messages)
    env.pipeline.aggregate()
    before = all_bars(env)
    # SQS delivers at least once: the whole batch again, and one message twice inside a batch.
    env.pipeline.process_batch(messages + messages[:1])
    env.pipeline.aggregate()
    assert all_bars(env) == before
    assert {b["revision"] for bars in before.values() for b in bars} == {1}
    assert values(before[("ESU4", "1h")]) == expected_bars(rows, "ESU4", "1h")


def test_message_order_does_not_change_the_bars() -> None:
    rows = sample_rows()
    in_order = make_env(message_bytes=1_000)
    in_order.pipeline.ingest_body(as_json(rows), "application/json")
    messages = in_order.queue.receive_all()
    assert len(messages) > 4
    in_order.pipeline.process_batch(messages)
    in_order.pipeline.aggregate()

    shuffled = make_env()
    rnd = random.Random(7)
    mixed = list(messages)
    rnd.shuffle(mixed)
    for start in range(0, len(mixed), 3):  # several batches, aggregating in between
        shuffled.pipeline.process_batch(mixed[start:start + 3])
        shuffled.pipeline.aggregate()
    for interval in INTERVALS:
        for symbol in ("ESU4", "BTC/USDT"):
            assert shuffled.store.bars_of(symbol, interval) == in_order.store.bars_of(symbol, interval)
    assert values(shuffled.bars("ESU4", "5m")) == expected_bars(rows, "ESU4", "5m")


def test_poison_message_fails_alone(env: Env) -> None:
    env.pipeline.ingest_body(as_json(sample_rows(30)), "application/json")
    [good] = env.queue.receive_all()
    foreign = json.dumps({"v": 1, "kind": "orders", "ingestion_id": "x", "chunk": 0, "rank": "r", "received_ns": 1})
    outcome = env.pipeline.process_batch([("m-bad", "garbage{"), ("m-good", good[1]), ("m-foreign", foreign)])
    assert outcome.failed_message_ids == ["m-bad", "m-foreign"]
    assert outcome.ticks == 30
    env.pipeline.aggregate()
    assert values(env.bars("ESU4", "1m")) == expected_bars(sample_rows(30), "ESU4", "1m")


def test_a_late_tick_updates_the_bar_and_bumps_its_revision(env: Env) -> None:
    rows = sample_rows()
    env.pipeline.ingest_body(as_json(rows), "application/json")
    env.run()
    before = {iv: env.bars("ESU4", iv) for iv in INTERVALS}
    target = before["1m"][2]
    late = {"symbol": "ESU4", "price": "6000", "volume": "7", "timestamp": target["start"]}
    env.pipeline.ingest_body(as_json([late]), "application/json")
    env.run()

    after = {iv: env.bars("ESU4", iv) for iv in INTERVALS}
    changed = next(b for b in after["1m"] if b["start"] == target["start"])
    assert changed["revision"] == 2
    assert Decimal(changed["volume"]) == Decimal(target["volume"]) + 7
    assert changed["trades"] == target["trades"] + 1
    assert changed["high"] == "6000" and changed["open"] == "6000"  # the earliest tick of the minute now
    assert changed["close"] == target["close"]
    # Other minutes are untouched; every coarser bar containing the minute is rewritten.
    for old, new in zip(before["1m"], after["1m"], strict=True):
        if old["start"] != target["start"]:
            assert new == old
    for interval in ("5m", "15m", "1h", "1d"):
        containing = [b for b in after[interval] if b["start"] <= target["start"]][-1]
        assert containing["revision"] == 2 and containing["high"] == "6000"
    assert values(after["1h"]) == expected_bars([*rows, late], "ESU4", "1h")
    revised = [d for t, d in env.events.published if t == "BarsRevised"]
    assert len(revised) == 1 and revised[0]["count"] == 5
    assert {(b["interval"], b["revision"]) for b in revised[0]["bars"]} == {(iv, 2) for iv in INTERVALS}


def test_a_marker_set_during_aggregation_is_not_cleared(env: Env) -> None:
    env.pipeline.ingest_body(as_json(sample_rows(3)), "application/json")
    env.process()
    # A newer mark of a window (new token) after it was listed survives the clear of the marks read.
    listed = env.store.list_dirty(None, 100)
    symbol, minute, _ = listed[0]
    env.store.mark_dirty([(symbol, minute)], "newer-token")
    assert env.store.clear_dirty(listed) == len(listed)
    assert env.store.list_dirty(None, 100) == [(symbol, minute, "newer-token")]


# ---------------------------------------------------------------------------------- ingest: S3 object
def test_csv_object_in_range_chunks_gives_the_same_bars_as_rest() -> None:
    rows = sample_rows()
    via_rest = make_env()
    via_rest.pipeline.ingest_body(as_csv(rows), "text/csv")
    via_rest.run()

    via_s3 = make_env(chunk_bytes=300)
    body = as_csv(rows, eol="\r\n")
    version = via_s3.objects.put(BUCKET, "uploads/trades.csv", b"\xef\xbb\xbf" + body, "text/csv")
    response = via_s3.pipeline.ingest_object(BUCKET, "uploads/trades.csv", version)
    assert response["status"] == "queued"
    messages = [decode_message(m) for m in via_s3.queue.messages]
    assert len(messages) == response["chunks"] > 3
    ranges = [m for m in messages if isinstance(m, RangeMessage)]
    assert ranges == messages
    # The ranges tile the object after the header, and each starts at a line start with its line number.
    data = b"\xef\xbb\xbf" + body
    assert data[: ranges[0].start].count(b"\n") == 1 and ranges[0].first_line == 2
    for a, b in pairwise(ranges):
        assert a.end == b.start and data[b.start - 1 : b.start] == b"\n"
        assert b.first_line == data[: b.start].count(b"\n") + 1
    assert ranges[-1].end == len(data)
    via_s3.run()
    assert all_bars(via_s3) == all_bars(via_rest)
    status = via_s3.pipeline.ingestion_status(response["ingestion_id"])
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", len(rows), 0)
    assert status["object"]["key"] == "uploads/trades.csv"


def test_bad_rows_in_a_file_are_reported_by_line_and_good_rows_go_on() -> None:
    env = make_env(chunk_bytes=120)
    lines = ["symbol,price,volume,timestamp"]
    lines += [f"ESU4,{5528 + i},1,2024-07-01T23:58:{i:02d}Z" for i in range(30)]
    lines[7] = "ESU4,-5,1,2024-07-01T23:58:06Z"  # line 8
    lines[20] = "ESU4,5528,1,3000-01-01T00:00:00Z"  # line 21
    lines[25] = "ESU4,5528"  # line 26
    version = env.objects.put(BUCKET, "es.csv", ("\n".join(lines) + "\n").encode())
    response = env.pipeline.ingest_object(BUCKET, "es.csv", version)
    assert response["chunks"] > 2
    env.run()
    status = env.pipeline.ingestion_status(response["ingestion_id"])
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 27, 3)
    assert [(e["location"], e["field"]) for e in status["errors"]] == [
        ("line 8", "price"), ("line 21", "timestamp"), ("line 26", "-")
    ]
    [bar] = env.bars("ESU4", "1m")
    assert bar["trades"] == 27 and bar["volume"] == "27"


def test_csv_object_without_a_price_column_is_rejected_whole(env: Env) -> None:
    bar_file = b"Datetime,Open,High,Low,Close,Volume\n2015-09-23T20:57:42,1,1,1,1,1\n"
    version = env.objects.put(BUCKET, "bars.csv", bar_file)
    response = env.pipeline.ingest_object(BUCKET, "bars.csv", version)
    assert response["status"] == "rejected"
    assert "no column for price" in response["reason"] and "line 1" in response["reason"]
    assert env.queue.messages == []
    status = env.pipeline.ingestion_status(response["ingestion_id"])
    assert status["status"] == "rejected" and status["accepted"] == 0
    assert [e["location"] for e in status["errors"]] == ["file"]


def test_csv_object_symbol_from_object_metadata(env: Env) -> None:
    version = env.objects.put(BUCKET, "es.csv", b"Date and Time,Price,Volume\n2011/07/31 22:00:00.120,1306.0,2\n",
                              metadata={"Symbol": "ES"})
    env.pipeline.ingest_object(BUCKET, "es.csv", version)
    env.run()
    [bar] = env.bars("ES", "1m")
    assert (bar["start"], bar["close"], bar["volume"]) == ("2011-07-31T22:00:00Z", "1306", "2")


def test_gzip_objects_work_and_match_the_plain_file() -> None:
    rows = sample_rows()
    plain = make_env(chunk_bytes=400)
    plain.objects.put(BUCKET, "t.csv", as_csv(rows))
    plain.pipeline.ingest_object(BUCKET, "t.csv", None)
    plain.run()

    zipped = make_env(inline_chunk_bytes=400)
    half = len(rows) // 2
    # Two concatenated gzip members, as `cat a.gz b.gz` makes.
    header = b"symbol,price,volume,timestamp,trade_id\n"
    data = gzip.compress(as_csv(rows[:half])) + gzip.compress(as_csv(rows[half:])[len(header):])
    version = zipped.objects.put(BUCKET, "t.csv.gz", data, "application/gzip")
    response = zipped.pipeline.ingest_object(BUCKET, "t.csv.gz", version)
    assert response["status"] == "queued" and response["chunks"] > 2
    assert {decode_message(m).kind for m in zipped.queue.messages} == {"text"}
    zipped.run()
    assert all_bars(zipped) == all_bars(plain)


@pytest.mark.parametrize(
    ("key", "payload"),
    [
        ("t.ndjson.gz", lambda rows: gzip.compress(as_ndjson(rows))),
        ("t.json.gz", lambda rows: gzip.compress(as_json(rows))),
        ("t.json", as_json),
        ("t.jsonl", as_ndjson),
    ],
)
def test_json_and_ndjson_objects(key: str, payload: Any) -> None:
    rows = sample_rows()
    env = make_env(chunk_bytes=500, inline_chunk_bytes=500)
    version = env.objects.put(BUCKET, key, payload(rows))
    assert env.pipeline.ingest_object(BUCKET, key, version)["status"] == "queued"
    env.run()
    for interval in ("1m", "1d"):
        assert values(env.bars("BTC/USDT", interval)) == expected_bars(rows, "BTC/USDT", interval)


@pytest.mark.parametrize(
    ("key", "data", "reason_part"),
    [
        ("t.csv.gz", b"this is not gzip", "gzip"),
        ("t.csv", b"", "empty"),
        ("t.csv", b"   \n\n", "empty"),
        ("t.tsv", b"symbol\tprice\tvolume\n", "unsupported file type"),
        ("t.csv", b"symbol,price,volume\x00\n", "NUL"),
    ],
)
def test_unreadable_objects_are_rejected(env: Env, key: str, data: bytes, reason_part: str) -> None:
    version = env.objects.put(BUCKET, key, data)
    response = env.pipeline.ingest_object(BUCKET, key, version)
    assert response["status"] == "rejected" and reason_part in response["reason"]
    assert env.queue.messages == []


def test_truncated_gzip_queues_nothing() -> None:
    env = make_env(inline_chunk_bytes=50)
    data = gzip.compress(as_csv(sample_rows(200)))
    version = env.objects.put(BUCKET, "t.csv.gz", data[:-30])
    response = env.pipeline.ingest_object(BUCKET, "t.csv.gz", version)
    assert response["status"] == "rejected"
    assert env.queue.messages == []


def test_the_same_object_version_is_ingested_once(env: Env) -> None:
    version = env.objects.put(BUCKET, "t.csv", as_csv(sample_rows()))
    first = env.pipeline.ingest_object(BUCKET, "t.csv", version)
    queued = list(env.queue.messages)
    second = env.pipeline.ingest_object(BUCKET, "t.csv", version)
    assert second == {"ingestion_id": first["ingestion_id"], "duplicate": True, "status": "queued"}
    assert env.queue.messages == queued
    # Processing the (at least once) S3 event twice still counts each tick once.
    env.run()
    assert sum(b["trades"] for b in env.bars("ESU4", "1d")) == sum(1 for r in sample_rows() if r["symbol"] == "ESU4")
    # A new version of the same key is a new ingestion.
    newer = env.objects.put(BUCKET, "t.csv", as_csv(sample_rows()[:3]))
    third = env.pipeline.ingest_object(BUCKET, "t.csv", newer)
    assert third["status"] == "queued" and third["ingestion_id"] != first["ingestion_id"]


class FailingAfter:
    """A queue that accepts the first ``ok`` sends of a request and then fails (SQS unavailable)."""

    def __init__(self, queue: MemoryQueue, ok: int) -> None:
        self.queue, self.ok = queue, ok

    def send(self, bodies: list[str]) -> int:
        for body in bodies:
            if self.ok <= 0:
                raise ConnectionError("SQS unavailable")
            self.ok -= 1
            self.queue.send([body])
        return 1


def test_a_request_whose_queueing_failed_never_counts_and_its_retry_counts_once() -> None:
    env = make_env(message_bytes=1_000)  # several messages per request
    rows = sample_rows(60)
    flaky = FailingAfter(env.queue, ok=2)
    env.with_queue(flaky)
    with pytest.raises(TransientError):
        env.pipeline.ingest_body(as_json(rows), "application/json")
    assert len(env.queue.messages) == 2  # part of the request reached the queue before the failure
    env.with_queue(env.queue)
    env.pipeline.ingest_body(as_json(rows), "application/json")  # the client retries, without a key
    env.run()
    for symbol in ("ESU4", "BTC/USDT"):
        assert values(env.bars(symbol, "1d")) == expected_bars(rows, symbol, "1d")


def test_a_chunk_counted_while_its_request_fails_to_queue_stops_counting() -> None:
    env = make_env(message_bytes=1_000)  # several messages per request
    rows = sample_rows(60)
    held = HeldResults(env.store, env.queue.receive_all, lambda m: env.pipeline.process_batch(m))
    counted: list[int] = []

    class QueueOneThenFail:
        def send(self, bodies: list[str]) -> int:
            env.queue.send(bodies[:1])
            held.start()  # the first chunk is processed, all but its result...
            env.pipeline.aggregate()  # ...and counted, as its request still counts
            counted.extend(b["trades"] for s in ("ESU4", "BTC/USDT") for b in env.bars(s, "1d"))
            raise ConnectionError("SQS unavailable")

    env.with_queue(QueueOneThenFail())
    with pytest.raises(TransientError):
        env.pipeline.ingest_body(as_json(rows), "application/json")
    assert sum(counted) > 0
    held.finish()  # the chunk's result is stored only after its request was withdrawn
    env.pipeline.aggregate()
    assert [env.bars(s, "1m") for s in ("ESU4", "BTC/USDT")] == [[], []]
    env.with_queue(env.queue)
    env.pipeline.ingest_body(as_json(rows), "application/json")  # the client retries, without a key
    env.run()
    for symbol in ("ESU4", "BTC/USDT"):
        assert values(env.bars(symbol, "1m")) == expected_bars(rows, symbol, "1m")


def test_a_withdrawal_noted_after_a_run_took_the_lease_is_seen_by_the_round_that_lists_its_marks() -> None:
    env = make_env(round_gap_seconds=0.2)
    rows = sample_rows(60)
    early = [r for r in rows if r["timestamp"] < "2024-07-02"]
    late = [r for r in rows if r["timestamp"] >= "2024-07-02"]
    withdrawn = env.pipeline.ingest_body(as_json(early), "application/json")["ingestion_id"]
    env.run()  # counted, and remembered as counting
    env.pipeline.ingest_body(as_json(late), "application/json")
    env.process()
    real_acquire = env.store.acquire_lease

    def acquire_then_withdraw(*args: Any, **kwargs: Any) -> Any:
        lease = real_acquire(*args, **kwargs)
        env.store.acquire_lease = real_acquire  # type: ignore[method-assign]
        meta = env.store.get_ingestion_meta(withdrawn)
        env.store.put_ingestion(meta.but(status=Status.FAILED))  # as when its queueing failed
        env.pipeline.sources.revisit({(r["symbol"], window_start(parse_timestamp(r["timestamp"]), "1m"))
                                      for r in early})
        return lease

    env.store.acquire_lease = acquire_then_withdraw  # type: ignore[method-assign]
    env.pipeline.aggregate()  # its first round waits out the gap, then lists the withdrawal's marks too
    assert env.store.dirty_minutes() == set()
    for symbol in ("ESU4", "BTC/USDT"):
        assert values(env.bars(symbol, "1m")) == expected_bars(late, symbol, "1m")


def test_a_retry_with_the_same_key_revives_a_failed_request(env: Env) -> None:
    rows = sample_rows(60)
    env.with_queue(FailingAfter(env.queue, ok=0))
    with pytest.raises(TransientError):
        env.pipeline.ingest_body(as_json(rows), "application/json", "key-1")
    env.with_queue(env.queue)
    env.pipeline.ingest_body(as_json(rows), "application/json", "key-1")
    env.run()
    assert values(env.bars("ESU4", "1d")) == expected_bars(rows, "ESU4", "1d")


def test_a_corrected_file_under_the_same_key_replaces_the_old_version_everywhere(env: Env) -> None:
    old_rows = sample_rows(60)
    # The correction drops the first minutes entirely and changes a price in the rest.
    new_rows = [dict(r) for r in old_rows[20:]]
    new_rows[5]["price"] = "4999.5"
    v1 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(old_rows))
    first = env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v1)
    env.run()
    v2 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(new_rows))
    env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v2)
    env.run()
    for symbol in ("ESU4", "BTC/USDT"):
        for interval in ("1m", "5m", "1d"):
            assert values(env.bars(symbol, interval)) == expected_bars(new_rows, symbol, interval)
    assert env.pipeline.ingestion_status(first["ingestion_id"])["status"] == "superseded"
    revised = [d for t, d in env.events.published if t == "BarsRevised"]
    assert revised and any(b["revision"] is None for d in revised for b in d["bars"])  # emptied windows


def test_the_windows_a_processor_revisits_are_announced_by_its_event(env: Env) -> None:
    rows = sample_rows(60)
    held = HeldResults(env.store, env.queue.receive_all, lambda m: env.pipeline.process_batch(m))
    v1 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(rows))
    env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v1)
    held.start()  # the chunk's partials and marks are stored, its result not yet...
    env.pipeline.aggregate()  # ...and another run works those marks off
    v2 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(rows[:6]))
    env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v2)  # replaced: the processor revisits the chunk
    held.finish()
    [detail] = [d for kind, d in env.events.published if kind == "TicksProcessed"]
    assert env.store.dirty and {t for _, _, t in env.store.dirty} <= set(detail["mark_tokens"])
    _delivered(env, detail)  # the event's run finds the revisit's marks left: it does not skip the symbols
    assert env.store.dirty_minutes() == set()
    assert env.store.bars_of("ESU4", "1m") == [] and env.store.bars_of("BTC/USDT", "1m") == []  # v1 no longer counts


def test_a_version_counted_while_a_newer_one_replaces_it_stops_counting(env: Env) -> None:
    old_rows = sample_rows(60)
    new_rows = old_rows[20:]  # the correction drops the first minutes entirely
    held = HeldResults(env.store, env.queue.receive_all, lambda m: env.pipeline.process_batch(m))
    v1 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(old_rows))
    env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v1)
    held.start()  # the old version's chunk is processed, all but its result...
    env.pipeline.aggregate()  # ...and counted, as it is the newest version
    assert values(env.bars("ESU4", "1m")) == expected_bars(old_rows, "ESU4", "1m")
    v2 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(new_rows))
    env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v2)  # replaces it before that result is stored
    held.finish()
    env.run()
    for symbol in ("ESU4", "BTC/USDT"):
        for interval in ("1m", "1d"):
            assert values(env.bars(symbol, interval)) == expected_bars(new_rows, symbol, interval)


def test_a_version_replaced_between_two_rounds_of_a_run_stops_counting() -> None:
    old_rows = sample_rows(60)
    new_rows = old_rows[20:]  # the correction drops the first minutes entirely
    env = make_env(max_windows_per_run=4)  # a run works the windows four at a time, in rounds
    v1 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(old_rows))
    env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v1)
    env.process()
    real_clear, real_write = env.store.clear_dirty, env.store.write_bars
    rounds: list[int] = []

    def round_ended() -> None:
        rounds.append(1)
        if len(rounds) == 1:  # after the first round, which counted the old version: the correction arrives
            v2 = env.objects.put(BUCKET, "incoming/day.csv", as_csv(new_rows))
            env.pipeline.ingest_object(BUCKET, "incoming/day.csv", v2)

    def clear_then_replace(entries: Any) -> int:
        cleared = real_clear(entries)
        round_ended()
        return cleared

    def write_then_replace(*args: Any) -> None:  # a round that changed bars deletes its marks with them
        real_write(*args)
        round_ended()

    env.store.clear_dirty = clear_then_replace  # type: ignore[method-assign]
    env.store.write_bars = write_then_replace  # type: ignore[method-assign]
    env.pipeline.aggregate()  # later rounds of the same run rebuild the windows the correction revisits
    assert len(rounds) > 2
    env.run()
    for symbol in ("ESU4", "BTC/USDT"):
        for interval in ("1m", "1d"):
            assert values(env.bars(symbol, interval)) == expected_bars(new_rows, symbol, interval)


def test_an_older_version_delivered_after_the_newer_one_is_not_counted(env: Env) -> None:
    rows = sample_rows(30)
    v1 = env.objects.put(BUCKET, "k.csv", as_csv(rows))
    v2 = env.objects.put(BUCKET, "k.csv", as_csv(rows[:10]))
    env.pipeline.ingest_object(BUCKET, "k.csv", v2)
    late = env.pipeline.ingest_object(BUCKET, "k.csv", v1)  # S3 events are not ordered
    assert late["status"] == "superseded"
    env.run()
    assert values(env.bars("ESU4", "1d")) == expected_bars(rows[:10], "ESU4", "1d")


def test_an_old_version_processed_after_the_new_one_still_drops_out(env: Env) -> None:
    rows = sample_rows(30)
    v1 = env.objects.put(BUCKET, "k.csv", as_csv(rows))
    env.pipeline.ingest_object(BUCKET, "k.csv", v1)
    old_chunks = env.queue.receive_all()  # v1's chunks are still in flight...
    v2 = env.objects.put(BUCKET, "k.csv", as_csv(rows[:10]))
    env.pipeline.ingest_object(BUCKET, "k.csv", v2)
    env.run()
    env.pipeline.process_batch(old_chunks)  # ...and land after v2 was aggregated
    env.pipeline.aggregate()
    assert values(env.bars("ESU4", "1d")) == expected_bars(rows[:10], "ESU4", "1d")


# ---------------------------------------------------------------------------------- read
@pytest.fixture
def five_minutes(env: Env) -> Env:
    rows = [{"symbol": "ESU4", "price": str(5528 + m), "volume": "1",
             "timestamp": format_ns(BASE_NS + m * 60 * SECOND)} for m in range(5)]
    env.pipeline.ingest_body(as_json(rows), "application/json")
    env.run()
    return env


def test_get_bars_pages_with_limit_and_next(five_minutes: Env) -> None:
    pages, cursor = [], None
    while True:
        page = bars_json(five_minutes.pipeline, "ESU4", "1m", limit="2", cursor=cursor)
        assert (page["symbol"], page["interval"]) == ("ESU4", "1m")
        pages.append([b["start"] for b in page["bars"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [
        ["2024-07-01T23:55:00Z", "2024-07-01T23:56:00Z"],
        ["2024-07-01T23:57:00Z", "2024-07-01T23:58:00Z"],
        ["2024-07-01T23:59:00Z"],
    ]


def test_get_bars_exact_page_has_no_next(five_minutes: Env) -> None:
    page = bars_json(five_minutes.pipeline, "ESU4", "1m", limit="5")
    assert len(page["bars"]) == 5 and page["next"] is None


def test_get_bars_time_range_is_start_inclusive_end_exclusive(five_minutes: Env) -> None:
    page = bars_json(five_minutes.pipeline, "ESU4", "1m", start="2024-07-01T23:56:00Z", end="2024-07-01T23:58:00Z")
    assert [b["start"] for b in page["bars"]] == ["2024-07-01T23:56:00Z", "2024-07-01T23:57:00Z"]
    # Epoch values work as well as ISO.
    page = bars_json(five_minutes.pipeline, "ESU4", "1m", start=str(BASE_NS // 1_000_000 + 4 * 60_000))
    assert [b["start"] for b in page["bars"]] == ["2024-07-01T23:59:00Z"]


def test_get_bars_defaults_to_1m_and_unknown_symbol_is_empty(five_minutes: Env) -> None:
    assert len(bars_json(five_minutes.pipeline, "ESU4", None)["bars"]) == 5
    empty: dict[str, Any] = {"symbol": "NQU4", "interval": "1m", "bars": [], "next": None, "next_url": None}
    assert bars_json(five_minutes.pipeline, "NQU4", "1m") == empty


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbol": None, "interval": "1m"},
        {"symbol": "", "interval": "1m"},
        {"symbol": "ES U4", "interval": "1m"},
        {"symbol": "X" * 33, "interval": "1m"},
        {"symbol": "ESU4", "interval": "7m"},  # does not divide a day
        {"symbol": "ESU4", "interval": "1M"},
        {"symbol": "ESU4", "interval": "1m", "limit": "0"},
        {"symbol": "ESU4", "interval": "1m", "limit": "10001"},
        {"symbol": "ESU4", "interval": "1m", "limit": "ten"},
        {"symbol": "ESU4", "interval": "1m", "start": "yesterday"},
        {"symbol": "ESU4", "interval": "1m", "start": "2024-07-02T00:00:00Z", "end": "2024-07-01T00:00:00Z"},
        {"symbol": "ESU4", "interval": "1m", "cursor": "%%%not-base64"},
        {"symbol": "ESU4", "interval": "1m", "cursor": "bm90LWEtbnVtYmVy"},  # base64 of "not-a-number"
    ],
)
def test_get_bars_bad_query(five_minutes: Env, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidQuery) as raised:
        bars_json(five_minutes.pipeline, **kwargs)
    assert http_error(raised.value)[0] == 400


def test_ingestion_status_of_unknown_id(env: Env) -> None:
    with pytest.raises(NotFound):
        env.pipeline.ingestion_status("api-doesnotexist")
    with pytest.raises(NotFound):
        env.pipeline.ingestion_status("")


def test_ingestion_status_before_and_after_processing() -> None:
    env = make_env(message_bytes=1_500)
    response = env.pipeline.ingest_body(as_json(sample_rows()), "application/json")
    status = env.pipeline.ingestion_status(response["ingestion_id"])
    assert status["status"] == "queued" and status["chunks"]["processed"] == 0
    messages = env.queue.receive_all()
    env.pipeline.process_batch(messages[:1])
    assert env.pipeline.ingestion_status(response["ingestion_id"])["status"] == "processing"
    env.pipeline.process_batch(messages[1:])
    done = env.pipeline.ingestion_status(response["ingestion_id"])
    assert done["status"] == "processed" and "completed_at" in done


def test_messages_in_the_earlier_form_still_in_a_queue_give_the_same_bars() -> None:
    rows = sample_rows()
    current, earlier = make_env(message_bytes=1_500), make_env(message_bytes=1_500)
    for env in (current, earlier):
        env.pipeline.ingest_body(as_json(rows), "application/json")
    rewritten = []
    for body in earlier.queue.messages:
        message = decode_message(body)
        assert isinstance(message, ColumnsMessage)
        ticks = decode_columns(message).ticks()
        rewritten.append(queue_body(TicksMessage(
            ingestion_id=message.ingestion_id, chunk=message.chunk, rank=message.rank,
            received_ns=message.received_ns, seq0=message.seq0,
            ticks=[(t.symbol, str(t.price), str(t.volume), t.ts_ns, t.trade_id, t.side, t.exchange) for t in ticks])))
    earlier.queue.messages[:] = rewritten
    current.run()
    earlier.run()
    assert all_bars(earlier) == all_bars(current)
    assert all_bars(current)[("ESU4", "1m")]


def test_ticks_arriving_during_a_run_are_worked_off_in_rounds_a_gap_apart() -> None:
    """Under a steady stream, each round rereads its minutes' partials: a symbol's rounds start at least
    round_gap_seconds apart, and what arrives meanwhile (here three requests: one during the round, two during
    the pause) is worked off in one round. The gap holds across runs: the lease carries the last round's time."""
    from chalicelib.usecases.aggregate import Aggregate

    env = make_env(round_gap_seconds=1.0)
    rows = [r for r in sample_rows(40) if r["symbol"] == "ESU4"]
    bursts = [rows[:4]] + [rows[i : i + 6] for i in range(4, len(rows), 6)]
    now = [time.time()]
    rounds: list[float] = []
    arriving = list(bursts[1:])

    def clock() -> int:
        return int(now[0] * SECOND)

    def post(part: list[dict[str, Any]], during_the_run: bool = True) -> None:
        env.pipeline.ingest_body(as_json(part), "application/json")
        assert env.process().failed_message_ids == []
        if during_the_run:  # its TicksProcessed event starts a run, which finds the lease held and asks again
            assert env.store.acquire_lease("ESU4", "other-run", clock(), 60 * SECOND) is None

    class Store(MemoryStateStore):
        def query_partials(self, symbol: str, first: int, last: int) -> list[Any]:
            rounds.append(now[0])
            found = super().query_partials(symbol, first, last)
            now[0] += 0.2  # a round takes a while, and a request comes meanwhile
            if arriving:
                post(arriving.pop(0))
            return found

    def sleep(seconds: float) -> None:
        now[0] += seconds
        for _ in range(2):  # and more during the pause
            if arriving:
                post(arriving.pop(0))

    store = Store()
    env.store = store
    env.pipeline = wire(store, env.queue, env.events, env.objects, env.pipeline.settings)

    def new_run() -> Aggregate:
        return Aggregate(store, store, store, store, store, env.pipeline.sources, env.events,
                         env.pipeline.settings, clock, sleep=sleep)

    post(bursts[0], during_the_run=False)
    new_run()(["ESU4"])
    assert not arriving and store.list_dirty(None, 100) == []
    assert len(rounds) == 1 + -(-len(bursts[1:]) // 3)  # the first round, then one per three requests
    # Another run (another invocation, another process) comes at once: it too waits out the gap.
    env.pipeline.ingest_body(as_json(rows[-1:]), "application/json")
    assert env.process().failed_message_ids == []
    new_run()(["ESU4"])
    gaps = [b - a for a, b in pairwise(rounds)]
    assert len(gaps) == len(rounds) - 1 >= 3 and min(gaps) >= 1.0 - 1e-6, rounds
    for interval in INTERVALS:
        assert values(env.bars("ESU4", interval)) == expected_bars(rows + rows[-1:], "ESU4", interval)


def test_a_long_round_is_followed_by_a_longer_gap_up_to_the_longest() -> None:
    """A round that rereads much (2 s here) makes the next wait three times its length, at most
    round_gap_max_seconds after it started; a short one keeps round_gap_seconds."""
    from chalicelib.usecases.aggregate import Aggregate

    env = make_env(round_gap_seconds=1.0, round_gap_max_seconds=5.0)
    rows = [r for r in sample_rows(40) if r["symbol"] == "ESU4"]
    now = [time.time()]
    rounds: list[float] = []
    took = [2.0, 0.2, 0.2]
    arriving = [rows[4:8], rows[8:12], rows[12:16]]

    def clock() -> int:
        return int(now[0] * SECOND)

    class Store(MemoryStateStore):
        def query_partials(self, symbol: str, first: int, last: int) -> list[Any]:
            rounds.append(now[0])
            found = super().query_partials(symbol, first, last)
            now[0] += took[min(len(rounds), len(took)) - 1]
            if arriving:
                env.pipeline.ingest_body(as_json(arriving.pop(0)), "application/json")
                assert env.process().failed_message_ids == []
                # its TicksProcessed event starts a run, which finds the lease held and asks again
                assert env.store.acquire_lease("ESU4", "other-run", clock(), 60 * SECOND) is None
            return found

    def sleep(seconds: float) -> None:
        now[0] += seconds

    store = Store()
    env.store = store
    env.pipeline = wire(store, env.queue, env.events, env.objects, env.pipeline.settings)
    env.pipeline.ingest_body(as_json(rows[:4]), "application/json")
    assert env.process().failed_message_ids == []
    run = Aggregate(store, store, store, store, store, env.pipeline.sources, env.events, env.pipeline.settings,
                    clock, sleep=sleep)
    run(["ESU4"])
    assert len(rounds) == 4 and store.list_dirty(None, 100) == []
    gaps = [round(b - a, 6) for a, b in pairwise(rounds)]
    assert gaps == [5.0, 1.0, 1.0], gaps  # 3 × 2 s, capped at 5 s; then 3 × 0.2 s is less than the least gap
    for interval in INTERVALS:
        assert values(env.bars("ESU4", interval)) == expected_bars(rows[:16], "ESU4", interval)
