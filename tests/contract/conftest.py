"""The store contract runs against each store: the in-memory twin, and the DynamoDB store on moto."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.settings import Settings
from localrun.provision import provision
from tests.fakes import MemoryStateStore

SETTINGS = Settings(stage="contract", table_name="MarketDataState-contract", bucket_name="market-data-bucket-contract",
                    queue_name="market-data-ingest-contract", dead_letter_queue_name="market-data-ingest-dlq-contract")


@contextmanager
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process with the contract stage's table, bucket and queues."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        provision(SETTINGS, {}, boto3.session.Session())
        yield


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    with emulator(monkeypatch):
        yield DynamoStateStore(boto3.client("dynamodb"), SETTINGS.table_name)
