"""Fault injection for the whole pipeline, in-process on moto.

Two parts:

- ``FaultInjector`` sits between every AWS client the handlers build and the emulator (a wrapper around
  botocore's ``BaseClient._make_api_call``, active only while a handler runs): with a seeded RNG it
  throttles a share of DynamoDB, SQS, S3 and EventBridge calls (as if botocore's own retries ran out),
  makes ``BatchWriteItem`` leave part of a batch unprocessed, and can crash an invocation half-way,
  after some of its writes and before others.
- ``Delivery`` plays Lambda's part: it polls the processing queue like an event source mapping, can
  deliver every message twice and shuffle batches, deletes only what succeeded, lets SQS's redrive
  policy move poison messages to the dead-letter queue, and hands EventBridge events (from the rules'
  local target queue) and the schedule to the same Chalice handlers as the local runner does.

Nothing here changes what the handlers do; it only changes what the outside world does to them.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.client
from botocore.exceptions import ClientError

from localrun.lambda_events import ACCOUNT, Handler, Routes, eventbridge_event, scheduled_event, sqs_event

REGION = "us-east-1"

THROTTLE_CODES = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "sqs": "RequestThrottled",
    "s3": "SlowDown",
    "events": "ThrottlingException",
}
WRITE_OPERATIONS = {"BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "SendMessageBatch",
                    "PutEvents"}


class InjectedCrash(BaseException):
    """The invocation died here (out of memory, a timeout): nothing after this point ran. A BaseException,
    so that no ``except Exception`` in the code under test can catch it, as none can catch a real crash."""


@dataclass
class FaultPlan:
    """What to break. Rates are per call, drawn from one seeded RNG."""

    seed: int = 7
    throttle_rate: float = 0.0
    throttle_first_call: bool = False  # also throttle each service's first call, whatever the draw
    unprocessed_rate: float = 0.0
    crash_after_writes: int | None = None  # crash an invocation after this many successful writes...
    crash_invocations: int = 0  # ...this many times (invocations that write less are left alone)


@dataclass
class FaultInjector:
    plan: FaultPlan
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.plan.seed)
        self._active = threading.local()
        self._original = botocore.client.BaseClient._make_api_call
        self._crashes_left = self.plan.crash_invocations
        self._lock = threading.Lock()
        self._throttled: set[str] = set()

    @contextmanager
    def installed(self) -> Iterator[FaultInjector]:
        injector = self
        original = self._original

        def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            return injector._call(original, client, operation, params)

        botocore.client.BaseClient._make_api_call = call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]

    @contextmanager
    def invocation(self) -> Iterator[None]:
        """Faults apply only to calls made by a handler, not to the delivery machinery around it."""
        self._active.on = True
        self._active.writes = 0
        self._active.crash_at = None
        if self.plan.crash_after_writes is not None and self._crashes_left > 0:
            self._active.crash_at = self.plan.crash_after_writes
        try:
            yield
        finally:
            self._active.on = False

    def _call(self, original: Callable[..., Any], client: Any, operation: str, params: dict[str, Any]) -> Any:
        if not getattr(self._active, "on", False):
            return original(client, operation, params)
        service = client.meta.service_model.service_name
        with self._lock:  # one decision at a time: handlers may run on several threads
            if operation in WRITE_OPERATIONS:
                crash_at = self._active.crash_at
                if crash_at is not None and self._active.writes >= crash_at and self._crashes_left > 0:
                    self._active.crash_at = None
                    self._crashes_left -= 1
                    self.counts["crash"] += 1
                    raise InjectedCrash(f"crashed before {service}.{operation}")
            first = self.plan.throttle_first_call and service in THROTTLE_CODES and service not in self._throttled
            if service in THROTTLE_CODES and (first or self._rng.random() < self.plan.throttle_rate):
                self._throttled.add(service)
                self.counts[f"throttle:{service}"] += 1
                raise ClientError({"Error": {"Code": THROTTLE_CODES[service], "Message": "injected"},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
            cut = 0
            if operation == "BatchWriteItem" and self._rng.random() < self.plan.unprocessed_rate:
                (table, requests), = params["RequestItems"].items()
                if len(requests) > 1:
                    cut = self._rng.randint(1, len(requests) - 1)
                    self.counts["unprocessed_items"] += len(requests) - cut
        if cut:
            original(client, operation, {**params, "RequestItems": {table: requests[:cut]}})
            self._active.writes += 1
            return {"UnprocessedItems": {table: requests[cut:]}}
        result = original(client, operation, params)
        if operation in WRITE_OPERATIONS:
            self._active.writes += 1
        return result


@dataclass
class Delivery:
    """Lambda's triggers, with at-least-once and out-of-order delivery made explicit."""

    app_module: Any
    queue_url: str
    dlq_url: str
    events_queue_url: str
    injector: FaultInjector
    report_batch_item_failures: bool
    duplicate: bool = False
    shuffle_seed: int | None = None
    concurrent_aggregators: int = 1
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self._lock = threading.Lock()
        self._rng = random.Random(self.shuffle_seed)
        self._routes = Routes.of(self.app_module)

    def _receive(self, url: str, count: int = 10) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=count, VisibilityTimeout=30, AttributeNames=["All"]
        ).get("Messages", [])
        return messages

    def _invoke(self, handler: Handler, event: dict[str, Any]) -> Any:
        with self.injector.invocation():
            return handler(event, None)

    def process_once(self) -> int:
        """One event-source-mapping poll of the processing queue."""
        messages = self._receive(self.queue_url)
        if not messages:
            return 0
        if self.shuffle_seed is not None:
            self._rng.shuffle(messages)
        event = sqs_event(messages, f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue", REGION)
        rounds = 2 if self.duplicate else 1
        failed: set[str] = set()
        for _ in range(rounds):  # a duplicate delivery: the same batch again before it was deleted
            self.counts["invocations"] += 1
            self.counts["messages_delivered"] += len(messages)
            try:
                assert self._routes.sqs is not None
                result = self._invoke(self._routes.sqs, event)
            except (Exception, InjectedCrash):
                self.counts["failed_invocations"] += 1
                failed = {m["MessageId"] for m in messages}
                continue
            failed = set()
            if self.report_batch_item_failures and isinstance(result, dict):
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        self.counts["messages_redelivered"] += len(retry) + (len(messages) if self.duplicate else 0)
        if done:
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        if retry:
            self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(retry)])
        return len(messages)

    def events_once(self) -> int:
        """Deliver EventBridge events from the rules' target queue to the handler they are for; with
        ``concurrent_aggregators`` > 1, the aggregator's events of one receive run at once, on threads."""
        messages = self._receive(self.events_queue_url)
        aggregations, others = [], []
        for message in messages:
            event = eventbridge_event(json.loads(message["Body"]), REGION)
            handlers = [h for _, h in self._routes.matching(event)]
            is_aggregation = any(n.startswith("DataAggregator") for n, _ in self._routes.matching(event))
            (aggregations if is_aggregation else others).append((message, event, handlers))
        for delivery in others:
            self._deliver_event(*delivery)
        if self.concurrent_aggregators > 1 and len(aggregations) > 1:
            with ThreadPoolExecutor(self.concurrent_aggregators) as pool:
                list(pool.map(lambda d: self._deliver_event(*d), aggregations))
                self.counts["concurrent_aggregations"] += len(aggregations)
        else:
            for delivery in aggregations:
                self._deliver_event(*delivery)
        return len(messages)

    def _deliver_event(self, message: dict[str, Any], event: dict[str, Any], handlers: list[Handler]) -> None:
        sqs = boto3.client("sqs")  # one client per thread
        try:
            for handler in handlers:
                self._invoke(handler, event)
                if self.duplicate:
                    self._invoke(handler, event)
            sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])
        except (Exception, InjectedCrash):
            with self._lock:
                self.counts["failed_event_invocations"] += 1
            sqs.change_message_visibility(QueueUrl=self.events_queue_url,
                                          ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)

    def schedule(self) -> None:
        for name, handler in self._routes.schedules:
            try:
                self._invoke(handler, scheduled_event(name, REGION))
            except (Exception, InjectedCrash):
                self.counts["failed_schedule_invocations"] += 1

    def run_until_quiet(self, max_rounds: int = 500) -> None:
        """Deliver until every queue is empty and a scheduled aggregation finds nothing left to do."""
        for _ in range(max_rounds):
            moved = self.process_once() + self.events_once()
            if moved:
                continue
            self.schedule()
            if not self.events_once() and not self.process_once() and self._dirty_left() == 0:
                return
            time.sleep(0.05)  # a lease left by a crashed run expires (the stack's LEASE_SECONDS)
        raise AssertionError(f"the pipeline did not settle in {max_rounds} rounds: {dict(self.counts)}")

    def _dirty_left(self) -> int:
        from chalicelib.adapters.dynamodb import DynamoStateStore
        from chalicelib.settings import get_settings

        return len(DynamoStateStore(boto3.client("dynamodb"), get_settings().table_name).list_dirty(None, 10))

    def dead_letters(self) -> list[str]:
        bodies = []
        while True:
            messages = self._receive(self.dlq_url)
            if not messages:
                return bodies
            bodies += [m["Body"] for m in messages]
            self._sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
