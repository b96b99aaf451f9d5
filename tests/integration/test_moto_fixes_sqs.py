"""The emulator's SQS fix (localrun/moto_fixes.py) keeps every answer: counts asked for are exact, static
attributes and redrive still apply; only the scans nobody asked for are gone."""

from __future__ import annotations

import json

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
