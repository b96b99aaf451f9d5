"""DynamoDB adapter: the pipeline's state in one table. ``DynamoStateStore`` implements every store port of
chalicelib/ports.py; records.py holds ingestions and keys, market.py partials, dirty windows, bars and symbols,
table.py the requests and the key layout."""

from __future__ import annotations

from typing import Any

from .market import MarketRecords
from .records import IngestionRecords
from .table import Table


class DynamoStateStore(IngestionRecords, MarketRecords):
    """Every store port on one table (a client and a table name, passed in)."""

    def __init__(self, client: Any, table_name: str) -> None:
        table = Table(client, table_name)
        IngestionRecords.__init__(self, table)
        MarketRecords.__init__(self, table)
