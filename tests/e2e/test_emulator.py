"""The local stack's emulator keeps DynamoDB's atomicity under concurrent requests (localrun/emulator.py).

Each test races 16 threads at one item of the stage's table through the emulator's endpoint, as the local
stack's concurrent processors and aggregators do. The items' keys (pk ``TEST#...``) cannot collide with the
pipeline's records, and each test deletes what it wrote.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.settings import resource_names
from localrun.control import AWS_ENV, LocalStack

pytestmark = pytest.mark.e2e

TABLE = resource_names("dev")["TABLE_NAME"]
THREADS = 16
UPDATES_PER_THREAD = 30


@pytest.fixture(scope="module")
def dynamodb(stack: LocalStack) -> Any:
    # One connection per thread, and no retries: a retried write would hide (or double) what the race did.
    config = Config(max_pool_connections=THREADS * 2, retries={"mode": "standard", "max_attempts": 1})
    return boto3.client("dynamodb", endpoint_url=stack.endpoint_url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing", config=config)


@pytest.fixture
def key(dynamodb: Any) -> Iterator[dict[str, dict[str, str]]]:
    """A key of the stage's table no pipeline record (or other test) uses; its item is deleted afterwards."""
    item_key = {"pk": {"S": f"TEST#emulator#{uuid.uuid4().hex}"}, "sk": {"S": "TEST"}}
    yield item_key
    dynamodb.delete_item(TableName=TABLE, Key=item_key)


def race(attempt: Callable[[], Any]) -> list[str]:
    """Run ``attempt`` on THREADS threads released together; each one's outcome: "ok" or the error code."""
    start = threading.Barrier(THREADS)

    def one() -> str:
        start.wait()
        try:
            attempt()
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda _: one(), range(THREADS)))


def test_concurrent_update_item_add_loses_no_increment(dynamodb: Any, key: dict[str, Any]) -> None:
    def add_many() -> None:
        for _ in range(UPDATES_PER_THREAD):
            dynamodb.update_item(TableName=TABLE, Key=key, UpdateExpression="ADD c :one",
                                 ExpressionAttributeValues={":one": {"N": "1"}})

    outcomes = race(add_many)

    assert outcomes == ["ok"] * THREADS
    item = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    assert int(item["c"]["N"]) == THREADS * UPDATES_PER_THREAD


def test_concurrent_conditional_put_on_a_new_key_succeeds_once(dynamodb: Any, key: dict[str, Any]) -> None:
    def put_if_absent() -> None:
        dynamodb.put_item(TableName=TABLE, Item={**key, "writer": {"S": threading.current_thread().name}},
                          ConditionExpression="attribute_not_exists(pk)")

    outcomes = race(put_if_absent)

    assert sorted(outcomes) == ["ConditionalCheckFailedException"] * (THREADS - 1) + ["ok"]


def test_concurrent_conditional_delete_succeeds_once(dynamodb: Any, key: dict[str, Any]) -> None:
    dynamodb.put_item(TableName=TABLE, Item=key)

    def delete_if_present() -> None:
        dynamodb.delete_item(TableName=TABLE, Key=key, ConditionExpression="attribute_exists(pk)")

    outcomes = race(delete_if_present)

    assert sorted(outcomes) == ["ConditionalCheckFailedException"] * (THREADS - 1) + ["ok"]
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
