"""The ingestions' time index in the table, and the reads of an object key's ingestions (see table.py for the
layout).

    IX#<source>#<YYYY-MM-DD>  <received_ns:020>#<ingestion id>   one entry per ingestion, by UTC day of receipt
    IXD#<source>              <YYYY-MM-DD>                       a day that holds entries of the source

An entry's key is made of what never changes for an ingestion (its id and receipt time), so storing the
ingestion again, or retrying a write, rewrites the same item: an ingestion is indexed once. Entries and days
are written with the ingestion record, in the same BatchWriteItem; the day list lets a walk skip empty days.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any

from ...domain.ingestion import Ingestion, Source
from ...domain.listing import IndexPage, Position, day_of, walk_index
from .table import Table


def _entry_sk(received_ns: int, ingestion_id: str) -> str:
    return f"{received_ns:020d}#{ingestion_id}"


class IngestionIndex:
    """The time index and the key -> ingestions index, on the table."""

    def __init__(self, table: Table) -> None:
        self._table = table
        # The days this store wrote to the day list: a day is listed once it holds an entry and nothing deletes
        # it, so each store (one per container) writes a day at most once.
        self._listed_days: set[tuple[str, str]] = set()

    # -- writes, with the ingestion record ---------------------------------------------------
    def index_items(self, ingestion: Ingestion) -> list[dict[str, Any]]:
        """The index items to write with the ingestion's record."""
        source, day = ingestion.source.value, day_of(ingestion.received_ns)
        items = [{"pk": {"S": f"IX#{source}#{day}"},
                  "sk": {"S": _entry_sk(ingestion.received_ns, ingestion.ingestion_id)}}]
        if (source, day) not in self._listed_days:
            items.append({"pk": {"S": f"IXD#{source}"}, "sk": {"S": day}})
        return items

    def write_with_index(self, record: dict[str, Any] | None, ingestion: Ingestion) -> None:
        """Write the record (if any) and the ingestion's index items in one BatchWriteItem."""
        items = ([record] if record is not None else []) + self.index_items(ingestion)
        self._table.batch_write([{"PutRequest": {"Item": item}} for item in items])
        self._listed_days.add((ingestion.source.value, day_of(ingestion.received_ns)))

    # -- reads -----------------------------------------------------------------------------
    def object_ingestion_ids(self, bucket: str, key: str) -> set[str]:
        for item in self._table.query(
            KeyConditionExpression="pk = :pk AND sk = :sk",
            ExpressionAttributeValues={":pk": {"S": f"O#{bucket}/{key}"}, ":sk": {"S": "META"}},
            ConsistentRead=True,
        ):
            return set(item.get("ids", {}).get("SS", []))
        return set()

    def list_ingestions(self, sources: Sequence[Source], since_ns: int, before: Position | None,
                        limit: int) -> IndexPage:
        return walk_index(self._days, self._refs, sources, since_ns, before, limit)

    def _days(self, source: Source, first_day: str, last_day: str, count: int) -> list[str]:
        items = self._table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": f"IXD#{source.value}"}, ":lo": {"S": first_day},
                                       ":hi": {"S": last_day}},
            ScanIndexForward=False, Limit=count, ConsistentRead=True,
        )
        return [item["sk"]["S"] for item in islice(items, count)]

    def _refs(self, source: Source, day: str, since_ns: int, before: Position | None, count: int) -> list[Position]:
        low = f"{since_ns:020d}"  # sorts before every entry received at since_ns
        if before is None:
            high = "~"  # after every entry
        else:
            # Inclusive: the entry at ``before`` itself (if any) is read and left out. An empty id makes the
            # bound sort before every entry received at that nanosecond.
            high = _entry_sk(*before) if before[1] else f"{before[0]:020d}"
        if low > high:
            return []
        items = self._table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": f"IX#{source.value}#{day}"}, ":lo": {"S": low},
                                       ":hi": {"S": high}},
            ScanIndexForward=False, Limit=count + 1, ConsistentRead=True,
        )
        out: list[Position] = []
        for item in islice(items, count + 1):
            received, ingestion_id = item["sk"]["S"].split("#", 1)
            if (int(received), ingestion_id) != before:
                out.append((int(received), ingestion_id))
        return out[:count]
