"""The REST API's response bodies as msgspec Structs: what the routes answer, and what the OpenAPI document
(openapi.py) describes. The entry points build their answers with these; tests check real answers against
the schemas generated from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Decimal = Annotated[str, msgspec.Meta(
    pattern=r"^[0-9]+(\.[0-9]*[1-9])?$",
    description="an exact decimal as text: plain notation, no exponent, no trailing zeros after the point")]
Timestamp = Annotated[str, msgspec.Meta(description="ISO 8601 UTC, e.g. 2024-07-01T23:58:01.218218853Z")]
Status = Literal["scanning", "queued", "processing", "processed", "rejected", "superseded", "failed", "stalled"]


class _Body(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    pass


class RecordError(_Body, kw_only=True):
    """Where a record was wrong and why: ``location`` is ``record N`` or ``line N`` (from 1), ``body``..."""

    location: str
    field: str
    reason: str


class Error(_Body, kw_only=True):
    """Every 4xx and 5xx."""

    error: str
    message: str
    request_id: str | None
    # InvalidTicks (400) only: the first errors, and how many records were rejected.
    error_count: int | msgspec.UnsetType = msgspec.UNSET
    errors: list[RecordError] | msgspec.UnsetType = msgspec.UNSET


class IngestAccepted(_Body, kw_only=True):
    """POST /ingest's 202."""

    ingestion_id: str
    accepted: int
    status: Literal["queued"]
    status_url: str
    replayed: bool = False  # answered from an earlier request with the same Idempotency-Key
    ignored_fields: list[str] | msgspec.UnsetType = msgspec.UNSET  # keys and columns that fed no field


class Bar(_Body, kw_only=True):
    start: Timestamp
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None
    trades: int
    first_tick: Timestamp
    last_tick: Timestamp
    revision: int  # a stored bar's; a derived bar's is the sum of its parts' (it rises when any part changes)
    date: str | msgspec.UnsetType = msgspec.UNSET  # with tz: the local date the bar begins on (YYYY-MM-DD)


class BarPage(_Body, kw_only=True):
    """GET /bars with ``symbol=``."""

    symbol: str
    interval: str
    tz: str | msgspec.UnsetType = msgspec.UNSET
    bars: list[Bar]
    next: str | None
    next_url: str | None


class SymbolsBarPage(_Body, kw_only=True):
    """GET /bars with ``symbols=``: the bars grouped by symbol."""

    symbols: list[str]
    interval: str
    tz: str | msgspec.UnsetType = msgspec.UNSET
    bars: dict[str, list[Bar]]
    next: str | None
    next_url: str | None


class Chunks(_Body, kw_only=True):
    total: int | None
    processed: int
    failed: int


class StoredObject(_Body, kw_only=True):
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int


class _IngestionHead(_Body, kw_only=True):
    """What GET /ingestions/{id} and each item of GET /ingestions both say."""

    ingestion_id: str
    source: Literal["api", "s3"]
    status: Status
    received_at: Timestamp
    accepted: int
    rejected: int
    object: StoredObject | msgspec.UnsetType = msgspec.UNSET


class Ingestion(_IngestionHead, kw_only=True):
    """GET /ingestions/{id}."""

    chunks: Chunks
    errors: list[RecordError]
    bars: Literal["ready", "pending", "none"] | msgspec.UnsetType = msgspec.UNSET
    completed_at: Timestamp | msgspec.UnsetType = msgspec.UNSET


class IngestionSummary(_IngestionHead, kw_only=True):
    """One ingestion of GET /ingestions: GET /ingestions/{id}'s status without the chunks and errors."""

    format: Literal["json", "ndjson", "csv"] | None
    status_url: str


class IngestionList(_Body, kw_only=True):
    """GET /ingestions."""

    ingestions: list[IngestionSummary]
    next: str | None
    next_url: str | None


class SymbolEntry(_Body, kw_only=True):
    symbol: str
    latest_bar: Timestamp


class SymbolList(_Body, kw_only=True):
    """GET /symbols."""

    symbols: list[SymbolEntry]


MODELS = (Error, IngestAccepted, BarPage, SymbolsBarPage, Ingestion, IngestionList, SymbolList)
