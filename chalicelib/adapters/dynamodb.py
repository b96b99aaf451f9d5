"""DynamoDB single-table store for ingestions, partial aggregates, bars, dirty windows and symbols.

Key layout (pk / sk):
    I#<ingestion id>  META                       ingestion metadata (source, status, counts)
    I#<ingestion id>  C#<chunk:06>               one processed chunk's counts and first rejects
    K#<idempotency key> META                     first response to an Idempotency-Key (TTL)
    P#<symbol>        <minute:020>#<source>      1-minute partial aggregate of one source chunk
    B#<symbol>#<iv>   <start:020>                bar of interval iv
    D                 <symbol>#<hour:020>        dirty 1-minute windows of an hour, with a token
    S                 <symbol>                   symbol and its latest bar time

Partials are keyed by their source chunk, so a redelivered message overwrites instead of adding.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ..domain.bars import Bar
from ..domain.errors import InvalidQuery, TransientError

BATCH_WRITE_LIMIT = 25
MAX_KEY_NS = 10**20 - 1
CHUNK_ITEM_BYTES = 300_000  # a chunk result's JSON beyond this goes in pages (DynamoDB items hold 400 KB)
HOUR_NS = 3_600 * 1_000_000_000
MAX_ATTEMPTS = 10


def _bar_attrs(bar: Bar) -> dict[str, Any]:
    return {
        "o": {"S": str(bar.open)}, "h": {"S": str(bar.high)}, "l": {"S": str(bar.low)},
        "c": {"S": str(bar.close)}, "v": {"S": str(bar.volume)}, "n": {"S": str(bar.notional)},
        "t": {"N": str(bar.trades)}, "f": {"N": str(bar.first_ns)}, "z": {"N": str(bar.last_ns)},
        "ok": {"S": bar.open_key}, "ck": {"S": bar.close_key},
    }


def _bar_from_item(item: dict[str, Any], symbol: str, interval: str, start_ns: int) -> Bar:
    return Bar(
        symbol=symbol, interval=interval, start_ns=start_ns,
        open=Decimal(item["o"]["S"]), high=Decimal(item["h"]["S"]), low=Decimal(item["l"]["S"]),
        close=Decimal(item["c"]["S"]), volume=Decimal(item["v"]["S"]), notional=Decimal(item["n"]["S"]),
        trades=int(item["t"]["N"]), first_ns=int(item["f"]["N"]), last_ns=int(item["z"]["N"]),
        open_key=item["ok"]["S"], close_key=item["ck"]["S"],
    )


def _pages(windows: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """``windows`` cut into dicts whose JSON stays within ``limit`` bytes."""
    pages: list[dict[str, Any]] = [{}]
    size = 2
    for symbol, span in windows.items():
        entry = len(json.dumps({symbol: span})) + 2
        if pages[-1] and size + entry > limit:
            pages.append({})
            size = 2
        pages[-1][symbol] = span
        size += entry
    return pages


def _time_range(first: int, last: int) -> tuple[str, str] | None:
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


class DynamoStateStore:
    """The pipeline's state in one DynamoDB table (see the module docstring for the layout)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- generic helpers -------------------------------------------------------------------
    def _batch_write(self, requests: Sequence[dict[str, Any]]) -> None:
        """BatchWriteItem in pages of 25, retrying UnprocessedItems with backoff."""
        for i in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending: list[dict[str, Any]] = list(requests[i : i + BATCH_WRITE_LIMIT])
            attempt = 0
            while pending:
                response = self._client.batch_write_item(RequestItems={self._table: pending})
                pending = response.get("UnprocessedItems", {}).get(self._table, [])
                if pending:
                    attempt += 1
                    if attempt >= MAX_ATTEMPTS:
                        raise TransientError(f"DynamoDB left {len(pending)} item(s) unprocessed")
                    _backoff(attempt)

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs["TableName"] = self._table
        while True:
            try:
                response = self._client.query(**kwargs)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ValidationException":
                    raise
                # Only a query built from a request's parameters can be invalid: the request's fault.
                raise InvalidQuery(f"the query cannot be answered: {exc.response['Error'].get('Message', '')}") \
                    from None
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return response.get("Item")

    # -- ingestions ------------------------------------------------------------------------
    def create_ingestion(self, ingestion_id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Store new metadata; if the ingestion exists already, return its stored document instead."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": f"I#{ingestion_id}"}, "sk": {"S": "META"}, "doc": {"S": json.dumps(doc)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
            return None
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        existing = self._get(f"I#{ingestion_id}", "META")
        return json.loads(existing["doc"]["S"]) if existing else {}

    def put_ingestion(self, ingestion_id: str, doc: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={"pk": {"S": f"I#{ingestion_id}"}, "sk": {"S": "META"}, "doc": {"S": json.dumps(doc)}},
        )

    def put_chunk_result(self, ingestion_id: str, chunk: int, doc: dict[str, Any]) -> None:
        """Store a processed chunk's result. Its windows (one entry per symbol) can outgrow an item (400 KB)
        when a chunk holds thousands of symbols: they then go in pages of their own, written first."""
        text = json.dumps(doc)
        if len(text) > CHUNK_ITEM_BYTES and doc.get("windows"):
            pages = _pages(doc["windows"], CHUNK_ITEM_BYTES)
            for number, page in enumerate(pages):
                self._client.put_item(TableName=self._table, Item={
                    "pk": {"S": f"I#{ingestion_id}"}, "sk": {"S": f"C#{chunk:06d}#W{number:05d}"},
                    "doc": {"S": json.dumps(page)}})
            text = json.dumps({**doc, "windows": {}, "window_pages": len(pages)})
        self._client.put_item(
            TableName=self._table,
            Item={"pk": {"S": f"I#{ingestion_id}"}, "sk": {"S": f"C#{chunk:06d}"}, "doc": {"S": text}},
        )

    def record_chunk_failure(self, ingestion_id: str, chunk: int, doc: dict[str, Any]) -> bool:
        """Store a chunk's failure unless the chunk was processed (its result is never replaced by a failure
        of a later, redundant delivery); returns whether it was stored."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": f"I#{ingestion_id}"}, "sk": {"S": f"C#{chunk:06d}"},
                      "doc": {"S": json.dumps(doc)}, "failed": {"BOOL": True}},
                ConditionExpression="attribute_not_exists(pk) OR attribute_exists(failed)",
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False

    def get_ingestion_meta(self, ingestion_id: str) -> dict[str, Any] | None:
        item = self._get(f"I#{ingestion_id}", "META")
        return json.loads(item["doc"]["S"]) if item else None

    def get_ingestion(self, ingestion_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The metadata document (None if unknown) and the chunk results, in chunk order."""
        meta = None
        chunks: list[dict[str, Any]] = []
        for item in self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"I#{ingestion_id}"}},
            ConsistentRead=True,
        ):
            doc = json.loads(item["doc"]["S"])
            sort_key = item["sk"]["S"]
            if sort_key == "META":
                meta = doc
            elif "#W" in sort_key:  # a page of the windows of the chunk just before it in key order
                if chunks and chunks[-1].get("window_pages"):
                    chunks[-1]["windows"].update(doc)
            else:
                chunks.append(doc)
        for chunk in chunks:
            chunk.pop("window_pages", None)
        return meta, chunks

    def add_object_ingestion(self, bucket: str, key: str, ingestion_id: str) -> set[str]:
        """Record an ingestion of an object key; return every ingestion recorded for that key."""
        response = self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"O#{bucket}/{key}"}, "sk": {"S": "META"}},
            UpdateExpression="ADD ids :id",
            ExpressionAttributeValues={":id": {"SS": [ingestion_id]}},
            ReturnValues="ALL_NEW",
        )
        return set(response["Attributes"]["ids"]["SS"])

    # -- idempotency -----------------------------------------------------------------------
    def claim_idempotency_key(self, key: str, doc: dict[str, Any], expires_at: int) -> dict[str, Any] | None:
        """Record ``doc`` under ``key`` unless a live record exists; return the existing one if so."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": f"K#{key}"}, "sk": {"S": "META"}, "doc": {"S": json.dumps(doc)},
                      "ttl": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk) OR #ttl < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
            )
            return None
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        existing = self._get(f"K#{key}", "META")
        return json.loads(existing["doc"]["S"]) if existing else None

    def complete_idempotency_key(self, key: str, doc: dict[str, Any], expires_at: int) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={"pk": {"S": f"K#{key}"}, "sk": {"S": "META"}, "doc": {"S": json.dumps(doc)},
                  "ttl": {"N": str(expires_at)}},
        )

    # -- partial aggregates ----------------------------------------------------------------
    def put_partials(self, source: str, partials: Iterable[Bar]) -> int:
        requests = [
            {"PutRequest": {"Item": {
                "pk": {"S": f"P#{bar.symbol}"}, "sk": {"S": f"{bar.start_ns:020d}#{source}"}, **_bar_attrs(bar)
            }}}
            for bar in partials
        ]
        self._batch_write(requests)
        return len(requests)

    def query_partials(self, symbol: str, first_minute: int, last_minute: int) -> list[tuple[str, Bar]]:
        """Partials of ``symbol`` in the minutes [first, last], each with its source chunk id."""
        bars: list[tuple[str, Bar]] = []
        keys = _time_range(first_minute, last_minute)
        if keys is None:
            return bars
        for item in self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": f"P#{symbol}"}, ":lo": {"S": keys[0]}, ":hi": {"S": keys[1] + "~"},
            },
            ConsistentRead=True,
        ):
            sort_key = item["sk"]["S"]
            bars.append((sort_key[21:], _bar_from_item(item, symbol, "1m", int(sort_key[:20]))))
        return bars

    def list_partial_minutes(self, symbol: str, first_minute: int, last_minute: int) -> list[int]:
        """The minutes in [first, last] that hold at least one partial of ``symbol`` (keys only are read)."""
        minutes: set[int] = set()
        keys = _time_range(first_minute, last_minute)
        if keys is None:
            return []
        for item in self._query(
            KeyConditionExpression="pk = :pk AND #sk BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#sk": "sk"},
            ExpressionAttributeValues={
                ":pk": {"S": f"P#{symbol}"}, ":lo": {"S": keys[0]}, ":hi": {"S": keys[1] + "~"},
            },
            ProjectionExpression="#sk",
            ConsistentRead=True,
        ):
            minutes.add(int(item["sk"]["S"][:20]))
        return sorted(minutes)

    # -- dirty windows ---------------------------------------------------------------------
    # One marker item per (symbol, hour) holds the set of dirty minutes and a token. Marking adds
    # minutes and replaces the token; clearing deletes the item only if the token is still the one
    # that was read, so a minute marked during an aggregation is never lost (the hour is redone).
    def mark_dirty(self, windows: Iterable[tuple[str, int]], token: str) -> None:
        by_hour: dict[tuple[str, int], set[int]] = {}
        for symbol, minute in windows:
            by_hour.setdefault((symbol, minute - minute % HOUR_NS), set()).add(minute)
        for (symbol, hour), minutes in sorted(by_hour.items()):
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": "D"}, "sk": {"S": f"{symbol}#{hour:020d}"}},
                UpdateExpression="SET tok = :t ADD m :m",
                ExpressionAttributeValues={":t": {"S": token}, ":m": {"NS": [str(m) for m in sorted(minutes)]}},
            )

    def list_dirty(self, symbols: Iterable[str] | None, limit: int) -> list[tuple[str, int, str]]:
        """Dirty minutes as (symbol, minute, token), whole hours at a time, stopping past ``limit``."""
        out: list[tuple[str, int, str]] = []
        if symbols is None:
            queries = [{"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "D"}}}]
        else:
            queries = [
                {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
                 "ExpressionAttributeValues": {":pk": {"S": "D"}, ":p": {"S": f"{s}#"}}}
                for s in sorted(set(symbols))
            ]
        for query in queries:
            for item in self._query(ConsistentRead=True, **query):
                symbol = item["sk"]["S"].rpartition("#")[0]
                token = item["tok"]["S"]
                out.extend((symbol, int(m), token) for m in sorted(item["m"]["NS"], key=int))
                if len(out) >= limit:
                    return out
        return out

    def clear_dirty(self, entries: Iterable[tuple[str, int, str]]) -> int:
        """Delete the markers read with these tokens unless re-marked since; returns the minutes cleared."""
        hours: dict[tuple[str, int, str], int] = {}
        for symbol, minute, token in entries:
            key = (symbol, minute - minute % HOUR_NS, token)
            hours[key] = hours.get(key, 0) + 1
        cleared = 0
        for (symbol, hour, token), minutes in sorted(hours.items()):
            try:
                self._client.delete_item(
                    TableName=self._table,
                    Key={"pk": {"S": "D"}, "sk": {"S": f"{symbol}#{hour:020d}"}},
                    ConditionExpression="tok = :t",
                    ExpressionAttributeValues={":t": {"S": token}},
                )
                cleared += minutes
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return cleared

    # -- bars ------------------------------------------------------------------------------
    def query_bars(
        self, symbol: str, interval: str, first_start: int, last_start: int,
        limit: int | None = None, after: int | None = None,
    ) -> tuple[list[tuple[Bar, int]], int | None]:
        """Bars (with revision) with start in [first_start, last_start], oldest first, and the next cursor."""
        lo = max(first_start, after + 1) if after is not None else first_start
        out: list[tuple[Bar, int]] = []
        keys = _time_range(lo, last_start)
        if keys is None:
            return out, None
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"B#{symbol}#{interval}"}, ":lo": {"S": keys[0]}, ":hi": {"S": keys[1]},
            },
        }
        for item in self._query(**kwargs):
            start = int(item["sk"]["S"])
            out.append((_bar_from_item(item, symbol, interval, start), int(item.get("rev", {"N": "1"})["N"])))
            if limit is not None and len(out) > limit:
                return out[:limit], out[limit - 1][0].start_ns
        return out, None

    def put_bars(self, bars: Iterable[tuple[Bar, int]], updated_ns: int) -> int:
        requests = [
            {"PutRequest": {"Item": {
                "pk": {"S": f"B#{bar.symbol}#{bar.interval}"}, "sk": {"S": f"{bar.start_ns:020d}"},
                "rev": {"N": str(rev)}, "upd": {"N": str(updated_ns)}, **_bar_attrs(bar),
            }}}
            for bar, rev in bars
        ]
        self._batch_write(requests)
        return len(requests)

    def delete_bars(self, keys: Iterable[tuple[str, str, int]]) -> None:
        self._batch_write([
            {"DeleteRequest": {"Key": {"pk": {"S": f"B#{s}#{iv}"}, "sk": {"S": f"{start:020d}"}}}}
            for s, iv, start in keys
        ])

    # -- symbols ---------------------------------------------------------------------------
    def update_symbol(self, symbol: str, latest_bar_ns: int) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": "S"}, "sk": {"S": symbol}},
                UpdateExpression="SET latest = :t",
                ConditionExpression="attribute_not_exists(latest) OR latest < :t",
                ExpressionAttributeValues={":t": {"N": str(latest_bar_ns)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def list_symbols(self) -> list[tuple[str, int]]:
        return [
            (item["sk"]["S"], int(item["latest"]["N"]))
            for item in self._query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "S"}})
        ]
