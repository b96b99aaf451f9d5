"""Deliver to the Chalice handlers the events that AWS would: the local stand-in for Lambda triggers.

- The processing queue is polled like an SQS event source mapping (batch of up to 10). A message is
  deleted only when its invocation succeeded; a failed one becomes visible again, and SQS's redrive
  policy moves it to the dead-letter queue after maxReceiveCount receives, as in AWS.
- EventBridge rules target a local queue (moto's EventBridge cannot invoke Lambda); each event on it
  goes to the handler whose pattern, as declared in app.py, matches it.
- The schedule is a timer. Aggregator invocations are serialised, as with reserved concurrency 1.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from chalice.app import CloudWatchEventConfig, ScheduledEventConfig
from moto.events.models import EventPattern

from chalicelib.observability import logger

RETRY_VISIBILITY_SECONDS = 1
ACCOUNT = "123456789012"


class LambdaContext:
    """The parts of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str, region: str, timeout_s: int = 300) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Driver:
    def __init__(self, app_module: ModuleType, session: Any, region: str, queue_url: str, events_queue_url: str,
                 report_batch_item_failures: bool, schedule_seconds: float, processor_threads: int = 2) -> None:
        self._app = app_module
        self._sqs = session.client("sqs", region_name=region)
        self._region = region
        self._queue_url = queue_url
        self._events_url = events_queue_url
        self._queue_arn = self._arn(queue_url)
        self._report_item_failures = report_batch_item_failures
        self._schedule_seconds = schedule_seconds
        self._processor_threads = processor_threads
        self._stop = threading.Event()
        self._aggregator_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._event_routes: list[tuple[EventPattern, str, Callable[..., Any]]] = []
        self._sqs_handler: Callable[..., Any] | None = None
        self._schedule_handlers: list[tuple[str, Callable[..., Any]]] = []
        self.stats = {"batches": 0, "messages": 0, "failed_invocations": 0, "events": 0, "schedules": 0}
        for source in app_module.app.event_sources:
            function = getattr(app_module, source.handler_string.split(".")[-1])
            if isinstance(source, CloudWatchEventConfig):
                self._event_routes.append((EventPattern.load(json.dumps(source.event_pattern)), source.name, function))
            elif isinstance(source, ScheduledEventConfig):
                self._schedule_handlers.append((source.name, function))
            elif source.__class__.__name__ == "SQSEventConfig":
                self._sqs_handler = function

    def _arn(self, url: str) -> str:
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    # ------------------------------------------------------------------ one step of each trigger
    def deliver_queue_batch(self, wait_seconds: int = 1) -> int:
        """Receive up to 10 messages and invoke the processor once, as an event source mapping would."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"], MessageAttributeNames=["All"], VisibilityTimeout=120,
        )
        messages = response.get("Messages", [])
        if not messages or self._sqs_handler is None:
            return 0
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
            "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": self._queue_arn,
            "awsRegion": self._region,
        } for m in messages]}
        self.stats["batches"] += 1
        self.stats["messages"] += len(messages)
        try:
            result = self._sqs_handler(event, LambdaContext("DataProcessor", self._region))
        except Exception:
            logger.exception("processor invocation failed; the batch will be retried")
            self.stats["failed_invocations"] += 1
            self._retry_later(self._queue_url, messages)
            return len(messages)
        failed: set[str] = set()
        if self._report_item_failures and isinstance(result, dict):
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        self._delete(self._queue_url, [m for m in messages if m["MessageId"] not in failed])
        self._retry_later(self._queue_url, [m for m in messages if m["MessageId"] in failed])
        return len(messages)

    def deliver_events(self, wait_seconds: int = 1) -> int:
        """Receive EventBridge events from the rules' local target and invoke the matching handlers."""
        response = self._sqs.receive_message(
            QueueUrl=self._events_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, VisibilityTimeout=120,
        )
        messages = response.get("Messages", [])
        done, retry = [], []
        for message in messages:
            event = self._envelope(json.loads(message["Body"]))
            try:
                for pattern, name, function in self._event_routes:
                    if pattern.matches_event(event):  # type: ignore[arg-type]
                        self._invoke(name, function, event)
                done.append(message)
            except Exception:
                logger.exception("event handler failed; the event will be retried")
                self.stats["failed_invocations"] += 1
                retry.append(message)
        self.stats["events"] += len(messages)
        self._delete(self._events_url, done)
        self._retry_later(self._events_url, retry)
        return len(messages)

    def _envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        """Fill in the envelope fields AWS always sets and moto sometimes leaves out."""
        event.setdefault("version", "0")
        event.setdefault("id", str(uuid.uuid4()))
        event.setdefault("account", ACCOUNT)
        event.setdefault("region", self._region)
        event.setdefault("resources", [])
        event.setdefault("time", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        event.setdefault("detail", {})
        return event

    def run_schedules(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for name, function in self._schedule_handlers:
            event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                     "source": "aws.events", "account": ACCOUNT, "time": now, "region": self._region,
                     "resources": [f"arn:aws:events:{self._region}:{ACCOUNT}:rule/{name}"], "detail": {}}
            try:
                self._invoke(name, function, event)
            except Exception:
                logger.exception("scheduled invocation failed")
                self.stats["failed_invocations"] += 1
        self.stats["schedules"] += 1

    def _invoke(self, name: str, function: Callable[..., Any], event: dict[str, Any]) -> Any:
        context = LambdaContext(name, self._region)
        if name.startswith("DataAggregator"):
            with self._aggregator_lock:
                return function(event, context)
        return function(event, context)

    def _delete(self, queue_url: str, messages: list[dict[str, Any]]) -> None:
        for i in range(0, len(messages), 10):
            self._sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages[i : i + 10])])

    def _retry_later(self, queue_url: str, messages: list[dict[str, Any]]) -> None:
        for i in range(0, len(messages), 10):
            self._sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": RETRY_VISIBILITY_SECONDS}
                for n, m in enumerate(messages[i : i + 10])])

    # ------------------------------------------------------------------ background loops
    def start(self) -> None:
        def loop(step: Callable[[], int]) -> None:
            while not self._stop.is_set():
                try:
                    step()
                except Exception:
                    logger.exception("driver step failed")
                    self._stop.wait(1)

        for n in range(self._processor_threads):
            self._threads.append(threading.Thread(target=loop, args=(self.deliver_queue_batch,),
                                                  name=f"processor-{n}", daemon=True))
        self._threads.append(threading.Thread(target=loop, args=(self.deliver_events,), name="events", daemon=True))
        self._threads.append(threading.Thread(target=self._schedule_loop, name="schedule", daemon=True))
        for thread in self._threads:
            thread.start()

    def _schedule_loop(self) -> None:
        while not self._stop.wait(self._schedule_seconds):
            self.run_schedules()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
