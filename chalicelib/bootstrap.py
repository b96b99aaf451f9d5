"""Composition root: the one place that builds adapters and wires them into the use cases, for the API, each
Lambda function and the operator's command line.

Nothing here runs at import (``chalice deploy``/``package`` import app.py on a developer's machine):
clients are built on first use and cached per container, so a function only pays for the clients it
touches. Tests wire the same use cases to in-memory fakes with ``wire``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from .adapters.dynamodb import DynamoStateStore
from .adapters.events import EventBridgePublisher
from .adapters.failures import is_transient
from .adapters.s3 import S3ObjectStore
from .adapters.s3_listing import S3ObjectLister
from .adapters.sqs import SqsTickQueue
from .adapters.sqs_dlq import SqsDeadLetterQueue
from .observability import count
from .settings import Settings, get_settings
from .usecases.common import Clock, Metric, Transient, no_metric

if TYPE_CHECKING:
    from .ports import DeadLetterQueue, EventPublisher, ObjectLister, ObjectStore, TickQueue
    from .usecases.aggregate import Aggregate
    from .usecases.ingest_body import IngestBody
    from .usecases.ingest_object import IngestObject
    from .usecases.listing import ListIngestions
    from .usecases.operator import Operations
    from .usecases.process_batch import ProcessBatch
    from .usecases.queries import IngestionStatus, ListSymbols, ReadBars
    from .usecases.sources import Sources


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


class UseCases:
    """Every use case of one deployment, wired to the same adapters. Each is built on first use, and its module
    imported then: a function's cold start imports only the use cases it runs."""

    def __init__(self, store: Any, queue: TickQueue, events: EventPublisher, objects: ObjectStore,
                 settings: Settings, dead_letters: TickQueue | None, clock: Clock, metric: Metric,
                 new_token: Callable[[], str], transient: Transient, sleep: Callable[[float], None]) -> None:
        self._store, self._queue, self._events, self._objects = store, queue, events, objects
        self.settings = settings
        self._dead_letters, self._clock, self._metric = dead_letters, clock, metric
        self._new_token, self._transient, self._sleep = new_token, transient, sleep

    @cached_property
    def sources(self) -> Sources:
        from .usecases.sources import Sources

        store = self._store
        return Sources(store, store, store, store, self._objects, self._new_token)

    @cached_property
    def ingest_body(self) -> IngestBody:
        from .usecases.ingest_body import IngestBody

        store = self._store
        return IngestBody(store, store, self._queue, self.sources, self.settings, self._clock, self._metric,
                          self._new_token, self._transient)

    @cached_property
    def ingest_object(self) -> IngestObject:
        from .usecases.ingest_object import IngestObject

        return IngestObject(self._store, self._objects, self._queue, self.sources, self.settings, self._clock,
                            self._metric, self._transient)

    @cached_property
    def process_batch(self) -> ProcessBatch:
        from .usecases.process_batch import ProcessBatch

        store = self._store
        return ProcessBatch(store, store, store, self._objects, self.sources, self._events, self.settings,
                            self._dead_letters, self._clock, self._metric, self._new_token, self._transient,
                            self._sleep)

    @cached_property
    def aggregate(self) -> Aggregate:
        from .usecases.aggregate import Aggregate

        store = self._store
        return Aggregate(store, store, store, store, store, self.sources, self._events, self.settings, self._clock,
                         self._metric, self._new_token, sleep=self._sleep)

    @cached_property
    def read_bars(self) -> ReadBars:
        from .usecases.queries import ReadBars

        return ReadBars(self._store)

    @cached_property
    def ingestion_status(self) -> IngestionStatus:
        from .usecases.queries import IngestionStatus

        store = self._store
        return IngestionStatus(store, store, self.sources, self.settings, self._clock)

    @cached_property
    def list_ingestions(self) -> ListIngestions:
        from .usecases.listing import ListIngestions

        return ListIngestions(self._store, self.sources, self.settings, self._clock)

    @cached_property
    def list_symbols(self) -> ListSymbols:
        from .usecases.queries import ListSymbols

        return ListSymbols(self._store)


def wire(
    store: Any, queue: TickQueue, events: EventPublisher, objects: ObjectStore, settings: Settings, *,
    dead_letters: TickQueue | None = None, clock: Clock = time.time_ns, metric: Metric = no_metric,
    new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
    transient: Transient = is_transient, sleep: Callable[[float], None] = time.sleep,
) -> UseCases:
    """The use cases on these adapters. ``store`` implements every store port of chalicelib/ports.py (the
    DynamoDB store, or the tests' in-memory twin)."""
    return UseCases(store, queue, events, objects, settings, dead_letters, clock, metric, new_token, transient,
                    sleep)


def wire_operations(use_cases: UseCases, store: Any, queue: TickQueue, dead_letters: DeadLetterQueue,
                    listing: ObjectLister, new_token: Callable[[], str] = lambda: uuid.uuid4().hex) -> Operations:
    """The operator's commands on these adapters and use cases."""
    from .usecases.operator import DeadLetters, Operations, Recompute, Replay

    settings = use_cases.settings
    return Operations(
        status=use_cases.ingestion_status,
        dlq=DeadLetters(dead_letters, queue, settings),
        replay=Replay(listing, use_cases.ingest_object, use_cases.ingestion_status, settings),
        recompute=Recompute(store, store, store, use_cases.aggregate, settings, new_token),
        read_bars=use_cases.read_bars,
    )


def _real(settings: Settings, metric: Metric) -> tuple[UseCases, DynamoStateStore, SqsTickQueue, LazyClient]:
    sqs = LazyClient("sqs", settings)
    store = DynamoStateStore(LazyClient("dynamodb", settings), settings.table_name)
    queue = SqsTickQueue(sqs, settings.queue_name)
    use_cases = wire(
        store, queue, EventBridgePublisher(LazyClient("events", settings), settings.event_bus_name,
                                           settings.event_source),
        S3ObjectStore(LazyClient("s3", settings)), settings, metric=metric,
        dead_letters=SqsTickQueue(sqs, settings.dead_letter_queue_name),
    )
    return use_cases, store, queue, sqs


def build_use_cases(settings: Settings) -> UseCases:
    """The stage's use cases on AWS (or whatever AWS_ENDPOINT_URL names), with metrics."""
    return _real(settings, count)[0]


@lru_cache(maxsize=1)
def use_cases() -> UseCases:
    """The use cases of this Lambda container (built on first use, then reused by warm invocations)."""
    return build_use_cases(get_settings())


def operations(settings: Settings) -> Operations:
    """The operator's commands for a stage. A command line has no invocation to flush metrics with, so it
    records none."""
    use_cases, store, queue, sqs = _real(settings, no_metric)
    return wire_operations(use_cases, store, queue, SqsDeadLetterQueue(sqs, settings.dead_letter_queue_name),
                           S3ObjectLister(LazyClient("s3", settings)))
