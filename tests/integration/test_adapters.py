"""Each adapter against moto: what ends up in the table, queue, bucket and event targets."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.adapters.events import EventBridgePublisher
from chalicelib.adapters.s3 import S3ObjectStore
from chalicelib.adapters.sqs import SqsTickQueue
from chalicelib.domain.bars import MINUTE_NS, Bar
from chalicelib.domain.errors import NotFound, QueueRejected
from chalicelib.settings import Settings
from tests.fakes import MemoryObjects, seed_bars


def _bar(symbol: str, minute: int, price: str = "10.5", interval: str = "1m") -> Bar:
    p = Decimal(price)
    start = minute * MINUTE_NS
    return Bar(symbol, interval, start, p, p, p, p, Decimal("2"), p * 2, 1, start + 1, start + 1,
               f"{start + 1:020d}|a", f"{start + 1:020d}|a")


class UnprocessedOnce:
    """A real DynamoDB client that, like DynamoDB under load, leaves part of each first batch unprocessed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.unprocessed_returned = 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        (table, requests), = RequestItems.items()
        assert len(requests) <= 25, "DynamoDB accepts at most 25 items per BatchWriteItem"
        keep, defer = requests[: len(requests) // 2], requests[len(requests) // 2 :]
        if not defer or self.unprocessed_returned >= 3:
            return self._client.batch_write_item(RequestItems=RequestItems)
        self._client.batch_write_item(RequestItems={table: keep})
        self.unprocessed_returned += 1
        return {"UnprocessedItems": {table: defer}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_partials_written_past_the_batch_limit_and_unprocessed_items_retried(
    provisioned: dict[str, str], settings: Settings, session: boto3.session.Session
) -> None:
    client = UnprocessedOnce(session.client("dynamodb"))
    store = DynamoStateStore(client, settings.table_name)
    written = store.put_partials("ing-1#000000", [_bar("AAPL", m) for m in range(60)])
    assert written == 60
    assert client.unprocessed_returned == 3
    stored = store.query_partials("AAPL", 0, 59 * MINUTE_NS)
    assert sorted(b.start_ns for _, b in stored) == [m * MINUTE_NS for m in range(60)]
    assert {source for source, _ in stored} == {"ing-1#000000"}
    # The same source again overwrites instead of adding.
    store.put_partials("ing-1#000000", [_bar("AAPL", m, "11") for m in range(60)])
    again = store.query_partials("AAPL", 0, 59 * MINUTE_NS)
    assert len(again) == 60 and {b.close for _, b in again} == {Decimal("11")}


def test_queue_packs_batches_within_sqs_limits(provisioned: dict[str, str], settings: Settings,
                                               session: boto3.session.Session) -> None:
    queue = SqsTickQueue(session.client("sqs"), settings.queue_name)
    bodies = [json.dumps({"n": i, "pad": "x" * 100_000}) for i in range(5)]
    bodies += [json.dumps({"n": i}) for i in range(5, 30)]
    requests = queue.send(bodies)
    assert requests >= 4  # 100 kB bodies cannot share a 256 KiB batch more than two at a time
    sqs = session.client("sqs")
    got = []
    while True:
        r = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10)
        if not r.get("Messages"):
            break
        got += [json.loads(m["Body"])["n"] for m in r["Messages"]]
        sqs.delete_message_batch(QueueUrl=queue.url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(r["Messages"])])
    assert sorted(got) == list(range(30))


def test_batches_go_concurrently_and_a_refused_one_does_not_stop_the_others(
        provisioned: dict[str, str], settings: Settings, session: boto3.session.Session) -> None:
    real = session.client("sqs")

    class RefusesNumberThree:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            if any(json.loads(e["MessageBody"])["n"] == 3 for e in Entries):
                return {"Failed": [{"Id": e["Id"], "SenderFault": True, "Message": "refused"} for e in Entries]}
            return real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)

    queue = SqsTickQueue(RefusesNumberThree(), settings.queue_name)
    bodies = [json.dumps({"n": i, "pad": "x" * 200_000}) for i in range(12)]  # one body per batch
    with pytest.raises(QueueRejected):
        queue.send(bodies)
    got = []
    while True:
        r = real.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10)
        if not r.get("Messages"):
            break
        got += [json.loads(m["Body"])["n"] for m in r["Messages"]]
        real.delete_message_batch(QueueUrl=queue.url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(r["Messages"])])
    assert sorted(got) == [n for n in range(12) if n != 3]  # every other batch was sent; the caller withdraws


def test_published_event_reaches_the_rule_target(provisioned: dict[str, str], settings: Settings,
                                                 session: boto3.session.Session) -> None:
    EventBridgePublisher(session.client("events"), "default", "market-data.pipeline").publish(
        "TicksProcessed", {"ingestion_ids": ["x"], "changes": []})
    sqs = session.client("sqs")
    messages = sqs.receive_message(QueueUrl=provisioned["events_queue_url"], MaxNumberOfMessages=10)["Messages"]
    event = json.loads(messages[0]["Body"])
    assert event["source"] == "market-data.pipeline" and event["detail"]["ingestion_ids"] == ["x"]


