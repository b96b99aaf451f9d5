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
