"""The local driver gathers the processing queue's batches as the SQS event source mapping does: up to the
trigger's batch size, for up to its batching window, and at most 6 MB of messages, each batch given to one
invocation; every message is processed once and deleted after its invocation succeeded."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest

from chalicelib.settings import PROCESSOR_BATCH_SIZE, PROCESSOR_BATCHING_WINDOW_SECONDS
from localrun.driver import MAX_PAYLOAD_BYTES, Driver
from localrun.lambda_events import Routes
from tests.moto_stack import drain_queue, moto_stack


class Recorder:
    """A processor that notes the bodies of each invocation."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        self.batches.append([record["body"] for record in event["Records"]])
        return {"batchItemFailures": []}


def _driver(stack: dict[str, Any], size: int, window: int) -> tuple[Driver, Recorder]:
    driver = Driver(stack["app"], boto3.session.Session(), "us-east-1", stack["queue_url"],
                    stack["events_queue_url"], True, schedule_seconds=3600, processor_threads=0)
    recorder = Recorder()
    driver._routes = Routes(sqs=recorder, sqs_batch_size=size, sqs_batching_window_seconds=window)
    return driver, recorder


def _send(url: str, bodies: list[str], per_request: int = 10) -> None:
    sqs = boto3.client("sqs")
    for i in range(0, len(bodies), per_request):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[i : i + per_request])])


def test_the_driver_takes_the_batching_the_app_declares() -> None:
    import app as app_module

    routes = Routes.of(app_module)
    assert (routes.sqs_batch_size, routes.sqs_batching_window_seconds) == (
        PROCESSOR_BATCH_SIZE, PROCESSOR_BATCHING_WINDOW_SECONDS)
    assert PROCESSOR_BATCH_SIZE > 10 and PROCESSOR_BATCHING_WINDOW_SECONDS >= 1  # AWS requires a window beyond 10


def test_queued_messages_make_one_invocation_up_to_the_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_stack(monkeypatch) as stack:
        driver, recorder = _driver(stack, size=25, window=1)
        bodies = [f"m{n}" for n in range(60)]
        _send(stack["queue_url"], bodies)
        assert driver.deliver_queue_batch() == 25
        assert driver.deliver_queue_batch() == 25
        assert driver.deliver_queue_batch() == 10
        assert driver.deliver_queue_batch(wait_seconds=0) == 0
        assert [len(batch) for batch in recorder.batches] == [25, 25, 10]
        assert sorted(body for batch in recorder.batches for body in batch) == sorted(bodies)
        assert drain_queue(stack["queue_url"]) == []  # every message deleted once its invocation succeeded


def test_messages_sent_during_the_window_join_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_stack(monkeypatch) as stack:
        driver, recorder = _driver(stack, size=100, window=1)
        _send(stack["queue_url"], ["early"])
        later = threading.Timer(0.4, _send, args=(stack["queue_url"], ["late-1", "late-2"]))
        later.start()
        started = time.monotonic()
        try:
            assert driver.deliver_queue_batch() == 3
        finally:
            later.join()
        assert sorted(recorder.batches[0]) == ["early", "late-1", "late-2"]
        assert time.monotonic() - started < 3  # the window ends the gathering, not a full batch


def test_without_a_window_a_batch_is_what_one_receive_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_stack(monkeypatch) as stack:
        driver, recorder = _driver(stack, size=10, window=0)
        _send(stack["queue_url"], [f"m{n}" for n in range(15)])
        assert driver.deliver_queue_batch() == 10
        assert driver.deliver_queue_batch() == 5
        assert [len(batch) for batch in recorder.batches] == [10, 5]


def test_a_batch_stops_at_six_megabytes_and_the_rest_waits_for_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_stack(monkeypatch) as stack:
        driver, recorder = _driver(stack, size=100, window=1)
        big = 200_000
        bodies = [f"{n:03d}" + "x" * (big - 3) for n in range(40)]  # 8 MB in all
        _send(stack["queue_url"], bodies, per_request=5)  # a send takes at most 1 MB
        taken = []
        while count := driver.deliver_queue_batch(wait_seconds=1):
            taken.append(count)
        assert len(taken) == 2 and sum(taken) == 40
        for batch in recorder.batches:
            assert sum(map(len, batch)) <= MAX_PAYLOAD_BYTES
        assert sorted(body[:3] for batch in recorder.batches for body in batch) == [f"{n:03d}" for n in range(40)]
        assert drain_queue(stack["queue_url"]) == []
