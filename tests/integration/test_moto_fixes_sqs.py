"""The emulator's SQS fix (localrun/moto_fixes.py) keeps every answer: counts asked for are exact, static
attributes and redrive still apply; only the scans nobody asked for are gone."""

from __future__ import annotations

import json
import threading

import boto3
from moto import mock_aws


def test_queue_answers_are_unchanged_by_the_uncounted_attributes() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="fix-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName="fix-q", Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "1"})})["QueueUrl"]
        for n in range(3):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"{n}-{i}"} for i in range(10)])
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
        assert len(got) == 10
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "30"
        assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] in ("1", 1)
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
        assert counts["Attributes"] == {"ApproximateNumberOfMessagesNotVisible": "0"}
        # A second receive of the same messages exceeds maxReceiveCount 1: they move to the dead-letter queue.
        seen = 0
        for _ in range(10):
            seen += len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []))
        assert seen == 20
        dead = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        assert dead["Attributes"]["ApproximateNumberOfMessages"] == "10"


def test_receives_read_the_queue_lazily_and_answer_as_before() -> None:
    """Visible messages in queue order, skipping those in flight or delayed; counts exact."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="lazy-q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
        for n in range(3):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"{n}-{i}"} for i in range(10)])
        taken = []
        for _ in range(3):
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
            taken += [m["Body"] for m in got]
            left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            assert left["Attributes"]["ApproximateNumberOfMessages"] == str(30 - len(taken))
        assert taken == [f"{n}-{i}" for n in range(3) for i in range(10)]  # in order, none twice, not the delayed
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        # One made visible again is received again.
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in again] == [got[0]["Body"]]


def test_a_rules_input_paths_apply_to_every_event() -> None:
    with mock_aws():
        events, sqs = boto3.client("events", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="rule-target")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="r", EventPattern=json.dumps({"source": ["t"]}))
        events.put_targets(Rule="r", Targets=[{"Id": "q", "Arn": arn, "InputTransformer": {
            "InputPathsMap": {"n": "$.detail.n"}, "InputTemplate": '{"got": <n>}'}}])
        for n in (1, 2, 3):
            events.put_events(Entries=[{"Source": "t", "DetailType": "d", "Detail": json.dumps({"n": n})}])
        bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
        assert sorted(b["got"] for b in bodies) == [1, 2, 3]


def test_a_send_during_a_delete_waits_for_it_and_is_kept() -> None:
    """moto's delete rebuilt the message list and put it back: a message sent meanwhile was lost. A delete
    paused half-way (in its scan for the receipt handle) now holds the send off until it is done."""
    from moto.sqs.models import Message

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="race-q")["QueueUrl"]
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"old-{i}"} for i in range(3)])
        handle = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]["ReceiptHandle"]
        in_delete, sent = threading.Event(), threading.Event()
        sent_while_deleting: list[bool] = []
        original = Message.had_receipt_handle

        def paused(self: Message, receipt_handle: str) -> bool:
            if threading.current_thread().name == "deleter" and not in_delete.is_set():
                in_delete.set()
                sent_while_deleting.append(sent.wait(1.0))  # it cannot, while the delete holds the queue
            return bool(original(self, receipt_handle))

        sender_client = boto3.client("sqs", region_name="us-east-1")

        def send() -> None:
            sender_client.send_message(QueueUrl=url, MessageBody="new")
            sent.set()

        try:
            Message.had_receipt_handle = paused  # type: ignore[method-assign]
            deleter = threading.Thread(target=sqs.delete_message, kwargs={"QueueUrl": url, "ReceiptHandle": handle},
                                       name="deleter")
            deleter.start()
            assert in_delete.wait(10)
            sender = threading.Thread(target=send)
            sender.start()
            deleter.join(10)
            sender.join(10)
        finally:
            Message.had_receipt_handle = original  # type: ignore[method-assign]
        assert sent_while_deleting == [False] and sent.is_set()
        bodies = []
        while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
            bodies += [m["Body"] for m in got]
        assert sorted(bodies) == ["new", "old-1", "old-2"]


def test_concurrent_senders_and_consumers_lose_and_double_no_message() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="busy-q")["QueueUrl"]
        sent = [f"{t}-{n}" for t in range(4) for n in range(150)]
        received: list[str] = []
        lock, done = threading.Lock(), threading.Event()

        def produce(t: int) -> None:
            client = boto3.client("sqs", region_name="us-east-1")
            for n in range(0, 150, 10):
                client.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "MessageBody": f"{t}-{n + i}"} for i in range(10)])

        def consume() -> None:
            client = boto3.client("sqs", region_name="us-east-1")
            while not done.is_set() or client.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] != "0":
                got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                             WaitTimeSeconds=0).get("Messages", [])
                if got:
                    client.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
                    with lock:
                        received.extend(m["Body"] for m in got)

        producers = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        consumers = [threading.Thread(target=consume) for _ in range(3)]
        for thread in producers + consumers:
            thread.start()
        for thread in producers:
            thread.join(60)
        done.set()
        for thread in consumers:
            thread.join(60)
        assert sorted(received) == sorted(sent)  # every message once
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