def test_object_reads_ranges_streams_and_metadata(provisioned: dict[str, str], settings: Settings,
                                                  session: boto3.session.Session) -> None:
    s3 = session.client("s3")
    body = b"".join(f"{i},1.5,2\n".encode() for i in range(1000))
    put = s3.put_object(Bucket=settings.bucket_name, Key="incoming/t.csv", Body=body, Metadata={"symbol": "ESU4"})
    objects = S3ObjectStore(s3)
    info = objects.head(settings.bucket_name, "incoming/t.csv", put["VersionId"])
    assert info.size == len(body) and info.metadata == {"symbol": "ESU4"} and info.version_id == put["VersionId"]
    assert objects.read_range(settings.bucket_name, "incoming/t.csv", put["VersionId"], 10, 30) == body[10:30]
    assert b"".join(objects.stream(settings.bucket_name, "incoming/t.csv", put["VersionId"])) == body
    s3.put_object(Bucket=settings.bucket_name, Key="incoming/t.csv", Body=gzip.compress(b"new"))
    # The old version stays readable by its id: a chunk queued before an overwrite reads what was uploaded.
    assert objects.read_all(settings.bucket_name, "incoming/t.csv", put["VersionId"]) == body
    # An object deleted before its event was handled is NotFound, as the in-memory twin says.
    s3.delete_object(Bucket=settings.bucket_name, Key="incoming/t.csv", VersionId=put["VersionId"])
    for store in (objects, MemoryObjects()):
        with pytest.raises(NotFound):
            store.head(settings.bucket_name, "incoming/t.csv", put["VersionId"])
    with pytest.raises(NotFound):
        objects.head(settings.bucket_name, "incoming/never.csv", None)


def test_the_current_version_of_a_key_costs_one_head_object_whatever_the_bucket_holds(
    provisioned: dict[str, str], settings: Settings, session: boto3.session.Session
) -> None:
    """Every ingestion and every counted file source asks which version of its key is current.
    ListObjectVersions would walk every version under the prefix (moto copies every version in the bucket,
    bytes and all, on each call); HeadObject reads the one key. Only a key whose current version is a delete
    marker has its versions listed."""
    s3 = session.client("s3")
    bucket = settings.bucket_name
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"incoming/other-{i}.csv", Body=b"x" * 100_000)
    s3.put_object(Bucket=bucket, Key="incoming/t.csv", Body=b"1")
    newest = s3.put_object(Bucket=bucket, Key="incoming/t.csv", Body=b"2")["VersionId"]
    objects = S3ObjectStore(s3)
    operations: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: operations.append(model.name))
    assert objects.latest_version(bucket, "incoming/t.csv") == newest
    assert objects.latest_version(bucket, "incoming/never.csv") is None
    assert operations == ["HeadObject", "HeadObject"]
    s3.delete_object(Bucket=bucket, Key="incoming/t.csv")
    operations.clear()
    assert objects.latest_version(bucket, "incoming/t.csv") == newest
    assert operations == ["HeadObject", "ListObjectVersions"]
    # A bucket that was never versioned: its objects have no version id to name.
    s3.create_bucket(Bucket="market-data-unversioned-itest")
    s3.put_object(Bucket="market-data-unversioned-itest", Key="t.csv", Body=b"1")
    assert objects.latest_version("market-data-unversioned-itest", "t.csv") is None
    assert objects.latest_version("market-data-unversioned-itest", "gone.csv") is None


def test_provisioned_resources_follow_the_stage_settings(provisioned: dict[str, str], settings: Settings,
                                                         session: boto3.session.Session) -> None:
    s3 = session.client("s3")
    assert s3.get_bucket_versioning(Bucket=settings.bucket_name)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=settings.bucket_name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ddb = session.client("dynamodb")
    table = ddb.describe_table(TableName=settings.table_name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    backups = ddb.describe_continuous_backups(TableName=settings.table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    sqs = session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=provisioned["queue_url"], AttributeNames=["RedrivePolicy"])
    redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
    assert settings.dead_letter_queue_name in redrive["deadLetterTargetArn"]



def test_every_read_of_the_state_table_is_strongly_consistent(
    provisioned: dict[str, str], settings: Settings, session: boto3.session.Session
) -> None:
    """The aggregator reads back what it has just written; DynamoDB is eventually consistent unless asked.

    moto is always consistent, so this asserts on what is sent: each Query and GetItem asks for a
    strongly consistent read.
    """
    client = session.client("dynamodb")
    reads: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("Query", "GetItem", "Scan", "BatchGetItem"):
            reads.append((model.name, params))

    client.meta.events.register("before-parameter-build.dynamodb", record)
    store = DynamoStateStore(client, settings.table_name)
    seed_bars(store, [(_bar("AAPL", m), 1) for m in range(3)], 1)
    store.put_partials("ing-1#000000", [_bar("AAPL", m) for m in range(3)])
    store.mark_dirty([("AAPL", 0)], "t1")
    assert [b.start_ns for b, _ in store.query_bars("AAPL", "1m", 0, 10 * MINUTE_NS)[0]] == [0, MINUTE_NS,
                                                                                              2 * MINUTE_NS]
    assert len(store.query_partials("AAPL", 0, 2 * MINUTE_NS)) == 3
    assert store.list_partial_minutes("AAPL", 0, 2 * MINUTE_NS) == [0, MINUTE_NS, 2 * MINUTE_NS]
    assert store.list_dirty(None, 10) == [("AAPL", 0, "t1")]
    assert store.get_ingestion("none") == (None, [])
    assert len(store.get_bars("AAPL", [("1m", 0), ("5m", 0)])) == 1
    assert store.any_dirty("AAPL", 0, MINUTE_NS) and store.dirty_symbols() == ["AAPL"]

    def consistent(name: str, params: dict[str, Any]) -> bool:
        if name == "BatchGetItem":
            return all(r.get("ConsistentRead") is True for r in params["RequestItems"].values())
        return params.get("ConsistentRead") is True

    assert {name for name, _ in reads} >= {"Query", "BatchGetItem"}
    assert [name for name, params in reads if not consistent(name, params)] == []
