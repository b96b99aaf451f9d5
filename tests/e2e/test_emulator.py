"""The local stack's emulator keeps DynamoDB's per-request atomicity under concurrency (localrun/emulator.py).

Each test releases 16 threads together at items of the stage's table, through the emulator's endpoint, as the
local stack's concurrent processors and aggregators do. A test's items share one partition key (``TEST#...``),
which no pipeline record uses, and are deleted afterwards.
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
CONDITIONAL_ROUNDS = 10  # a lost race is rare per round, so race several fresh keys
TRANSACTIONS_PER_THREAD = 20
TRANSACTION_PUTS = 25  # the fence, then writes: the shape of the pipeline's fenced writes
CANCELLED = "TransactionCanceledException"
CONDITION_FAILED = "ConditionalCheckFailedException"


@pytest.fixture(scope="module")
def dynamodb(stack: LocalStack) -> Any:
    # A connection per thread, and no retries: a retried write would hide (or double) what the race did.
    config = Config(max_pool_connections=THREADS * 2, retries={"mode": "standard", "max_attempts": 1})
    return boto3.client("dynamodb", endpoint_url=stack.endpoint_url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing", config=config)


@pytest.fixture
def pk(dynamodb: Any) -> Iterator[str]:
    """A partition key of the stage's table that nothing else uses; every item under it is deleted afterwards."""
    value = f"TEST#emulator#{uuid.uuid4().hex}"
    yield value
    items = dynamodb.query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                           ExpressionAttributeValues={":pk": {"S": value}}, ConsistentRead=True)["Items"]
    for item in items:
        dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})


def key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def race(attempt: Callable[[int], Any]) -> list[str]:
    """``attempt(thread_index)`` on THREADS threads released together; each one's outcome: "ok" or the error code."""
    start = threading.Barrier(THREADS)

    def one(index: int) -> str:
        start.wait()
        try:
            attempt(index)
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def add_one(dynamodb: Any, counter: dict[str, Any]) -> None:
    dynamodb.update_item(TableName=TABLE, Key=counter, UpdateExpression="ADD c :one",
                         ExpressionAttributeValues={":one": {"N": "1"}})


def count(dynamodb: Any, counter: dict[str, Any]) -> int:
    return int(dynamodb.get_item(TableName=TABLE, Key=counter, ConsistentRead=True)["Item"]["c"]["N"])


def test_concurrent_update_item_add_loses_no_increment(dynamodb: Any, pk: str) -> None:
    counter = key(pk, "counter")

    def add_many(_: int) -> None:
        for _ in range(UPDATES_PER_THREAD):
            add_one(dynamodb, counter)

    outcomes = race(add_many)

    assert outcomes == ["ok"] * THREADS
    assert count(dynamodb, counter) == THREADS * UPDATES_PER_THREAD


def claim_and_release(dynamodb: Any, item_key: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Race a put-if-absent on ``item_key``, then a delete-if-present; the outcomes of each race."""
    def put_if_absent(index: int) -> None:
        dynamodb.put_item(TableName=TABLE, Item={**item_key, "writer": {"N": str(index)}},
                          ConditionExpression="attribute_not_exists(pk)")

    def delete_if_present(_: int) -> None:
        dynamodb.delete_item(TableName=TABLE, Key=item_key, ConditionExpression="attribute_exists(pk)")

    return race(put_if_absent), race(delete_if_present)


def test_concurrent_conditional_put_and_delete_each_succeed_once(dynamodb: Any, pk: str) -> None:
    one_winner = [CONDITION_FAILED] * (THREADS - 1) + ["ok"]
    for round_ in range(CONDITIONAL_ROUNDS):
        item_key = key(pk, f"claim-{round_}")

        puts, deletes = claim_and_release(dynamodb, item_key)

        assert sorted(puts) == one_winner, f"round {round_}"
        assert sorted(deletes) == one_winner, f"round {round_}"
        assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=item_key, ConsistentRead=True)


def test_cancelled_transactions_undo_no_concurrent_write(dynamodb: Any, pk: str) -> None:
    """Half the threads bump a counter; the other half send fenced transactions whose fence is missing."""
    counter, fence = key(pk, "counter"), key(pk, "fence")
    add_one(dynamodb, counter)

    def fenced_writes(index: int) -> None:
        for attempt in range(TRANSACTIONS_PER_THREAD):
            writes = [{"Put": {"TableName": TABLE, "Item": {**key(pk, f"write-{index}-{attempt}-{n}"),
                                                            "n": {"N": str(n)}}}}
                      for n in range(TRANSACTION_PUTS - 1)]
            try:
                dynamodb.transact_write_items(TransactItems=[
                    {"ConditionCheck": {"TableName": TABLE, "Key": fence,
                                        "ConditionExpression": "attribute_exists(pk)"}}, *writes])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CANCELLED:
                    raise
            else:
                raise AssertionError("a transaction whose fence is missing was applied")

    def work(index: int) -> None:
        if index % 2:
            for _ in range(TRANSACTIONS_PER_THREAD):
                add_one(dynamodb, counter)
        else:
            fenced_writes(index)

    outcomes = race(work)

    assert outcomes == ["ok"] * THREADS
    assert count(dynamodb, counter) == 1 + THREADS // 2 * TRANSACTIONS_PER_THREAD
    written = dynamodb.query(TableName=TABLE, KeyConditionExpression="pk = :pk AND begins_with(sk, :w)",
                             ExpressionAttributeValues={":pk": {"S": pk}, ":w": {"S": "write-"}},
                             ConsistentRead=True)["Items"]
    assert written == []
