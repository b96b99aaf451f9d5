"""Handler tests: the Chalice app through chalice.test.Client, on moto in-process, stage dev's settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
STAGE_ENV = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {**STAGE_ENV, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    from chalice.app import CloudWatchEventConfig
    from chalice.test import Client

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
        with Client(app_module.app, stage_name="dev", project_dir=str(ROOT)) as client:
            yield {"client": client, "app": app_module, "settings": settings, **names}
        pipeline.cache_clear()
