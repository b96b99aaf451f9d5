"""The emulator's DynamoDB read fixes (localrun/moto_table_query.py, localrun/moto_json_reads.py) keep every
answer: each request below is answered the same with the fixes and with moto's own code paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localrun import moto_json_reads, moto_table_query

ITEMS = 40


@pytest.fixture
def tables() -> Iterator[Any]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        for name, kind in (("S-table", "S"), ("N-table", "N")):
            ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                   {"AttributeName": "sk", "AttributeType": kind}],
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                        {"AttributeName": "sk", "KeyType": "RANGE"}])
        for i in range(ITEMS):
            keys = (("S-table", {"S": f"{i * 7 % ITEMS:04d}#{'ab'[i % 2]}"}), ("N-table", {"N": str(i - 9)}))
            for table, key in keys:
                item = {"pk": {"S": "p" if i % 5 else "q"}, "sk": key, "s": {"S": "é" * (i % 4)},
                        "n": {"N": f"{i}.50"}, "b": {"BOOL": i % 2 == 0}, "z": {"NULL": True},
                        "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"SS": ["a", "b"]}}}]},
                        "m": {"M": {"ns": {"NS": ["1", "2.5"]}}}, "pad": {"S": "#" * (i * 9973 % 90_000)}}
                if i % 13 == 0:
                    item["bin"] = {"B": bytes([i, 0, 255])}
                ddb.put_item(TableName=table, Item=item)
        yield ddb


def answers(ddb: Any) -> list[Any]:
    out: list[Any] = []

    def ask(operation: str, **kwargs: Any) -> None:
        response = getattr(ddb, operation)(**kwargs)
        response.pop("ResponseMetadata", None)
        out.append((operation, kwargs, response))

    for table, lo, hi, mid in (("S-table", "0005", "0030", "0012#a"), ("N-table", "-3", "20", "4")):
        kind = "S" if table == "S-table" else "N"
        conditions: list[tuple[str, dict[str, Any]]] = [
            ("pk = :p", {}), ("pk = :p AND sk BETWEEN :lo AND :hi", {":lo": {kind: lo}, ":hi": {kind: hi}}),
            ("pk = :p AND sk < :v", {":v": {kind: mid}}), ("pk = :p AND sk <= :v", {":v": {kind: mid}}),
            ("pk = :p AND sk > :v", {":v": {kind: mid}}), ("pk = :p AND sk >= :v", {":v": {kind: mid}}),
            ("pk = :p AND sk = :v", {":v": {kind: mid}}),
        ]
        if kind == "S":
            conditions.append(("pk = :p AND begins_with(sk, :v)", {":v": {"S": "001"}}))
        for expression, values in conditions:
            for forward in (True, False):
                for limit in (None, 1, 7):
                    kwargs: dict[str, Any] = {"TableName": table, "KeyConditionExpression": expression,
                                              "ExpressionAttributeValues": {":p": {"S": "p"}, **values},
                                              "ScanIndexForward": forward}
                    if limit is not None:
                        kwargs["Limit"] = limit
                    while True:  # every page, as a client pages
                        ask("query", **kwargs)
                        last = out[-1][2].get("LastEvaluatedKey")
                        if not last:
                            break
                        kwargs = {**kwargs, "ExclusiveStartKey": last}
        ask("query", TableName=table, KeyConditionExpression="pk = :p", ProjectionExpression="sk, n",
            ExpressionAttributeValues={":p": {"S": "q"}})
        ask("query", TableName=table, KeyConditionExpression="pk = :p", FilterExpression="b = :t",
            ExpressionAttributeValues={":p": {"S": "p"}, ":t": {"BOOL": True}})
        ask("query", TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
        ask("query", TableName=table, KeyConditionExpression="pk = :p", Select="COUNT",
            ExpressionAttributeValues={":p": {"S": "p"}}, ReturnConsumedCapacity="TOTAL")
        ask("scan", TableName=table)
        first = out[-1][2]["Items"][0]
        ask("get_item", TableName=table, Key={"pk": first["pk"], "sk": first["sk"]})
        ask("batch_get_item", RequestItems={table: {"Keys": [{"pk": i["pk"], "sk": i["sk"]}
                                                             for i in out[-2][2]["Items"][:5]]}})
    return out


def test_reads_are_answered_as_moto_answers_them(tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = answers(tables)
    with monkeypatch.context() as m:
        from moto.dynamodb.models.utilities import dynamo_to_dict

        m.setattr(moto_table_query, "is_simple", lambda *_: False)
        m.setattr(moto_json_reads, "FAST_ACTIONS", frozenset())
        m.setattr(moto_json_reads, "plain", dynamo_to_dict)
        slow = answers(tables)
    assert len(fast) == len(slow) > 200
    for (operation, kwargs, got), (_, _, want) in zip(fast, slow, strict=True):
        assert got == want, (operation, kwargs)
    pages = [r for op, k, r in fast if op == "query" and "Limit" not in k and r.get("LastEvaluatedKey")]
    assert pages, "some pages are cut at 1 MB"
