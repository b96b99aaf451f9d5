"""What becomes of work that fails, on the in-memory fakes: only infrastructure failures fail a message;
anything else is set aside in the dead-letter queue, shown on the ingestion, and brought back by a redrive.
No ingestion stays "in progress" for ever.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.bootstrap import UseCases, wire, wire_operations
from chalicelib.domain.bars import Bar
from chalicelib.domain.errors import TransientError
from chalicelib.settings import Settings
from chalicelib.usecases import ingest_object, process_batch
from chalicelib.usecases.operator import Operations
from chalicelib.usecases.process_batch import MESSAGE_ATTEMPTS
from tests.fakes import (
    HeldResults,
    MemoryDeadLetterQueue,
    MemoryEvents,
    MemoryObjects,
    MemoryQueue,
    MemoryStateStore,
    bars_json,
)

SECOND = 1_000_000_000
BUCKET = "market-data-bucket-dev"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000 * SECOND

    def __call__(self) -> int:
        return self.now


class FlakyStore(MemoryStateStore):
    """A table that throttles the next ``failures`` partial writes."""

    failures = 0

    def put_partials(self, source: str, partials: Iterable[Bar]) -> int:
        if self.failures:
            self.failures -= 1
            raise TransientError("DynamoDB throttled the write")
        return super().put_partials(source, partials)


@dataclass
class Env:
    store: FlakyStore
    queue: MemoryQueue
    dead_letters: MemoryDeadLetterQueue
    objects: MemoryObjects
    clock: Clock
    pipeline: UseCases

    def rewire(self, **settings: Any) -> None:
        """The same fakes, other settings (or no dead-letter queue: ``dead_letters=None``)."""
        dead = settings.pop("dead_letters", self.dead_letters)
        self.pipeline = wire(self.store, self.queue, MemoryEvents(), self.objects,
                             replace(self.pipeline.settings, **settings), clock=self.clock, dead_letters=dead,
                             sleep=lambda seconds: None)

    def operations(self) -> Operations:
        return wire_operations(self.pipeline, self.store, self.queue, self.dead_letters, self.objects)

    def deliver(self, receive_count: int = 1) -> list[str]:
        """One delivery of every queued message; the failed ones go back on the queue, as SQS would."""
        messages = self.queue.receive_all()
        outcome = self.pipeline.process_batch([(m, body, receive_count) for m, body in messages])
        failed = set(outcome.failed_message_ids)
        self.queue.messages.extend(body for m, body in messages if m in failed)
        return outcome.failed_message_ids

    def status(self, ingestion_id: str) -> dict[str, Any]:
        return self.pipeline.ingestion_status(ingestion_id)

    def volumes(self, symbol: str) -> list[str]:
        self.pipeline.aggregate()
        return [b["volume"] for b in bars_json(self.pipeline, symbol, "1m")["bars"]]


@pytest.fixture
def env() -> Env:
    store, queue, dead, objects, clock = FlakyStore(), MemoryQueue(), MemoryDeadLetterQueue(), MemoryObjects(), Clock()
    pipeline = wire(store, queue, MemoryEvents(), objects, Settings(), clock=clock, dead_letters=dead,
                    sleep=lambda seconds: None)
    return Env(store, queue, dead, objects, clock, pipeline)


def post(env: Env, symbol: str, count: int = 3) -> str:
    body = json.dumps([{"symbol": symbol, "price": 10 + i, "volume": 1, "timestamp": f"2024-07-01T10:0{i}:00Z"}
                       for i in range(count)]).encode()
    return str(env.pipeline.ingest_body(body, "application/json")["ingestion_id"])


def test_a_throttle_blip_is_absorbed_within_the_invocation(env: Env) -> None:
    ingestion = post(env, "BLIP")
    env.store.failures = MESSAGE_ATTEMPTS - 1
    assert env.deliver() == []
    assert env.status(ingestion)["status"] == "processed" and env.volumes("BLIP") == ["1", "1", "1"]


def test_a_throttled_chunk_is_retried_then_counted_once(env: Env) -> None:
    ingestion = post(env, "THR")
    env.store.failures = MESSAGE_ATTEMPTS  # every try of one delivery
    assert len(env.deliver()) == 1  # the message fails: SQS delivers it again
    status = env.status(ingestion)
    assert status["status"] == "processing" and status["chunks"] == {"total": 1, "processed": 0, "failed": 0}
    assert status["errors"] == [{"location": "chunk 0", "field": "-",
                                 "reason": "TransientError: DynamoDB throttled the write; retrying (attempt 1)"}]
    assert env.deliver(receive_count=2) == []
    status = env.status(ingestion)
    assert (status["status"], status["accepted"], status["errors"]) == ("processed", 3, [])
    assert env.volumes("THR") == ["1", "1", "1"]
    assert list(env.dead_letters.messages) == []


def test_a_chunk_that_fails_its_last_delivery_shows_as_failed_until_redriven(env: Env) -> None:
    ingestion = post(env, "LAST")
    env.store.failures = MESSAGE_ATTEMPTS  # every try of one delivery
    [_] = env.deliver(receive_count=5)  # the redrive policy moves it to the dead-letter queue now
    body = env.queue.messages.pop()
    env.dead_letters.put(body)
    status = env.status(ingestion)
    assert status["status"] == "failed" and status["chunks"]["failed"] == 1
    assert "moved to the dead-letter queue after 5 attempts" in status["errors"][0]["reason"]

    ops = env.operations()
    assert ops.dlq.redrive(10, confirm=True)["moved"] == 1
    assert env.deliver() == []
    assert env.status(ingestion)["status"] == "processed"
    assert env.volumes("LAST") == ["1", "1", "1"]


def test_a_bug_sets_the_chunk_aside_at_once_and_a_redrive_after_the_fix_brings_it_back(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = post(env, "GOOD"), post(env, "BUGGY")
    real = process_batch.partials_from_ticks

    def broken(ticks: Any, rank: str) -> Any:
        if "BUGGY" in ticks.symbols:  # the processor hands over its ticks as columns
            raise KeyError("a bug")
        return real(ticks, rank)

    monkeypatch.setattr(process_batch, "partials_from_ticks", broken)
    assert env.deliver() == []  # no retry can help: the message is not failed...
    assert len(env.dead_letters.messages) == 1  # ...but set aside, whole
    assert env.status(good)["status"] == "processed"
    status = env.status(bad)
    assert status["status"] == "failed"
    assert status["errors"] == [{"location": "chunk 0", "field": "-", "reason": (
        "internal error: KeyError: 'a bug'; the message is in the dead-letter queue (see dlq list / dlq redrive)")}]

    monkeypatch.setattr(process_batch, "partials_from_ticks", real)  # the fix is deployed
    ops = env.operations()
    assert ops.dlq.redrive(10, confirm=True)["moved"] == 1
    assert env.deliver() == []
    assert env.status(bad)["status"] == "processed" and env.status(bad)["errors"] == []
    assert env.volumes("BUGGY") == ["1", "1", "1"]


def test_a_message_of_another_kind_goes_to_the_dead_letter_queue_and_its_ingestion_says_so(env: Env) -> None:
    ingestion = post(env, "KIND")
    [body] = env.queue.messages
    env.queue.messages = [json.dumps({**json.loads(body), "kind": "orders"})]
    assert env.deliver() == []
    assert [b for b, _, _ in env.dead_letters.messages.values()] == [json.dumps({**json.loads(body), "kind": "orders"})]
    status = env.status(ingestion)
    assert status["status"] == "failed" and "cannot be read" in status["errors"][0]["reason"]


def test_without_a_dead_letter_queue_a_hopeless_message_is_failed_so_the_redrive_policy_keeps_it(env: Env) -> None:
    env.rewire(dead_letters=None)
    env.queue.messages.append("garbage{")
    assert len(env.deliver()) == 1


def test_a_failure_of_a_redundant_delivery_never_hides_a_processed_chunk(env: Env) -> None:
    ingestion = post(env, "DUP")
    [body] = env.queue.messages
    assert env.deliver() == []
    env.queue.messages.append(body)  # SQS delivers it once more
    env.store.failures = MESSAGE_ATTEMPTS  # every try of one delivery
    assert len(env.deliver(receive_count=5)) == 1
    status = env.status(ingestion)
    assert (status["status"], status["accepted"], status["errors"]) == ("processed", 3, [])


def test_an_ingestion_without_progress_is_reported_stalled(env: Env) -> None:
    ingestion = post(env, "STALL")
    env.queue.messages.clear()  # the processor crashed on it every time, leaving no record
    assert env.status(ingestion)["status"] == "queued"
    env.clock.now += (Settings().stalled_after_seconds + 1) * SECOND
    status = env.status(ingestion)
    assert status["status"] == "stalled"
    assert status["errors"][0]["location"] == "ingestion" and "no progress for" in status["errors"][0]["reason"]


def test_a_scan_that_hits_a_bug_is_failed_not_scanning_for_ever(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.objects.put(BUCKET, "incoming/a.csv", b"symbol,price,volume\nA,1,1\n")
    monkeypatch.setattr(ingest_object, "detect_format", lambda *a: 1 / 0)
    result = env.pipeline.ingest_object(BUCKET, "incoming/a.csv", None)
    assert result["status"] == "failed"
    status = env.status(result["ingestion_id"])
    assert status["status"] == "failed" and "ZeroDivisionError" in status["errors"][0]["reason"]


def test_a_scan_that_hits_throttling_is_retried_by_the_trigger(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.objects.put(BUCKET, "incoming/b.csv", b"symbol,price,volume\nB,1,1\n")

    def throttled(*args: Any) -> Any:
        raise TransientError("S3 slowed down")

    monkeypatch.setattr(env.objects, "stream", throttled)
    with pytest.raises(TransientError):
        env.pipeline.ingest_object(BUCKET, "incoming/b.csv", None)
    monkeypatch.undo()
    result = env.pipeline.ingest_object(BUCKET, "incoming/b.csv", None)  # the retry redoes the scan
    assert result["status"] == "queued"
    assert env.deliver() == [] and env.volumes("B") == ["1"]


def test_a_compressed_file_with_a_line_too_long_for_a_message_keeps_its_other_lines(env: Env) -> None:
    rows = [json.dumps({"symbol": "GZL", "price": 1, "volume": 1, "timestamp": f"2024-07-01T10:00:0{i}Z"})
            for i in range(3)]
    big = json.dumps({"symbol": "GZL", "price": 1, "volume": 1, "note": "\x01" * 100_000})  # 600 kB as JSON text
    control = [json.dumps({"symbol": "GZL", "price": 2, "volume": 1, "note": "\x02" * 10_000})] * 20
    body = "\n".join([rows[0], big, rows[1], *control, rows[2]]) + "\n"
    env.objects.put(BUCKET, "incoming/long.ndjson.gz", gzip.compress(body.encode()))
    result = env.pipeline.ingest_object(BUCKET, "incoming/long.ndjson.gz", None)
    assert result["status"] == "queued" and result["chunks"] > 1  # split so that each message fits
    assert all(len(m.encode()) <= Settings().message_bytes for m in env.queue.messages)
    assert env.deliver() == []
    status = env.status(result["ingestion_id"])
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 23, 1)
    assert [(e["location"], e["reason"][:24]) for e in status["errors"]] == [("line 2", "is too long to queue fro")]


def test_an_object_deleted_before_its_event_is_handled_is_gone_not_failed(env: Env) -> None:
    assert env.pipeline.ingest_object(BUCKET, "incoming/never.csv", "v-none")["status"] == "gone"
    assert env.store.ingestions == {} and env.queue.messages == []


def test_splitting_a_compressed_chunk_cuts_at_line_feeds_only(env: Env) -> None:
    """A lone CR is data: a line "{...}\\r{...}" is one bad line, even when its chunk must be split."""
    row = json.dumps({"symbol": "CR", "price": 1, "volume": 1, "note": '"' * 50_000})  # 200 kB as message text
    body = "\n".join([row, row + "\r" + row, row]) + "\n"
    env.objects.put(BUCKET, "incoming/cr.ndjson.gz", gzip.compress(body.encode()))
    result = env.pipeline.ingest_object(BUCKET, "incoming/cr.ndjson.gz", None)
    assert env.deliver() == []
    status = env.status(result["ingestion_id"])
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 2, 1)
    assert [e["location"] for e in status["errors"]] == ["line 2"]


def test_only_the_infrastructures_errors_are_transient() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError

    from chalicelib.adapters.failures import is_transient

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert is_transient(TransientError("x"))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://x"))
    assert is_transient(client_error("ThrottlingException", 400))
    assert is_transient(client_error("ServiceUnavailable", 503))
    assert not is_transient(client_error("ValidationException", 400))
    assert not is_transient(client_error("AccessDenied", 403))
    assert not is_transient(ParamValidationError(report="bad parameter"))  # a bug: retrying cannot help
    assert not is_transient(KeyError("bug"))


def test_queue_messages_are_ascii_whatever_the_file_holds(env: Env) -> None:
    """SQS refuses U+FFFE and U+FFFF in a message; JSON escapes keep any text deliverable."""
    body = "symbol,price,volume,timestamp\nFFFF,1,1,1719800000\nFF\uffffFF,1,1,1719800000\n".encode()
    env.objects.put(BUCKET, "incoming/\uffff.csv.gz", gzip.compress(body))
    result = env.pipeline.ingest_object(BUCKET, "incoming/\uffff.csv.gz", None)
    assert result["status"] == "queued" and all(m.isascii() for m in env.queue.messages)
    assert env.deliver() == []
    status = env.status(result["ingestion_id"])
    assert (status["accepted"], status["rejected"]) == (1, 1)


def test_a_file_whose_scan_fails_counts_not_at_all_until_replayed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(f"HALF,{10 + i},1,2024-07-01T10:{i:02d}:00Z\n" for i in range(40))
    env.objects.put(BUCKET, "incoming/half.csv", ("symbol,price,volume,timestamp\n" + rows).encode())
    env.rewire(chunk_bytes=64)
    sends = []
    real_send = env.queue.send

    def send_then_break(bodies: Any) -> int:
        sends.append(len(bodies))
        if len(sends) == 2:  # the first chunks are processed and aggregated while the scan goes on...
            assert env.deliver() == []
            assert env.volumes("HALF")
            raise RuntimeError("a bug half-way through the scan")  # ...then it fails
        return real_send(bodies)

    monkeypatch.setattr(env.queue, "send", send_then_break)
    result = env.pipeline.ingest_object(BUCKET, "incoming/half.csv", None)
    assert result["status"] == "failed"
    assert env.volumes("HALF") == []  # what had been counted is withdrawn
    monkeypatch.setattr(env.queue, "send", real_send)
    replayed = env.pipeline.ingest_object(BUCKET, "incoming/half.csv", None, force=True)  # after the fix
    assert replayed["status"] == "queued" and replayed["ingestion_id"] == result["ingestion_id"]
    assert env.deliver() == []
    assert env.volumes("HALF") == ["1"] * 40


def test_a_chunk_counted_while_its_files_scan_fails_stops_counting(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(f"HELD,{10 + i},1,2024-07-01T10:{i:02d}:00Z\n" for i in range(40))
    env.objects.put(BUCKET, "incoming/held.csv", ("symbol,price,volume,timestamp\n" + rows).encode())
    env.rewire(chunk_bytes=64)
    held = HeldResults(env.store, env.queue.receive_all, lambda messages: env.pipeline.process_batch(messages))
    sends = []
    real_send = env.queue.send

    def send_then_break(bodies: Any) -> int:
        sends.append(len(bodies))
        if len(sends) == 2:
            held.start()  # the first chunks are processed, all but their results...
            assert env.volumes("HELD")  # ...and counted, while the scan goes on
            raise RuntimeError("a bug half-way through the scan")
        return real_send(bodies)

    monkeypatch.setattr(env.queue, "send", send_then_break)
    assert env.pipeline.ingest_object(BUCKET, "incoming/held.csv", None)["status"] == "failed"
    held.finish()  # their results are stored only after the failed file was withdrawn
    assert env.volumes("HELD") == []
