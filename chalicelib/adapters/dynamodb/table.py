"""The DynamoDB table the store is kept in: requests with their retries, pages and error mapping.

Key layout (pk / sk) of the single table:
    I#<ingestion id>  META                       ingestion record (source, status, counts)
    I#<ingestion id>  C#<chunk:06>               one chunk's result or failure
    I#<ingestion id>  C#<chunk:06>#W<page:05>    a page of a chunk result's windows, when they outgrow an item
    O#<bucket>/<key>  META                       the ingestions of an object key
    IX#<source>#<day> <received:020>#<id>        the time index: one entry per ingestion, by UTC day of receipt
    IXD#<source>      <day>                      a day (YYYY-MM-DD) that holds entries of the source
    K#<idempotency key> META                     what an Idempotency-Key stands for (TTL)
    P#<symbol>        <minute:020>#<source>      1-minute partial aggregate of one source chunk
    B#<symbol>#<iv>   <start:020>                bar of interval iv
    D#<shard>         <symbol>#<hour:020>#<token> dirty 1-minute windows of an hour, one item per mark
    L#<symbol>        LEASE                      which aggregation run holds the symbol, until when
    S#<shard>         <symbol>                   symbol and its latest bar time

<shard> is two digits from a hash of the symbol (layout.py), so marks and symbols spread over partitions.

Partials are keyed by their source chunk, so a redelivered message overwrites instead of adding.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ...domain.errors import InvalidQuery, TransientError

BATCH_WRITE_LIMIT = 25
BATCH_GET_KEYS = 100  # keys one BatchGetItem takes
MAX_KEY_NS = 10**20 - 1
MAX_ATTEMPTS = 10
CONDITION_FAILED = "ConditionalCheckFailedException"


def time_range(first: int, last: int) -> tuple[str, str] | None:
    """Sort keys for times [first, last] in ns, clamped to what a 20-digit key holds; None if empty.

    DynamoDB refuses (ValidationException) a BETWEEN whose low bound sorts after its high bound, and a
    negative number's key ("-000...") sorts before every other: such ranges never reach it.
    """
    first, last = max(first, 0), min(last, MAX_KEY_NS)
    if first > last:
        return None
    return f"{first:020d}", f"{last:020d}"


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * (2**attempt)) * (0.5 + random.random() / 2))


class Table:
    """One DynamoDB table through a boto3 client (passed in, built by the composition root)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.name = table_name

    def batch_write(self, requests: Sequence[dict[str, Any]]) -> None:
        """BatchWriteItem in pages of 25, retrying UnprocessedItems with backoff."""
        for i in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending: list[dict[str, Any]] = list(requests[i : i + BATCH_WRITE_LIMIT])
            attempt = 0
            while pending:
                response = self.client.batch_write_item(RequestItems={self.name: pending})
                pending = response.get("UnprocessedItems", {}).get(self.name, [])
                if pending:
                    attempt += 1
                    if attempt >= MAX_ATTEMPTS:
                        raise TransientError(f"DynamoDB left {len(pending)} item(s) unprocessed")
                    _backoff(attempt)

    def batch_get(self, keys: Sequence[dict[str, Any]], projection: str | None = None) -> list[dict[str, Any]]:
        """BatchGetItem (strongly consistent) of at most 100 keys, retrying UnprocessedKeys with backoff;
        ``projection``: the attributes to read (a ProjectionExpression of plain names), else all."""
        items: list[dict[str, Any]] = []
        pending: dict[str, Any] = {"Keys": list(keys), "ConsistentRead": True}
        if projection is not None:
            pending["ProjectionExpression"] = projection
        attempt = 0
        while pending.get("Keys"):
            response = self.client.batch_get_item(RequestItems={self.name: pending})
            items += response.get("Responses", {}).get(self.name, [])
            pending = response.get("UnprocessedKeys", {}).get(self.name, {})
            if pending.get("Keys"):
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    raise TransientError(f"DynamoDB left {len(pending['Keys'])} key(s) unprocessed")
                _backoff(attempt)
        return items

    def query(self, max_items: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, page after page; at most ``max_items`` when given (each page then asks for no
        more than are still wanted, so nothing past them is read)."""
        kwargs["TableName"] = self.name
        left = max_items
        while True:
            if left is not None:
                if left <= 0:
                    return
                kwargs["Limit"] = left
            try:
                response = self.client.query(**kwargs)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ValidationException":
                    raise
                # Only a query built from a request's parameters can be invalid: the request's fault.
                raise InvalidQuery(f"the query cannot be answered: {exc.response['Error'].get('Message', '')}") \
                    from None
            items = response.get("Items", [])
            if left is not None:
                left -= len(items)
            yield from items
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.name, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                                        ConsistentRead=True)
        return response.get("Item")

    def put(self, item: dict[str, Any]) -> None:
        self.client.put_item(TableName=self.name, Item=item)

    def put_unless(self, item: dict[str, Any], condition: str, **expression: Any) -> dict[str, Any] | None:
        """Put ``item`` only if ``condition`` holds of the stored one. None when written; else the item that
        is stored, returned by the same request that lost the race (ReturnValuesOnConditionCheckFailure)."""
        try:
            self.client.put_item(TableName=self.name, Item=item, ConditionExpression=condition,
                                 ReturnValuesOnConditionCheckFailure="ALL_OLD", **expression)
            return None
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return dict(exc.response.get("Item") or {})

    def update(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self.client.update_item(TableName=self.name, **kwargs))

    def update_or_stored(self, **kwargs: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem: None when it was applied; else the stored item (empty if none), returned
        by the same request that lost (ReturnValuesOnConditionCheckFailure)."""
        applied, item = self.update_or_old(**kwargs)
        return None if applied else item

    def update_or_old(self, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
        """A conditional UpdateItem: (True, the item as it was before) when it was applied; else (False, the
        stored item), either way from the one request (empty when there was no item)."""
        try:
            response = self.client.update_item(TableName=self.name, ReturnValues="ALL_OLD",
                                               ReturnValuesOnConditionCheckFailure="ALL_OLD", **kwargs)
            return True, dict(response.get("Attributes") or {})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False, dict(exc.response.get("Item") or {})

    def update_unless_failed(self, **kwargs: Any) -> bool:
        """An UpdateItem with a condition; False when the condition did not hold."""
        try:
            self.client.update_item(TableName=self.name, **kwargs)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False

    def transact_write_failures(self, items: list[dict[str, Any]]) -> list[bool]:
        """TransactWriteItems: [] when it was written, else (nothing was written) whether each item's condition
        failed; a conflict with another transaction on the same items is retried."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=items)
                return []
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in codes:
                    return [code == "ConditionalCheckFailed" for code in codes]
                if "TransactionConflict" not in codes or attempt + 1 >= MAX_ATTEMPTS:
                    raise TransientError(f"DynamoDB cancelled the transaction: {codes}") from None
                _backoff(attempt + 1)
        raise AssertionError("unreachable")

    def delete_if(self, key: dict[str, Any], condition: str, values: dict[str, Any]) -> bool:
        """Delete an item if ``condition`` holds; False when it did not."""
        try:
            self.client.delete_item(TableName=self.name, Key=key, ConditionExpression=condition,
                                    ExpressionAttributeValues=values)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False
