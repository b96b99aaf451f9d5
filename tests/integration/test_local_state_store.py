"""The emulator's snapshot (localrun/persistence.py), on moto in this process: what is saved comes back as it
was, object bytes are written once, and a snapshot of another layout is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localrun.emulator import written_services
from localrun.persistence import BLOBS, MANIFEST, SERVICES, StateRefused, StateStore, move_aside

REGION = "us-east-1"
BUCKET = "state-test-bucket"
TABLE = "StateTest"


def _clients() -> tuple[Any, Any, Any]:
    return (boto3.client("s3", region_name=REGION), boto3.client("dynamodb", region_name=REGION),
            boto3.client("sqs", region_name=REGION))


def _populate() -> dict[str, Any]:
    s3, ddb, sqs = _clients()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket=BUCKET, Key="a.csv", Body=f"v{n}".encode() * 1000)["VersionId"] for n in range(3)]
    s3.put_object(Bucket=BUCKET, Key="gone.csv", Body=b"x", Metadata={"source-rank": "2"})
    s3.delete_object(Bucket=BUCKET, Key="gone.csv")  # a delete marker on top
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    for n in range(50):
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"B#{n % 3}"}, "sk": {"S": f"{n:04}"},
                                            "v": {"N": str(n)}, "d": {"S": "1.25"}})
    url = sqs.create_queue(QueueName="state-test")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)  # one in flight
    return {"versions": ids, "queue": url}


def _save_all(store: StateStore) -> None:
    store.write(store.capture(set(SERVICES)))


def test_a_snapshot_comes_back_as_it_was(tmp_path: Path) -> None:
    with mock_aws():
        made = _populate()
        store = StateStore(tmp_path, REGION)
        _save_all(store)
        s3, ddb, _ = _clients()
        listed_before = s3.list_object_versions(Bucket=BUCKET)
        items_before = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]

    with mock_aws():
        s3, ddb, sqs = _clients()
        assert s3.list_buckets()["Buckets"] == []  # a new, empty emulator
        restored = StateStore(tmp_path, REGION).load()
        assert restored == {"s3": 5, "dynamodb": 50, "sqs": 3}
        listed = s3.list_object_versions(Bucket=BUCKET)
        for part in ("Versions", "DeleteMarkers"):
            assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed[part]] == \
                   [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed_before[part]]
        for n, version in enumerate(made["versions"]):
            body = s3.get_object(Bucket=BUCKET, Key="a.csv", VersionId=version)["Body"].read()
            assert body == f"v{n}".encode() * 1000
        assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
        gone = next(v for v in listed["Versions"] if v["Key"] == "gone.csv")
        head = s3.head_object(Bucket=BUCKET, Key="gone.csv", VersionId=gone["VersionId"])
        assert head["Metadata"] == {"source-rank": "2"}
        assert sorted(map(json.dumps, ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"])) == \
               sorted(map(json.dumps, items_before))
        # The message that was in flight is delivered again at once, with its receive count.
        got = sqs.receive_message(QueueUrl=made["queue"], MaxNumberOfMessages=10, AttributeNames=["All"])
        bodies = {m["Body"]: int(m["Attributes"]["ApproximateReceiveCount"]) for m in got["Messages"]}
        assert sorted(bodies) == ["m0", "m1", "m2"]
        assert sorted(bodies.values()) == [1, 1, 2]
        # It goes on working as a bucket: a new version lands on top of the restored ones.
        s3.put_object(Bucket=BUCKET, Key="a.csv", Body=b"v3")
        assert s3.get_object(Bucket=BUCKET, Key="a.csv")["Body"].read() == b"v3"
        assert len(s3.list_object_versions(Bucket=BUCKET, Prefix="a.csv")["Versions"]) == 4


def test_object_bytes_are_written_once_and_collected_when_gone(tmp_path: Path) -> None:
    with mock_aws():
        made = _populate()
        store = StateStore(tmp_path, REGION)
        _save_all(store)
        blobs = {p.name: os.stat(p).st_mtime_ns for p in (tmp_path / BLOBS).iterdir()}
        assert len(blobs) == 4  # a.csv x3 and gone.csv; a delete marker has no bytes
        s3, ddb, _ = _clients()
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "X"}, "sk": {"S": "1"}})
        _save_all(store)
        assert {p.name: os.stat(p).st_mtime_ns for p in (tmp_path / BLOBS).iterdir()} == blobs
        s3.delete_object(Bucket=BUCKET, Key="a.csv", VersionId=made["versions"][0])
        _save_all(store)
        assert len(list((tmp_path / BLOBS).iterdir())) == 3
        manifest = json.loads((tmp_path / MANIFEST).read_text())
        assert sorted(p.name for p in tmp_path.glob("*.pickle")) == \
               sorted(entry["file"] for entry in manifest["services"].values())


def test_only_the_services_captured_are_written_again(tmp_path: Path) -> None:
    with mock_aws():
        _populate()
        store = StateStore(tmp_path, REGION)
        _save_all(store)
        first = json.loads((tmp_path / MANIFEST).read_text())["services"]
        store.write(store.capture({"sqs"}))
        second = json.loads((tmp_path / MANIFEST).read_text())["services"]
        assert second["s3"] == first["s3"] and second["dynamodb"] == first["dynamodb"]
        assert second["sqs"]["file"] != first["sqs"]["file"]


def test_a_snapshot_of_another_layout_is_refused_and_can_be_moved_aside(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    state.mkdir()
    (state / MANIFEST).write_text(json.dumps({"layout": 999, "moto": "9.9", "generation": 3, "services": {}}))
    with pytest.raises(StateRefused, match=r"another layout.*--fresh"):
        StateStore(state, REGION).load()
    (state / MANIFEST).write_text("{not json")
    with pytest.raises(StateRefused, match="cannot be read"):
        StateStore(state, REGION).load()
    moved = move_aside(state)
    assert moved is not None and moved.exists() and not state.exists()
    assert StateStore(state, REGION).load() == {}


def _environ(method: str, service: str | None, target: str = "") -> dict[str, str]:
    environ = {"REQUEST_METHOD": method}
    if service:
        environ["HTTP_AUTHORIZATION"] = (f"AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{service}/"
                                         "aws4_request, SignedHeaders=host, Signature=00")
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    return environ


@pytest.mark.parametrize(("environ", "written"), [
    (_environ("POST", "dynamodb", "DynamoDB_20120810.Query"), ()),
    (_environ("POST", "dynamodb", "DynamoDB_20120810.BatchGetItem"), ()),
    (_environ("POST", "dynamodb", "DynamoDB_20120810.TransactWriteItems"), ("dynamodb",)),
    (_environ("POST", "dynamodb", "DynamoDB_20120810.UpdateItem"), ("dynamodb",)),
    (_environ("GET", "s3"), ()),
    (_environ("HEAD", "s3"), ()),
    (_environ("PUT", "s3"), ("s3", "sqs")),  # with the notification it sends to the rules' queue
    (_environ("DELETE", "s3"), ("s3", "sqs")),
    (_environ("POST", "sqs", "AmazonSQS.ReceiveMessage"), ("sqs",)),
    (_environ("POST", "events", "AWSEvents.PutEvents"), ("sqs",)),
    (_environ("POST", "logs", "Logs_20140328.PutLogEvents"), ()),
    (_environ("GET", None), ()),
    (_environ("POST", None), SERVICES),  # cannot tell: everything may have changed
])
def test_which_requests_make_a_service_worth_saving(environ: dict[str, str], written: tuple[str, ...]) -> None:
    assert written_services(environ) == written


def test_dynamodb_saves_append_only_what_changed_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    from localrun import persistence_dynamodb as dynamodb_state

    tracker = dynamodb_state.ChangeTracker()
    dynamodb_state.install()
    with mock_aws():
        _populate()
        store = StateStore(tmp_path, REGION, tracker)
        dynamodb_state.TRACKER.take()
        _save_all(store)  # the first save writes the base
        base = json.loads((tmp_path / MANIFEST).read_text())["services"]["dynamodb"]
        assert base["journal_bytes"] == 0
        _, ddb, _ = _clients()
        # What the backend writes is noted by the process-wide tracker; hand it to this store's.
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "B#0"}, "sk": {"S": "0000"}, "v": {"N": "-1"}})
        ddb.update_item(TableName=TABLE, Key={"pk": {"S": "B#1"}, "sk": {"S": "0001"}},
                        UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"N": "99"}})
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "B#2"}, "sk": {"S": "0002"}})
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "T"}, "sk": {"S": "1"}}}},
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "B#0"}, "sk": {"S": "0003"}}}}])
        whole, changed = dynamodb_state.TRACKER.take()
        assert not whole and len(changed[TABLE]) == 5
        for key in changed[TABLE].values():
            tracker.note(TABLE, key)
        store.write(store.capture({"dynamodb"}))
        entry = json.loads((tmp_path / MANIFEST).read_text())["services"]["dynamodb"]
        assert entry["file"] == base["file"], "the base is not written again"
        assert 0 < entry["journal_bytes"] < 2000
        with open(tmp_path / entry["journal"], "ab") as journal:
            journal.write(b"\x00\x00\x00\x00\x00\x01\x00\x00torn")  # a crash in the middle of an append
        expected = sorted(map(json.dumps, ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]))

    with mock_aws():
        restored = StateStore(tmp_path, REGION).load()
        _, ddb, _ = _clients()
        assert restored["dynamodb"] == 49  # 50, one overwritten, one deleted, one put, one deleted
        assert sorted(map(json.dumps, ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"])) == expected
        item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "B#1"}, "sk": {"S": "0001"}})["Item"]
        assert item["v"] == {"N": "99"}


def test_a_failed_save_gives_back_what_it_took(tmp_path: Path) -> None:
    from localrun.persistence import Saver, SharedExclusiveLock

    with mock_aws():
        _populate()
        store = StateStore(tmp_path, REGION)
        saver = Saver(store, SharedExclusiveLock(), 3600, lambda _: None)
        for service in SERVICES:
            saver.mark(service)
        real_write = store.write
        calls = {"n": 0}

        def failing_once(captured: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(28, "No space left on device")
            real_write(captured)

        store.write = failing_once  # type: ignore[method-assign]
        with pytest.raises(OSError):
            saver.save()
        assert not (tmp_path / MANIFEST).exists()
        saver.save()  # the next save writes everything the failed one had taken
        manifest = json.loads((tmp_path / MANIFEST).read_text())
        assert sorted(manifest["services"]) == sorted(SERVICES)

    with mock_aws():
        assert StateStore(tmp_path, REGION).load() == {"s3": 5, "dynamodb": 50, "sqs": 3}


def test_one_folder_one_stack_and_missing_bytes_are_refused(tmp_path: Path) -> None:
    first = StateStore(tmp_path, REGION)
    first.lock_folder()
    with pytest.raises(StateRefused, match=r"in use by another local stack \(pid \d+\)"):
        StateStore(tmp_path, REGION).lock_folder()  # flock is per open file: a second stack in any process
    with mock_aws():
        _populate()
        _save_all(first)
    victim = next((tmp_path / BLOBS).iterdir())
    victim.unlink()
    with mock_aws(), pytest.raises(StateRefused, match="missing"):
        StateStore(tmp_path, REGION).load()


def test_a_long_poll_does_not_hold_back_a_save(tmp_path: Path) -> None:
    import threading
    import time

    from localrun.emulator import _long_polls_outside_the_lock
    from localrun.persistence import SharedExclusiveLock

    lock = SharedExclusiveLock()
    _long_polls_outside_the_lock(lock)
    with mock_aws():
        _, _, sqs = _clients()
        url = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
        started = threading.Event()

        def poll() -> None:
            with lock.shared():  # as the emulator runs a request
                started.set()
                sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3)

        poller = threading.Thread(target=poll)
        poller.start()
        started.wait(5)
        time.sleep(0.3)
        began = time.monotonic()
        with lock.exclusive():
            waited = time.monotonic() - began
        poller.join()
        assert waited < 1.0, f"the save waited {waited:.1f}s for a long poll"
