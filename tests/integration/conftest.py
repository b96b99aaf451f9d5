"""Adapters against moto in-process: a fresh emulated account per test, provisioned like the local stack."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.settings import Settings
from localrun.provision import provision

EVENT_PATTERNS = {
    "DataAggregator": {"source": ["market-data.pipeline"], "detail-type": ["TicksProcessed", "AggregationPending"]},
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def settings() -> Settings:
    return Settings(stage="itest", table_name="MarketDataState-itest", bucket_name="market-data-bucket-itest",
                    queue_name="market-data-ingest-itest", dead_letter_queue_name="market-data-ingest-dlq-itest")


@pytest.fixture
def provisioned(aws_env: None, settings: Settings) -> dict[str, str]:
    return provision(settings, EVENT_PATTERNS, boto3.session.Session())


@pytest.fixture
def session(aws_env: None) -> boto3.session.Session:
    return boto3.session.Session(region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
