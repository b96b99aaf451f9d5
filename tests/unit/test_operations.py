"""The operator's commands (chalicelib/usecases/operator.py) on the in-memory fakes: assertions on queue and
store state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest

from chalicelib.bootstrap import UseCases, wire, wire_operations
from chalicelib.domain.errors import InvalidQuery, OperationIncomplete, TransientError
from chalicelib.domain.timefmt import parse_timestamp
from chalicelib.settings import Settings
from chalicelib.usecases.operator import Operations, summarize_body
from tests.fakes import (
    MemoryDeadLetterQueue,
    MemoryEvents,
    MemoryObjects,
    MemoryQueue,
    MemoryStateStore,
    bars_json,
    drop_bars,
)

BUCKET = "market-data-bucket-dev"


class RefusingQueue(MemoryQueue):
    """A processing queue that is down."""

    def send(self, bodies: Sequence[str]) -> int:
        raise TransientError("SQS is unavailable")


@dataclass
class Env:
    store: MemoryStateStore
    queue: MemoryQueue
    objects: MemoryObjects
    dead_letters: MemoryDeadLetterQueue
    pipeline: UseCases
    ops: Operations

    def run(self) -> None:
        assert self.pipeline.process_batch(self.queue.receive_all()).failed_message_ids == []
        self.pipeline.aggregate()


def make_env(queue: MemoryQueue | None = None) -> Env:
    store, objects, dead_letters = MemoryStateStore(), MemoryObjects(), MemoryDeadLetterQueue()
    queue = queue or MemoryQueue()
    pipeline = wire(store, queue, MemoryEvents(), objects, Settings())
    return Env(store, queue, objects, dead_letters, pipeline, wire_operations(pipeline, store, queue, dead_letters,
                                                                              objects))


def ticks_body(symbol: str, count: int = 4) -> bytes:
    return json.dumps([{"symbol": symbol, "price": f"{10 + i}.5", "volume": i + 1,
                        "timestamp": f"2024-07-01T09:0{i}:30Z"} for i in range(count)]).encode()


def test_summary_names_the_message_but_never_its_ticks() -> None:
    env = make_env()
    env.pipeline.ingest_body(ticks_body("SUMM"), "application/json")
    (body,) = env.queue.messages
    summary = summarize_body(body)
    assert summary["kind"] == "columns" and summary["ticks"] == 4 and summary["valid"] is True
    assert "10.5" not in json.dumps(summary)
    broken = summarize_body(json.dumps({"v": 1, "kind": "ticks", "ingestion_id": "x", "chunk": 0, "ticks": "SECRET"}))
    assert broken["valid"] is False and "SECRET" not in json.dumps(broken)
    assert summarize_body("garbage")["problem"] == "not JSON"


def test_redrive_previews_then_moves_and_a_failed_send_loses_nothing() -> None:
    env = make_env()
    for n in range(3):
        env.dead_letters.put(f"message {n}")
    preview = env.ops.dlq.redrive(max_messages=2)
    assert preview["dry_run"] is True and preview["would_move"] == 2
    assert (env.dead_letters.approximate_depth(), env.queue.messages) == (3, [])

    moved = env.ops.dlq.redrive(max_messages=2, confirm=True)
    assert moved["moved"] == 2 and env.queue.messages == ["message 0", "message 1"]
    assert env.dead_letters.bodies() == ["message 2"]

    down = make_env(RefusingQueue())
    down.dead_letters.put("precious")
    with pytest.raises(OperationIncomplete) as failure:
        down.ops.dlq.redrive(confirm=True)
    assert failure.value.result["moved"] == 0
    assert down.dead_letters.bodies() == ["precious"] and down.dead_letters.approximate_depth() == 1


def test_replay_forces_an_ingested_version_and_its_chunks_overwrite() -> None:
    env = make_env()
    env.objects.put(BUCKET, "in/a.ndjson", b"".join(json.dumps(r).encode() + b"\n"
                                                    for r in json.loads(ticks_body("RPL"))))
    env.objects.put(BUCKET, "elsewhere/b.ndjson", b"{}\n")
    first = env.pipeline.ingest_object(BUCKET, "in/a.ndjson", None)
    env.run()
    volume = bars_json(env.pipeline, "RPL", "1h")["bars"][0]["volume"]

    preview = env.ops.replay("in/")
    assert [(o["key"], o["previous_status"]) for o in preview["objects"]] == [("in/a.ndjson", "processed")]
    assert env.queue.messages == []
    done = env.ops.replay("in/", confirm=True)
    assert done["objects"][0]["ingestion_id"] == first["ingestion_id"] and len(env.queue.messages) == 1
    env.run()
    assert bars_json(env.pipeline, "RPL", "1h")["bars"][0]["volume"] == volume == "10"
    with pytest.raises(InvalidQuery):
        env.ops.replay("in/", since="2024-07-02T00:00:00Z", until="2024-07-01T00:00:00Z")


def test_recompute_marks_minutes_with_partials_and_rebuilds_them() -> None:
    env = make_env()
    env.pipeline.ingest_body(ticks_body("RCP"), "application/json")
    env.run()
    before = env.store.bars_of("RCP", "1m")
    lost = parse_timestamp("2024-07-01T09:02:00Z")
    drop_bars(env.store, [("RCP", "1m", lost), ("RCP", "1h", parse_timestamp("2024-07-01T09:00:00Z"))])

    result = env.ops.recompute("RCP", start="2024-07-01T09:01:10Z", end="2024-07-01T09:03:00Z")
    assert (result["minutes_with_partials"], result["minutes_marked"]) == (2, 2)
    assert result["first_minute"] == "2024-07-01T09:01:00Z" and result["aggregation"]["complete"] is True
    assert env.store.bars_of("RCP", "1m") == before
    hour = env.store.bar("RCP", "1h", parse_timestamp("2024-07-01T09:00:00Z"))
    assert hour is not None and hour[0].volume == Decimal(10)
    assert env.store.dirty_minutes() == set()
    with pytest.raises(InvalidQuery):
        env.ops.recompute("not a symbol!")


def test_stage_settings_follow_the_naming_convention_and_ignore_another_stages_names() -> None:
    shell = {"STAGE": "dev", "TABLE_NAME": "MarketDataState-dev", "QUEUE_NAME": "custom-dev", "MAX_ERRORS": "7"}
    prod = Settings.for_stage("prod", shell)
    assert (prod.stage, prod.table_name, prod.bucket_name, prod.queue_name, prod.dead_letter_queue_name) == (
        "prod", "MarketDataState-prod", "market-data-bucket-prod", "market-data-ingest-prod",
        "market-data-ingest-dlq-prod")
    assert prod.max_errors == 7
    assert Settings.for_stage(None, shell).queue_name == Settings.for_stage("dev", shell).queue_name == "custom-dev"
