"""The app with stage dev's settings on moto in-process: environment, an emulated account, provisioned resources.

Shared by the handler, bad-input and fault tests; each adds its own driving around it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
STAGE_ENV = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def moto_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Yield {app, settings, bucket, table, queue_url, events_queue_url} inside a fresh mock_aws()."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {**STAGE_ENV, **CREDENTIALS}.items():
        monkeypatch.setenv(key, value)
    from chalice.app import CloudWatchEventConfig

    import app as app_module
    from chalicelib.bootstrap import use_cases
    from chalicelib.settings import get_settings
    from localrun.provision import provision

    with mock_aws():
        use_cases.cache_clear()
        settings = get_settings()
        patterns = {s.name: s.event_pattern for s in app_module.app.event_sources
                    if isinstance(s, CloudWatchEventConfig)}
        names = provision(settings, patterns, boto3.session.Session())
        try:
            yield {"app": app_module, "settings": settings, **names}
        finally:
            use_cases.cache_clear()


# ------------------------------------------------------------------------------------------ Lambda's part
def drain_queue(url: str, visibility: int = 30) -> list[dict[str, Any]]:
    """Receive and delete every message of a queue, as ReceiveMessage returns them."""
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility,
                                       AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return out
        out += messages
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def run_processor(stack: dict[str, Any]) -> list[Any]:
    """Hand every queued message to DataProcessor, in batches of its trigger's size; the payloads."""
    from chalicelib.settings import PROCESSOR_BATCH_SIZE

    client = stack["client"]
    bodies = [m["Body"] for m in drain_queue(stack["queue_url"])]
    payloads = []
    for i in range(0, len(bodies), PROCESSOR_BATCH_SIZE):
        event = client.events.generate_sqs_event(bodies[i : i + PROCESSOR_BATCH_SIZE],
                                                 queue_name=stack["settings"].queue_name)
        payloads.append(client.lambda_.invoke("DataProcessor", event).payload)
    return payloads


def deliver_events(stack: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """What EventBridge delivered to the rules' targets, handed to the functions whose pattern matches (as the
    app declares them); each event with the payload its function returned."""
    from localrun.lambda_events import Routes, eventbridge_event

    client = stack["client"]
    routes = Routes.of(stack["app"])
    results = []
    for message in drain_queue(stack["events_queue_url"]):
        event = eventbridge_event(json.loads(message["Body"]), stack["settings"].region)
        for name, _ in routes.matching(event):
            payload = client.events.generate_cw_event(event["source"], event["detail-type"], event["detail"], [])
            results.append((event, client.lambda_.invoke(name, payload).payload))
    return results
