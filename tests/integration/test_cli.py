"""The operator command line (chalicelib.cli.main) in-process against moto, on a provisioned stage.

Assertions are on state: queue depths and bodies, what is in the table, the bars the pipeline serves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.bootstrap import UseCases, build_use_cases
from chalicelib.domain.timefmt import parse_timestamp
from chalicelib.entrypoints.cli import main
from chalicelib.settings import Settings
from tests.fakes import bars_json, seed_bars

Cli = Callable[..., tuple[int, Any, str]]
STAGE = "itest"  # the stage of tests/integration/conftest.py's settings, named by the convention


@pytest.fixture
def cli(provisioned: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]) -> Cli:
    assert Settings.for_stage(STAGE, {}) == settings  # the CLI finds what conftest provisioned
    def run(*argv: str) -> tuple[int, Any, str]:
        capsys.readouterr()  # drop what the test's own setup printed
        code = main(["--stage", STAGE, *argv])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err

    return run


@pytest.fixture
def sqs(session: boto3.session.Session) -> Any:
    return session.client("sqs")


@pytest.fixture
def pipeline(provisioned: dict[str, str], settings: Settings) -> UseCases:
    return build_use_cases(settings)


def queue_url(sqs: Any, name: str) -> str:
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def take_all(sqs: Any, url: str) -> list[tuple[str, str]]:
    """Receive and delete every message: (message id, body) pairs."""
    out: list[tuple[str, str]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not messages:
            return out
        for m in messages:
            out.append((m["MessageId"], m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def process_all(pipeline: UseCases, sqs: Any, url: str) -> None:
    """What the processor and the aggregator would do with everything queued."""
    outcome = pipeline.process_batch(take_all(sqs, url))
    assert outcome.failed_message_ids == []
    pipeline.aggregate()


def tick_rows(symbol: str, minutes: int = 3) -> list[dict[str, str]]:
    return [{"symbol": symbol, "price": str(Decimal("100.25") + i), "volume": str(i + 1),
             "timestamp": f"2024-07-01T10:{i // 2:02d}:{(i * 13) % 60:02d}Z"} for i in range(2 * minutes)]


def volumes(pipeline: UseCases, symbol: str, interval: str = "1m") -> Decimal:
    return sum((Decimal(b["volume"]) for b in bars_json(pipeline, symbol, interval, limit="5000")["bars"]), Decimal(0))


# ---------------------------------------------------------------------------------------------- status
def test_status_prints_what_the_api_answers(cli: Cli, pipeline: UseCases) -> None:
    accepted = pipeline.ingest_body(json.dumps(tick_rows("STAT")).encode(), "application/json")
    code, doc, _ = cli("status", accepted["ingestion_id"])
    assert code == 0
    assert doc == pipeline.ingestion_status(accepted["ingestion_id"])
    assert doc["status"] == "queued" and doc["accepted"] == 6


def test_status_of_an_unknown_ingestion_exits_1_with_one_line(cli: Cli) -> None:
    code, doc, err = cli("status", "api-doesnotexist")
    assert code == 1 and doc is None
    assert err.startswith("error: no ingestion") and err.count("\n") == 1


def test_bad_arguments_exit_2(cli: Cli) -> None:
    code, doc, err = cli("recompute", "--symbol", "AAPL", "--start", "yesterday-ish")
    assert (code, doc) == (2, None) and err.startswith("error: --start")
    code, doc, err = cli("recompute", "--symbol", "AAPL", "--start", "0001-01-01")
    assert (code, doc) == (2, None) and "must be between 1970-01-01T00:00:00Z" in err


@pytest.mark.parametrize("count", ["1_0", "\u0661\u0660", "\uff11", "\u00b2", "-1", "ten"])
def test_counts_are_written_with_ascii_digits(cli: Cli, count: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli("dlq", "list", "--max", count)
    assert exited.value.code == 2


# ---------------------------------------------------------------------------------------------- dead letters
def test_dlq_list_leaves_messages_and_redrive_moves_only_with_yes(
    cli: Cli, sqs: Any, settings: Settings, pipeline: UseCases
) -> None:
    dlq, queue = queue_url(sqs, settings.dead_letter_queue_name), queue_url(sqs, settings.queue_name)
    poison = "this is not a pipeline message"
    pipeline.ingest_body(json.dumps(tick_rows("DLQ.A")).encode(), "application/json")
    ((_, ticks_body),) = take_all(sqs, queue)
    for body in (poison, ticks_body):
        sqs.send_message(QueueUrl=dlq, MessageBody=body)

    code, doc, _ = cli("dlq", "list")
    assert code == 0 and doc["shown"] == 2
    summaries = {m["body"]["kind"]: m for m in doc["messages"]}
    assert summaries["columns"]["body"]["ticks"] == 6 and summaries["columns"]["body"]["valid"] is True
    assert summaries[None]["body"]["valid"] is False and summaries[None]["receive_count"] >= 1
    assert "100.25" not in json.dumps(doc)  # a summary, never the tick payload
    assert (depth(sqs, dlq), depth(sqs, queue)) == (2, 0)  # looked at, not consumed

    code, doc, _ = cli("dlq", "redrive")
    assert code == 0 and doc["dry_run"] is True and doc["would_move"] == 2 and "--yes" in doc["confirm"]
    assert (depth(sqs, dlq), depth(sqs, queue)) == (2, 0)

    code, doc, _ = cli("dlq", "redrive", "--yes", "--max", "1")
    assert code == 0 and doc["moved"] == 1
    assert (depth(sqs, dlq), depth(sqs, queue)) == (1, 1)
    code, doc, _ = cli("dlq", "redrive", "--yes")
    assert code == 0 and doc["moved"] == 1
    assert depth(sqs, dlq) == 0
    assert sorted(body for _, body in take_all(sqs, queue)) == sorted([poison, ticks_body])


# ---------------------------------------------------------------------------------------------- replay
def test_replay_previews_then_requeues_objects_ingested_already_without_doubling(
    cli: Cli, session: boto3.session.Session, sqs: Any, settings: Settings, pipeline: UseCases
) -> None:
    s3 = session.client("s3")
    bucket, queue = settings.bucket_name, queue_url(sqs, settings.queue_name)
    rows = tick_rows("REPLAY.A")
    csv = "symbol,price,volume,timestamp\n" + "".join(
        f"{r['symbol']},{r['price']},{r['volume']},{r['timestamp']}\n" for r in rows)
    s3.put_object(Bucket=bucket, Key="replay/a.csv", Body=csv.encode())
    s3.put_object(Bucket=bucket, Key="replay/b.ndjson", Body=json.dumps(tick_rows("REPLAY.B")[0]).encode() + b"\n")
    s3.put_object(Bucket=bucket, Key="other/c.csv", Body=csv.encode())
    # The S3 trigger ingested a.csv once; a second trigger is a duplicate (the default is unchanged).
    first = pipeline.ingest_object(bucket, "replay/a.csv", None)
    process_all(pipeline, sqs, queue)
    assert pipeline.ingest_object(bucket, "replay/a.csv", None)["duplicate"] is True
    assert depth(sqs, queue) == 0
    once = volumes(pipeline, "REPLAY.A")
    assert once == sum(Decimal(r["volume"]) for r in rows)

    code, doc, _ = cli("replay", "--prefix", "replay/")
    assert code == 0 and doc["dry_run"] is True and doc["selected"] == 2
    assert {o["key"]: o["previous_status"] for o in doc["objects"]} == {"replay/a.csv": "processed",
                                                                       "replay/b.ndjson": None}
    assert depth(sqs, queue) == 0

    code, doc, _ = cli("replay", "--prefix", "replay/", "--yes")
    assert code == 0 and doc["replayed"] == 2
    replayed = {o["key"]: o for o in doc["objects"]}
    assert replayed["replay/a.csv"]["ingestion_id"] == first["ingestion_id"]
    assert {o["status"] for o in doc["objects"]} == {"queued"}
    assert depth(sqs, queue) == sum(o["chunks"] for o in doc["objects"]) == 2

    process_all(pipeline, sqs, queue)
    assert volumes(pipeline, "REPLAY.A") == once  # the same chunks overwrote their partials
    assert volumes(pipeline, "REPLAY.B") == Decimal("1")

    code, doc, _ = cli("replay", "--prefix", "replay/", "--since", "2200-01-01T00:00:00Z")
    assert code == 0 and doc["selected"] == 0
    code, doc, _ = cli("replay", "--prefix", "replay/", "--max", "1")
    assert code == 0 and doc["selected"] == 1 and doc["more_beyond_max"] is True


# ---------------------------------------------------------------------------------------------- recompute
def test_recompute_restores_deleted_bars_and_drops_bars_without_partials(
    cli: Cli, session: boto3.session.Session, sqs: Any, settings: Settings, pipeline: UseCases
) -> None:
    ddb = session.client("dynamodb")
    symbol = "RECOMP"
    pipeline.ingest_body(json.dumps(tick_rows(symbol)).encode(), "application/json")
    process_all(pipeline, sqs, queue_url(sqs, settings.queue_name))

    def served(interval: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in b.items() if k != "revision"}
                for b in bars_json(pipeline, symbol, interval, limit="5000")["bars"]]

    before = {iv: served(iv) for iv in ("1m", "5m", "1h")}
    assert len(before["1m"]) == 3
    lost = parse_timestamp("2024-07-01T10:01:00Z")
    ddb.delete_item(TableName=settings.table_name,
                    Key={"pk": {"S": f"B#{symbol}#1m"}, "sk": {"S": f"{lost:020d}"}})
    five = parse_timestamp("2024-07-01T10:00:00Z")
    ddb.delete_item(TableName=settings.table_name, Key={"pk": {"S": f"B#{symbol}#5m"}, "sk": {"S": f"{five:020d}"}})
    # A 1m bar whose minute has no partial (bars are derived from partials): recompute drops it.
    store = DynamoStateStore(ddb, settings.table_name)
    some_bar = store.query_bars(symbol, "1m", 0, 10**19)[0][0][0]
    seed_bars(store, [(replace(some_bar, start_ns=parse_timestamp("2024-07-01T10:30:00Z")), 1)], 0)
    assert len(served("1m")) == 3 and len(served("5m")) == 0

    code, doc, _ = cli("recompute", "--symbol", symbol, "--start", "2024-07-01T10:00:00Z",
                       "--end", "2024-07-01T11:00:00Z")
    assert code == 0
    assert (doc["minutes_with_partials"], doc["bars_without_partials"], doc["minutes_marked"]) == (3, 1, 4)
    assert doc["aggregation"]["complete"] is True
    assert {iv: served(iv) for iv in before} == before
    assert store.list_dirty([symbol], 100) == []

    code, doc, _ = cli("recompute", "--symbol", symbol, "--start", "2024-07-02T00:00:00Z")
    assert code == 0 and doc["minutes_marked"] == 0 and doc["aggregation"] is None
