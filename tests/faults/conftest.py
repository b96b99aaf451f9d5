"""The pipeline on moto in-process with the stage's settings, plus a tally of what the harness did."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
STAGE_ENV = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
TALLY: Counter[str] = Counter()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {**STAGE_ENV, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    from chalice.app import CloudWatchEventConfig

    import app as app_module
    from chalicelib.bootstrap import pipeline
    from chalicelib.settings import get_settings
    from localrun.provision import provision

    with mock_aws():
        pipeline.cache_clear()
        settings = get_settings()
        patterns = {s.name: s.event_pattern for s in app_module.app.event_sources
                    if isinstance(s, CloudWatchEventConfig)}
        names = provision(settings, patterns, boto3.session.Session())
        sqs, events = boto3.client("sqs"), boto3.client("events")
        dlq_url = sqs.get_queue_url(QueueName=settings.dead_letter_queue_name)["QueueUrl"]
        # Consumers of BarsRevised are outside this project; a rule to a queue stands in for them.
        revised_url = sqs.create_queue(QueueName="bars-revised-consumer")["QueueUrl"]
        revised_arn = sqs.get_queue_attributes(QueueUrl=revised_url, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="bars-revised-consumer", EventPattern=json.dumps(
            {"source": [settings.event_source], "detail-type": ["BarsRevised"]}))
        events.put_targets(Rule="bars-revised-consumer", Targets=[{"Id": "q", "Arn": revised_arn["QueueArn"]}])
        yield {"app": app_module, "settings": settings, "dlq_url": dlq_url, "revised_url": revised_url, **names}
        pipeline.cache_clear()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY:
        terminalreporter.write_line(
            "fault harness: " + ", ".join(f"{k}={v}" for k, v in sorted(TALLY.items()))
        )
