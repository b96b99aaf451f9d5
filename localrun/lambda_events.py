"""The events AWS hands a Lambda function, built the way AWS builds them, and which handler gets which.

Shared by everything that plays Lambda's triggers outside AWS: the local stack's driver, the fault harness
and the handler tests. Routing uses the app's own declarations (its event patterns, its schedule, its SQS
trigger), so a handler is reached exactly when AWS would reach it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from chalice.app import CloudWatchEventConfig, ScheduledEventConfig
from moto.events.models import EventPattern

ACCOUNT = "123456789012"
Handler = Callable[..., Any]


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


def sqs_event(messages: Sequence[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event of an SQS event source mapping for messages as ReceiveMessage returned them."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
    } for m in messages]}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventbridge_event(event: dict[str, Any], region: str) -> dict[str, Any]:
    """An EventBridge event with the envelope fields AWS always sets (moto sometimes leaves some out)."""
    event.setdefault("version", "0")
    event.setdefault("id", str(uuid.uuid4()))
    event.setdefault("account", ACCOUNT)
    event.setdefault("region", region)
    event.setdefault("resources", [])
    event.setdefault("time", now_iso())
    event.setdefault("detail", {})
    return event


def scheduled_event(rule_name: str, region: str) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": now_iso(), "region": region,
            "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule_name}"], "detail": {}}


@dataclass
class Routes:
    """The app's triggers: which function each EventBridge pattern, the schedule and the SQS queue reach."""

    events: list[tuple[EventPattern, str, Handler]] = field(default_factory=list)
    schedules: list[tuple[str, Handler]] = field(default_factory=list)
    sqs: Handler | None = None
    # The SQS trigger's batching, as declared in app.py: at most this many messages per invocation, gathered
    # for at most this many seconds.
    sqs_batch_size: int = 10
    sqs_batching_window_seconds: int = 0

    @classmethod
    def of(cls, app_module: ModuleType) -> Routes:
        routes = cls()
        for source in app_module.app.event_sources:
            function = getattr(app_module, source.handler_string.split(".")[-1])
            if isinstance(source, CloudWatchEventConfig):
                routes.events.append((EventPattern.load(json.dumps(source.event_pattern)), source.name, function))
            elif isinstance(source, ScheduledEventConfig):
                routes.schedules.append((source.name, function))
            elif source.__class__.__name__ == "SQSEventConfig":
                routes.sqs = function
                routes.sqs_batch_size = source.batch_size
                routes.sqs_batching_window_seconds = source.maximum_batching_window_in_seconds
        return routes

    def matching(self, event: dict[str, Any]) -> list[tuple[str, Handler]]:
        """The functions whose pattern matches an EventBridge event (by name, for their context)."""
        return [(name, function) for pattern, name, function in self.events
                if pattern.matches_event(event)]  # type: ignore[arg-type]
