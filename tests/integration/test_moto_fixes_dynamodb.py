"""The emulator's DynamoDB read fixes (localrun/moto_table_query.py, localrun/moto_json_reads.py) keep every
answer: each request below is answered the same with the fixes and with moto's own code paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localrun import moto_json_reads, moto_json_requests, moto_table_query

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


def writes_and_reads(ddb: Any) -> None:
    """Requests of every data-plane operation, with attributes of every type (binary ones among them)."""
    item = {"pk": {"S": "w"}, "sk": {"S": "1"}, "s": {"S": "é\"\\ ok"}, "n": {"N": "-1.50"}, "b": {"BOOL": False},
            "z": {"NULL": True}, "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"SS": ["a", "b"]}}}]},
            "m": {"M": {"ns": {"NS": ["1", "2.5"]}, "t": {"S": "nul"}}}}
    binary = {**item, "sk": {"S": "2"}, "bin": {"B": b"\x00\xff"}, "bs": {"BS": [b"a", b"b"]}}
    ddb.put_item(TableName="S-table", Item=item)
    ddb.put_item(TableName="S-table", Item=binary, ReturnValues="ALL_OLD")
    ddb.put_item(TableName="S-table", Item={**item, "sk": {"S": "4"}, "text": {"S": "null"}})
    ddb.put_item(TableName="S-table", Item={**item, "sk": {"S": "3"}}, ConditionExpression="attribute_not_exists(pk)")
    ddb.update_item(TableName="S-table", Key={"pk": {"S": "w"}, "sk": {"S": "1"}},
                    UpdateExpression="SET #c = if_not_exists(#c, :z) + :one REMOVE b", ReturnValues="ALL_NEW",
                    ExpressionAttributeNames={"#c": "count"}, ExpressionAttributeValues={":z": {"N": "0"},
                                                                                         ":one": {"N": "1"}})
    ddb.delete_item(TableName="S-table", Key={"pk": {"S": "w"}, "sk": {"S": "3"}}, ConditionExpression="s = :s",
                    ExpressionAttributeValues={":s": {"S": "é\"\\ ok"}}, ReturnValues="ALL_OLD")
    ddb.batch_write_item(RequestItems={"S-table": [
        {"PutRequest": {"Item": {**item, "sk": {"S": f"b{i}"}}}} for i in range(20)] + [
        {"DeleteRequest": {"Key": {"pk": {"S": "w"}, "sk": {"S": "2"}}}}]}, ReturnConsumedCapacity="TOTAL")
    ddb.transact_write_items(TransactItems=[
        {"ConditionCheck": {"TableName": "S-table", "Key": {"pk": {"S": "w"}, "sk": {"S": "1"}},
                            "ConditionExpression": "attribute_exists(pk)"}},
        {"Put": {"TableName": "S-table", "Item": {**item, "sk": {"S": "t1"}}}},
        {"Update": {"TableName": "S-table", "Key": {"pk": {"S": "w"}, "sk": {"S": "b1"}},
                    "UpdateExpression": "SET n = :n", "ExpressionAttributeValues": {":n": {"N": "7"}}}},
        {"Delete": {"TableName": "S-table", "Key": {"pk": {"S": "w"}, "sk": {"S": "b2"}}}},
    ], ClientRequestToken="token-1")
    ddb.get_item(TableName="S-table", Key={"pk": {"S": "w"}, "sk": {"S": "1"}}, ConsistentRead=True,
                 ProjectionExpression="s, #n", ExpressionAttributeNames={"#n": "n"})
    ddb.batch_get_item(RequestItems={"S-table": {"Keys": [{"pk": {"S": "w"}, "sk": {"S": f"b{i}"}} for i in range(5)],
                                                 "ConsistentRead": True}})
    page = ddb.query(TableName="S-table", KeyConditionExpression="pk = :p", Limit=3, ScanIndexForward=False,
                     ExpressionAttributeValues={":p": {"S": "w"}})
    ddb.query(TableName="S-table", KeyConditionExpression="pk = :p", ExclusiveStartKey=page["LastEvaluatedKey"],
              ExpressionAttributeValues={":p": {"S": "w"}}, Select="COUNT")
    ddb.scan(TableName="N-table", Limit=5, FilterExpression="b = :t", ExpressionAttributeValues={":t": {"BOOL": True}},
             Segment=0, TotalSegments=2)


def test_requests_read_with_json_loads_have_the_parameters_moto_parses(
        tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.responses import DynamoHandler

    current = DynamoHandler.parse_parameters
    parse = getattr(current, "original", current)  # moto's own
    seen: list[tuple[str, bool]] = []

    def both(self: Any, request: Any) -> None:
        parse(self, request)
        fast = moto_json_requests.plain_parameters(self._get_action(), request.data)
        if fast is not None:
            assert fast == self.params, self._get_action()
        seen.append((self._get_action(), fast is not None))

    monkeypatch.setattr(DynamoHandler, "parse_parameters", both)
    writes_and_reads(tables)
    answers(tables)
    taken = {action for action, fast in seen if fast}
    assert taken == set(moto_json_requests.FAST_ACTIONS)  # every operation takes it, for some request
    assert [fast for action, fast in seen if action == "PutItem"] == [True, False, False, True]  # not with
    # binary attributes, nor with "null" anywhere
    assert sum(fast for _, fast in seen) > 0.8 * len(seen) > 200


@pytest.mark.parametrize("over", [0, 1])
def test_items_are_built_and_sized_as_moto_sizes_them(over: int) -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.utilities import bytesize

    from localrun import moto_fixes

    moto_fixes.install()
    attrs: dict[str, Any] = {"pk": {"S": "p"}, "sk": {"S": "é€"}, "n": {"N": "-12.500"}, "b": {"BOOL": True},
                             "z": {"NULL": True}, "l": {"L": [{"S": "x"}, {"N": "1"}]}, "ss": {"SS": ["a", "bé"]},
                             "m": {"M": {"k": {"N": "3"}}}, "bin": {"B": b"\x00\xff"}, "ü": {"S": ""}}
    size = sum(bytesize(key) + DynamoType(value).size() for key, value in attrs.items())
    room = moto_fixes.ITEM_SIZE_LIMIT - size - 3  # the bytes left for the value of "pad"
    attrs["pad"] = {"S": "é" * (room // 2) + "x" * (room % 2 + over)}
    assert sum(bytesize(key) + DynamoType(value).size() for key, value in attrs.items()) == \
        moto_fixes.ITEM_SIZE_LIMIT + over
    if over:
        with pytest.raises(ItemSizeTooLarge):
            Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs)
        return
    item = Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs)
    assert dict(item.attrs) == {key: DynamoType(value) for key, value in attrs.items()}
    assert {key: (value.type, type(value.value)) for key, value in item.attrs.items()} == {
        key: (DynamoType(value).type, type(DynamoType(value).value)) for key, value in attrs.items()}
