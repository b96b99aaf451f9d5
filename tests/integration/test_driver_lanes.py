"""The local driver's lanes: a burst of events for one function waits for that function's workers, without
being handed back to the queue (each hand-back is a receive, and a fifth one would dead-letter the event),
and without holding up another function's events."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from localrun.driver import Driver
from localrun.lambda_events import Routes
from tests.moto_stack import drain_queue, moto_stack


def _routes(handlers: dict[str, Any]) -> Routes:
    from localrun.lambda_events import EventPattern

    routes = Routes()
    for name, handler in handlers.items():
        routes.events.append((EventPattern.load(json.dumps({"detail-type": [name]})), name, handler))
    return routes


def test_a_burst_waits_in_its_lane_and_nothing_is_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_stack(monkeypatch) as stack:
        sqs = boto3.client("sqs")
        done: dict[str, list[str]] = {"Slow": [], "Fast": []}
        lock = threading.Lock()

        def handler(name: str, seconds: float) -> Any:
            def handle(event: dict[str, Any], _context: Any) -> None:
                time.sleep(seconds)
                with lock:
                    done[name].append(event["detail"]["n"])
            return handle

        driver = Driver(stack["app"], boto3.session.Session(), "us-east-1", stack["queue_url"],
                        stack["events_queue_url"], True, schedule_seconds=3600, processor_threads=0,
                        lane_workers={"Slow": 1, "Fast": 1})
        driver._routes = _routes({"Slow": handler("Slow", 0.15), "Fast": handler("Fast", 0.0)})
        for n in range(24):
            sqs.send_message(QueueUrl=stack["events_queue_url"], MessageBody=json.dumps(
                {"version": "0", "id": str(n), "detail-type": "Slow", "source": "test", "account": "123456789012",
                 "time": "2026-12-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {"n": str(n)}}))
        fast = {"version": "0", "id": "f", "detail-type": "Fast", "source": "test", "account": "123456789012",
                "time": "2026-12-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {"n": "f"}}
        driver.start()
        try:
            time.sleep(0.3)
            sqs.send_message(QueueUrl=stack["events_queue_url"], MessageBody=json.dumps(fast))
            deadline = time.monotonic() + 30
            fast_done_at = None
            while time.monotonic() < deadline and len(done["Slow"]) < 24:
                if fast_done_at is None and done["Fast"]:
                    fast_done_at = len(done["Slow"])
                time.sleep(0.05)
        finally:
            driver.stop()
        assert sorted(done["Slow"], key=int) == [str(n) for n in range(24)]
        assert done["Fast"] == ["f"]
        assert fast_done_at is not None and fast_done_at < 20, "the other function's event waited behind the burst"
        dlq = sqs.get_queue_url(QueueName=stack["events_queue_url"].rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
        assert drain_queue(dlq) == []
        assert drain_queue(stack["events_queue_url"]) == []
