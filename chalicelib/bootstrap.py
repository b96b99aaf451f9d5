"""Composition root: the one place that builds real clients and adapters, on first use, cached per container.

Nothing here runs at import (``chalice deploy``/``package`` import app.py on a developer's machine).
Clients are built lazily so a function only pays for the clients it touches.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .adapters.dynamodb import DynamoStateStore
from .adapters.events import EventBridgePublisher
from .adapters.failures import is_transient
from .adapters.s3 import S3ObjectStore
from .adapters.sqs import SqsTickQueue
from .observability import count
from .services import Pipeline
from .settings import Settings, get_settings


class LazyClient:
    """A boto3 client built on first attribute access."""

    def __init__(self, service: str, settings: Settings) -> None:
        self._service = service
        self._settings = settings
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 8, "mode": "standard"},
                connect_timeout=5, read_timeout=30, max_pool_connections=16,
            )
            self._client = boto3.session.Session().client(
                self._service, region_name=self._settings.region, config=config
            )
        return getattr(self._client, name)


def build_pipeline(settings: Settings) -> Pipeline:
    sqs = LazyClient("sqs", settings)
    return Pipeline(
        store=DynamoStateStore(LazyClient("dynamodb", settings), settings.table_name),
        queue=SqsTickQueue(sqs, settings.queue_name),
        events=EventBridgePublisher(LazyClient("events", settings), settings.event_bus_name, settings.event_source),
        objects=S3ObjectStore(LazyClient("s3", settings)),
        settings=settings,
        metric=count,
        dead_letters=SqsTickQueue(sqs, settings.dead_letter_queue_name),
        transient=is_transient,
    )


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    return build_pipeline(get_settings())
