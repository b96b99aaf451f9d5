"""Every query the DynamoDB store builds is one DynamoDB accepts: a BETWEEN's low bound never sorts after its
high bound, whatever the request asked. (moto answers such a query with nothing; DynamoDB refuses it with a
ValidationException, so this is checked on the queries themselves.) And a ValidationException that still
happens is the request's 400, never a 500.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.bootstrap import wire
from chalicelib.domain.bars import MINUTE_NS, Bar
from chalicelib.domain.errors import InvalidQuery
from chalicelib.settings import Settings
from tests.fakes import MemoryEvents, MemoryObjects, MemoryQueue, bars_json, seed_bars

START = 1_719_828_000 * 1_000_000_000  # 2024-07-01T10:00:00Z


class Recorder:
    """The (low, high) of every BETWEEN in the Query requests a client sends."""

    def __init__(self, client: Any) -> None:
        self.bounds: list[tuple[str, str]] = []
        client.meta.events.register("provide-client-params.dynamodb.Query", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        if "BETWEEN" in params.get("KeyConditionExpression", ""):
            values = params["ExpressionAttributeValues"]
            self.bounds.append((values[":lo"]["S"], values[":hi"]["S"]))


@pytest.fixture
def store_and_recorder(provisioned: dict[str, str], settings: Settings) -> Iterator[tuple[DynamoStateStore, Recorder]]:
    client = boto3.client("dynamodb")
    recorder = Recorder(client)
    store = DynamoStateStore(client, settings.table_name)
    p = Decimal("10")
    bars = [(Bar("Q", "1m", START + i * MINUTE_NS, p, p, p, p, p, p * p, 1, START, START, "a", "a"), 1)
            for i in range(5)]
    seed_bars(store, bars)
    yield store, recorder


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


times = st.one_of(
    st.none(), st.text(max_size=30),
    st.sampled_from(["0001-01-01", "1969-12-31T23:59:59Z", "1970-01-01", "2024-07-01T10:02:00Z", "2262-04-11",
                     "2262-04-12", "9999-12-31", "-1", "0", "1719828120", "99999999999999999999", "1e30"]),
    st.integers(-(10**20), 10**20).map(str),
)
cursors = st.one_of(st.none(), st.text(max_size=30),
                    st.integers(-(10**20), 10**20).map(lambda n: cursor(str(n))),
                    st.sampled_from([cursor(str(START + 2 * MINUTE_NS)), cursor(str(2**63)), cursor("-1")]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=times, end=times, limit=st.one_of(st.none(), st.sampled_from(["1", "2", "5000", "10_0"])),
       next_=cursors)
@example(start="0001-01-01", end="1969-01-01", limit=None, next_=None)
@example(start=None, end="2024-07-01T10:01:00Z", limit=None, next_=cursor(str(START + 3 * MINUTE_NS)))
@example(start=None, end=None, limit=None, next_=cursor(str(-5)))
def test_bar_queries_never_send_an_inverted_range(
    store_and_recorder: tuple[DynamoStateStore, Recorder], start: str | None, end: str | None, limit: str | None,
    next_: str | None,
) -> None:
    store, recorder = store_and_recorder
    pipeline = wire(store, MemoryQueue(), MemoryEvents(), MemoryObjects(), Settings())
    recorder.bounds.clear()
    try:
        page = bars_json(pipeline, "Q", "1m", start, end, limit, next_)
    except InvalidQuery:
        return
    assert all(lo <= hi for lo, hi in recorder.bounds), recorder.bounds
    assert len(page["bars"]) <= 5


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.integers(-(10**21), 10**21), last=st.integers(-(10**21), 10**21),
       after=st.one_of(st.none(), st.integers(-(10**21), 10**21)))
def test_every_store_query_keeps_its_bounds_in_order(
    store_and_recorder: tuple[DynamoStateStore, Recorder], first: int, last: int, after: int | None
) -> None:
    store, recorder = store_and_recorder
    recorder.bounds.clear()
    store.query_bars("Q", "1m", first, last, 3, after)
    store.query_partials("Q", first, last)
    store.list_partial_minutes("Q", first, last)
    assert all(lo <= hi for lo, hi in recorder.bounds), recorder.bounds


class RefusingClient:
    """A DynamoDB client whose queries DynamoDB refuses."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def query(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "Invalid KeyConditionExpression"}},
                          "Query")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_validation_exception_is_the_requests_400(provisioned: dict[str, str], settings: Settings) -> None:
    store = DynamoStateStore(RefusingClient(boto3.client("dynamodb")), settings.table_name)
    pipeline = wire(store, MemoryQueue(), MemoryEvents(), MemoryObjects(), Settings())
    with pytest.raises(InvalidQuery, match="Invalid KeyConditionExpression"):
        bars_json(pipeline, "Q", "1m")
