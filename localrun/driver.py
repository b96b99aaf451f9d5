"""Deliver to the Chalice handlers the events that AWS would: the local stand-in for Lambda triggers.

- The processing queue is polled like an SQS event source mapping: a batch is gathered up to the trigger's
  batch size and batching window (as app.py declares them) and 6 MB, then given to one invocation. A message is
  deleted only when its invocation succeeded; a failed one becomes visible again, and SQS's redrive
  policy moves it to the dead-letter queue after maxReceiveCount receives, as in AWS.
- EventBridge rules target a local queue (moto's EventBridge cannot invoke Lambda); each event on it
  goes to the handler whose pattern, as declared in app.py, matches it.
- Each function has its own lane of workers, as each Lambda function scales on its own: an S3 event never
  waits behind aggregations, and several aggregator invocations run at once (they coordinate through the
  symbols' leases, as in AWS). An event whose lane is busy waits in it, its message kept invisible meanwhile.
- The schedule is a timer (optionally run once at start, to catch up on a restored state).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from chalicelib.observability import logger

from .lambda_events import LambdaContext, Routes, eventbridge_event, scheduled_event, sqs_event

RETRY_VISIBILITY_SECONDS = 1
# A synchronous Lambda invocation takes at most 6 MB; each SQS record carries about this much beside its body.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
RECORD_OVERHEAD_BYTES = 1024
# An event received by the driver stays invisible this long, extended every EXTEND_EVERY_SECONDS while it waits.
EVENT_VISIBILITY_SECONDS = 120
EXTEND_EVERY_SECONDS = 30
# Events received but not yet finished, at most: beyond it the driver stops receiving until some finish.
MAX_HELD_EVENTS = 200
# Concurrent invocations per function in the background lanes (the processor's are its polling threads).
LANE_WORKERS = {"DataIngestion": 2, "DataAggregator": 4}


class Driver:
    def __init__(self, app_module: ModuleType, session: Any, region: str, queue_url: str, events_queue_url: str,
                 report_batch_item_failures: bool, schedule_seconds: float, processor_threads: int = 2,
                 lane_workers: dict[str, int] | None = None, schedule_at_start: bool = False) -> None:
        self._app = app_module
        self._sqs = session.client("sqs", region_name=region)
        self._region = region
        self._queue_url = queue_url
        self._events_url = events_queue_url
        self._queue_arn = self._arn(queue_url)
        self._report_item_failures = report_batch_item_failures
        self._schedule_seconds = schedule_seconds
        self._schedule_at_start = schedule_at_start
        self._processor_threads = processor_threads
        self._stop = threading.Event()
        self._lane_workers = {**LANE_WORKERS, **(lane_workers or {})}
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._held: dict[str, dict[str, Any]] = {}
        self._held_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._routes = Routes.of(app_module)
        self.stats = {"batches": 0, "messages": 0, "failed_invocations": 0, "events": 0, "schedules": 0}

    def _arn(self, url: str) -> str:
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    # ------------------------------------------------------------------ one step of each trigger
    def deliver_queue_batch(self, wait_seconds: int = 1) -> int:
        """Gather a batch and invoke the processor once, as an event source mapping would: once a message
        arrives, keep receiving until the trigger's batch size, its batching window or 6 MB of messages."""
        messages = self._gather(wait_seconds)
        if not messages or self._routes.sqs is None:
            return 0
        event = sqs_event(messages, self._queue_arn, self._region)
        self.stats["batches"] += 1
        self.stats["messages"] += len(messages)
        try:
            result = self._routes.sqs(event, LambdaContext("DataProcessor", self._region))
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

    def _gather(self, wait_seconds: int) -> list[dict[str, Any]]:
        size, window = self._routes.sqs_batch_size, self._routes.sqs_batching_window_seconds
        messages: list[dict[str, Any]] = []
        payload = 0
        deadline = None
        while len(messages) < size and not self._stop.is_set():
            if deadline is None:
                wait = wait_seconds
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(1, math.ceil(left))
            got = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=min(10, size - len(messages)), WaitTimeSeconds=wait,
                AttributeNames=["All"], MessageAttributeNames=["All"], VisibilityTimeout=120,
            ).get("Messages", [])
            if not got:
                if deadline is None or window == 0:
                    break
                continue
            if deadline is None:
                deadline = time.monotonic() + window
            for index, message in enumerate(got):
                payload += len(message["Body"]) + RECORD_OVERHEAD_BYTES
                if payload > MAX_PAYLOAD_BYTES and messages:
                    self._retry_later(self._queue_url, got[index:], visibility=0)  # the next batch's
                    return messages
                messages.append(message)
            if window == 0:
                break
        return messages

    def deliver_events(self, wait_seconds: int = 1) -> int:
        """Receive EventBridge events from the rules' local target and invoke the matching handlers."""
        response = self._sqs.receive_message(
            QueueUrl=self._events_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, VisibilityTimeout=120,
        )
        messages = response.get("Messages", [])
        done, retry = [], []
        for message in messages:
            event = eventbridge_event(json.loads(message["Body"]), self._region)
            try:
                for name, function in self._routes.matching(event):
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

    def run_schedules(self) -> None:
        for name, function in self._routes.schedules:
            try:
                self._invoke(name, function, scheduled_event(name, self._region))
            except Exception:
                logger.exception("scheduled invocation failed")
                self.stats["failed_invocations"] += 1
        self.stats["schedules"] += 1

    def _invoke(self, name: str, function: Callable[..., Any], event: dict[str, Any]) -> Any:
        return function(event, LambdaContext(name, self._region))

    def dispatch_events(self, wait_seconds: int = 1) -> int:
        """Receive events and hand each to its function's lane, where it waits for a worker if all are busy (as
        an asynchronous Lambda invocation waits in Lambda's queue). A message is deleted once its handler
        succeeded, and released for a retry if it failed; while it waits or runs, its visibility is extended,
        so waiting never counts as a failed receive (which would dead-letter a burst of S3 uploads)."""
        with self._held_lock:
            backlog = len(self._held)
        if backlog >= MAX_HELD_EVENTS:  # the rest waits in the queue, where a restart cannot lose it
            self._stop.wait(0.2)
            return 0
        response = self._sqs.receive_message(
            QueueUrl=self._events_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=EVENT_VISIBILITY_SECONDS,
        )
        messages = response.get("Messages", [])
        for message in messages:
            event = eventbridge_event(json.loads(message["Body"]), self._region)
            matches = list(self._routes.matching(event))
            with self._held_lock:
                self._held[message["MessageId"]] = message
            self._lane(matches[0][0] if matches else "").submit(self._run_in_lane, message, event, matches)
        self.stats["events"] += len(messages)
        return len(messages)

    def _lane(self, name: str) -> ThreadPoolExecutor:
        if name not in self._lanes:
            workers = self._lane_workers.get(name, 1)
            self._lanes[name] = ThreadPoolExecutor(workers, thread_name_prefix=f"lane-{name or 'none'}")
        return self._lanes[name]

    def _run_in_lane(self, message: dict[str, Any], event: dict[str, Any],
                     matches: list[tuple[str, Callable[..., Any]]]) -> None:
        try:
            if self._stop.is_set():
                return  # left in the queue: delivered again after its visibility timeout (or at the next start)
            for name, function in matches:
                self._invoke(name, function, event)
            self._delete(self._events_url, [message])
        except Exception:
            logger.exception("event handler failed; the event will be retried")
            self.stats["failed_invocations"] += 1
            try:
                self._retry_later(self._events_url, [message])
            except Exception:
                logger.exception("could not release the event; it becomes visible again after its timeout")
        finally:
            with self._held_lock:
                self._held.pop(message["MessageId"], None)

    def extend_held(self) -> int:
        """Extend the visibility of every event that waits for or runs in a lane; returns how many."""
        with self._held_lock:
            held = list(self._held.values())
        for i in range(0, len(held), 10):
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": EVENT_VISIBILITY_SECONDS}
                       for n, m in enumerate(held[i : i + 10])]
            self._sqs.change_message_visibility_batch(QueueUrl=self._events_url, Entries=entries)
        return len(held)

    def _delete(self, queue_url: str, messages: list[dict[str, Any]]) -> None:
        for i in range(0, len(messages), 10):
            self._sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages[i : i + 10])])

    def _retry_later(self, queue_url: str, messages: list[dict[str, Any]],
                     visibility: int = RETRY_VISIBILITY_SECONDS) -> None:
        for i in range(0, len(messages), 10):
            self._sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": visibility}
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
        self._threads.append(threading.Thread(target=loop, args=(self.dispatch_events,), name="events", daemon=True))
        self._threads.append(threading.Thread(target=self._schedule_loop, name="schedule", daemon=True))
        self._threads.append(threading.Thread(target=self._extend_loop, name="extend-visibility", daemon=True))
        for thread in self._threads:
            thread.start()

    def _schedule_loop(self) -> None:
        # At start, a restored stack catches up at once on what was left dirty when it stopped.
        if self._schedule_at_start and not self._stop.is_set():
            self.run_schedules()
        while not self._stop.wait(self._schedule_seconds):
            self.run_schedules()

    def _extend_loop(self) -> None:
        while not self._stop.wait(EXTEND_EVERY_SECONDS):
            try:
                self.extend_held()
            except Exception:
                logger.exception("could not extend the visibility of waiting events")

    def stop(self) -> None:
        """Stop receiving, then wait for every invocation in progress (the emulator must outlive them)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for pool in list(self._lanes.values()):
            pool.shutdown(wait=True, cancel_futures=True)
