"""The queue contract, against the in-memory queue and SQS on moto: what is sent arrives once, in order of
sending within a request, and a body SQS cannot take is refused (QueueRejected) rather than cut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.adapters.sqs import SqsTickQueue
from chalicelib.domain.errors import QueueRejected
from tests.contract.conftest import SETTINGS, emulator
from tests.fakes import MemoryQueue
from tests.moto_stack import drain_queue


@pytest.fixture(params=["memory", "sqs"])
def queue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """(queue, read): ``read()`` takes every body off the queue."""
    if request.param == "memory":
        memory = MemoryQueue()
        yield memory, lambda: [body for _, body in memory.receive_all()]
        return
    with emulator(monkeypatch):
        url = boto3.client("sqs").get_queue_url(QueueName=SETTINGS.queue_name)["QueueUrl"]
        yield SqsTickQueue(boto3.client("sqs"), SETTINGS.queue_name), lambda: [m["Body"] for m in drain_queue(url)]


def test_every_body_arrives_once(queue: tuple[Any, Any]) -> None:
    sender, read = queue
    bodies = [json.dumps({"n": n, "pad": "x" * 30_000}) for n in range(25)]
    assert sender.send(bodies) >= 3  # requests of at most 10 entries and 256 KB
    assert sorted(read(), key=lambda b: json.loads(b)["n"]) == bodies


def test_a_body_over_the_limit_is_refused(queue: tuple[Any, Any]) -> None:
    sender, read = queue
    with pytest.raises(QueueRejected):
        sender.send(["x" * (256 * 1024 + 1)])
    assert read() == []
