"""The pipeline on moto in-process with the stage's settings, plus a tally of what the harness did."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.moto_stack import ROOT, moto_stack

DATA = ROOT.parent / "shared" / "data"
TALLY: Counter[str] = Counter()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from chalicelib.settings import get_settings

    # A lease left behind by a crashed run expires within the harness's patience.
    monkeypatch.setenv("LEASE_SECONDS", "1")
    get_settings.cache_clear()
    with moto_stack(monkeypatch) as resources:
        settings = resources["settings"]
        sqs, events = boto3.client("sqs"), boto3.client("events")
        dlq_url = sqs.get_queue_url(QueueName=settings.dead_letter_queue_name)["QueueUrl"]
        # Consumers of BarsRevised are outside this project; a rule to a queue stands in for them.
        revised_url = sqs.create_queue(QueueName="bars-revised-consumer")["QueueUrl"]
        revised_arn = sqs.get_queue_attributes(QueueUrl=revised_url, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="bars-revised-consumer", EventPattern=json.dumps(
            {"source": [settings.event_source], "detail-type": ["BarsRevised"]}))
        events.put_targets(Rule="bars-revised-consumer", Targets=[{"Id": "q", "Arn": revised_arn["QueueArn"]}])
        yield {**resources, "dlq_url": dlq_url, "revised_url": revised_url}
    get_settings.cache_clear()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY:
        terminalreporter.write_line(
            "fault harness: " + ", ".join(f"{k}={v}" for k, v in sorted(TALLY.items()))
        )
