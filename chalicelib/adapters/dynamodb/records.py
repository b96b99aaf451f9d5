"""Ingestions, their chunks, object keys and Idempotency-Keys in the table (see table.py for the layout)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ...domain.errors import TransientError
from ...domain.ingestion import (
    ChunkFailure,
    ChunkRecord,
    ChunkResult,
    IdempotencyClaim,
    Ingestion,
    chunk_from_doc,
)
from .ingestion_index import IngestionIndex
from .layout import TTL_ATTRIBUTE
from .table import Table

CHUNK_ITEM_BYTES = 300_000  # a chunk result's JSON beyond this goes in pages (DynamoDB items hold 400 KB)
# Chunk results up to this size are written together (a BatchWriteItem request holds at most 16 MB).
BATCH_ITEM_BYTES = 50_000


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


def _winner(item: dict[str, Any]) -> dict[str, Any]:
    """The document of the item that won a conditional write (DynamoDB returns it with the refusal)."""
    if "doc" not in item:
        raise TransientError("a conditional write was refused but DynamoDB did not return the stored item")
    return dict(json.loads(item["doc"]["S"]))


def _doc_item(pk: str, sk: str, doc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "doc": {"S": json.dumps(doc)}, **extra}


class IngestionRecords(IngestionIndex):
    """IngestionStore and IdempotencyStore on the table; every ingestion stored is indexed (ingestion_index.py)."""

    def __init__(self, table: Table) -> None:
        IngestionIndex.__init__(self, table)

    # -- ingestions ------------------------------------------------------------------------
    def create_ingestion(self, ingestion: Ingestion) -> Ingestion | None:
        existing = self._table.put_unless(
            _doc_item(f"I#{ingestion.ingestion_id}", "META", ingestion.to_doc()), "attribute_not_exists(pk)")
        if existing is None:
            self.write_with_index(None, ingestion)
        return None if existing is None else Ingestion.from_doc(_winner(existing))

    def put_ingestion(self, ingestion: Ingestion) -> None:
        self.write_with_index(_doc_item(f"I#{ingestion.ingestion_id}", "META", ingestion.to_doc()), ingestion)

    def get_ingestion_meta(self, ingestion_id: str) -> Ingestion | None:
        item = self._table.get(f"I#{ingestion_id}", "META")
        return Ingestion.from_doc(json.loads(item["doc"]["S"])) if item else None

    def get_ingestion_metas(self, ingestion_ids: Iterable[str]) -> dict[str, Ingestion]:
        ids = sorted(set(ingestion_ids))
        out: dict[str, Ingestion] = {}
        for i in range(0, len(ids), 100):
            keys = [{"pk": {"S": f"I#{x}"}, "sk": {"S": "META"}} for x in ids[i : i + 100]]
            for item in self._table.batch_get(keys):
                ingestion = Ingestion.from_doc(json.loads(item["doc"]["S"]))
                out[ingestion.ingestion_id] = ingestion
        return out

    def get_ingestion(self, ingestion_id: str) -> tuple[Ingestion | None, list[ChunkRecord]]:
        meta = None
        docs: list[dict[str, Any]] = []
        for item in self._table.query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": f"I#{ingestion_id}"}},
            ConsistentRead=True,
        ):
            doc = json.loads(item["doc"]["S"])
            sort_key = item["sk"]["S"]
            if sort_key == "META":
                meta = Ingestion.from_doc(doc)
            elif "#W" in sort_key:  # a page of the windows of the chunk just before it in key order
                if docs and docs[-1].get("window_pages"):
                    docs[-1]["windows"].update(doc)
            else:
                docs.append(doc)
        return meta, [chunk_from_doc(doc) for doc in docs]

    def put_chunk_result(self, ingestion_id: str, result: ChunkResult) -> None:
        """Store a processed chunk's result. Its windows (one entry per symbol) can outgrow an item (400 KB)
        when a chunk holds thousands of symbols: they then go in pages of their own, written first."""
        self.put_chunk_results([(ingestion_id, result)])

    def put_chunk_results(self, results: Sequence[tuple[str, ChunkResult]]) -> None:
        small: dict[tuple[str, str], dict[str, Any]] = {}  # by key: a batch may not name one twice
        for ingestion_id, result in results:
            doc = result.to_doc()
            pk, sk = f"I#{ingestion_id}", f"C#{result.chunk:06d}"
            text = json.dumps(doc)
            if len(text) > CHUNK_ITEM_BYTES and doc["windows"]:
                pages = _pages(doc["windows"], CHUNK_ITEM_BYTES)
                for number, page in enumerate(pages):
                    self._table.put(_doc_item(pk, f"{sk}#W{number:05d}", page))
                self._table.put(_doc_item(pk, sk, {**doc, "windows": {}, "window_pages": len(pages)}))
                small.pop((pk, sk), None)
            elif len(text) > BATCH_ITEM_BYTES:
                self._table.put(_doc_item(pk, sk, doc))
                small.pop((pk, sk), None)
            else:
                small[(pk, sk)] = _doc_item(pk, sk, doc)
        if len(small) == 1:
            self._table.put(next(iter(small.values())))
        elif small:
            self._table.batch_write([{"PutRequest": {"Item": item}} for item in small.values()])

    def record_chunk_failure(self, ingestion_id: str, failure: ChunkFailure) -> bool:
        # A failure of a later, redundant delivery never replaces the result of a processed chunk.
        stored = self._table.put_unless(
            _doc_item(f"I#{ingestion_id}", f"C#{failure.chunk:06d}", failure.to_doc(), failed={"BOOL": True}),
            "attribute_not_exists(pk) OR attribute_exists(failed)")
        return stored is None

    def add_object_ingestion(self, bucket: str, key: str, ingestion_id: str) -> set[str]:
        response = self._table.update(
            Key={"pk": {"S": f"O#{bucket}/{key}"}, "sk": {"S": "META"}},
            UpdateExpression="ADD ids :id",
            ExpressionAttributeValues={":id": {"SS": [ingestion_id]}},
            ReturnValues="ALL_NEW",
        )
        return set(response["Attributes"]["ids"]["SS"])

    # -- idempotency -----------------------------------------------------------------------
    def claim_idempotency_key(self, key: str, claim: IdempotencyClaim, expires_at: int) -> IdempotencyClaim | None:
        existing = self._table.put_unless(
            _doc_item(f"K#{key}", "META", claim.to_doc(), **{TTL_ATTRIBUTE: {"N": str(expires_at)}}),
            "attribute_not_exists(pk) OR #ttl < :now",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
        )
        return None if existing is None else IdempotencyClaim.from_doc(_winner(existing))

    def complete_idempotency_key(self, key: str, claim: IdempotencyClaim, expires_at: int) -> None:
        self._table.put(_doc_item(f"K#{key}", "META", claim.to_doc(), **{TTL_ATTRIBUTE: {"N": str(expires_at)}}))
