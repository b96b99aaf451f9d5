"""GET /ingestions at the edge: the query string -> an IngestionQuery (InvalidQuery naming the parameter, or
the unknown ones), the listing -> JSON with each ingestion's ``status_url``, and the page's ``next`` cursor
and ``next_url``.

A cursor is the position the next page starts before, (received_ns, ingestion id), so pages never skip or
repeat an ingestion however many arrive meanwhile (they arrive before the first page's position).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from ..domain.errors import InvalidQuery
from ..domain.ingestion import INGESTION_ID_RE
from ..domain.listing import (
    DEFAULT_LISTING_LIMIT,
    MAX_LISTING_LIMIT,
    IngestionQuery,
    Position,
    parse_object_key,
    parse_source,
    parse_status,
)
from ..domain.queries import parse_count, parse_query_time
from ..domain.text import ascii_digits, show
from ..domain.timefmt import format_ns
from ..usecases.listing import IngestionListing, ListIngestions

PARAMETERS = ("source", "key", "bucket", "since", "status", "limit", "next")
MAX_CURSOR_CHARS = 128
NOT_A_CURSOR = 'next is not a cursor this API returned; pass back the "next" of a response'


def encode_position(position: Position) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}.{position[1]}".encode()).decode().rstrip("=")


def decode_position(cursor: str) -> Position:
    """The position a ``next`` cursor carries; InvalidQuery if it is not one this API made."""
    text = ""
    if 0 < len(cursor) <= MAX_CURSOR_CHARS and cursor.isascii():
        try:
            text = base64.urlsafe_b64decode(cursor.encode() + b"==").decode("ascii")
        except (ValueError, binascii.Error):
            text = ""
    received, dot, ingestion_id = text.partition(".")
    if (not dot or not ascii_digits(received) or len(received) > 19
            or (ingestion_id and not INGESTION_ID_RE.fullmatch(ingestion_id))):
        raise InvalidQuery(NOT_A_CURSOR)
    return int(received), ingestion_id


def listing_query(params: Mapping[str, str]) -> IngestionQuery:
    """GET /ingestions's query string as a query; InvalidQuery naming what is wrong."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise InvalidQuery(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(show(name) for name in unknown[:5])}; the parameters are "
                           f"{', '.join(PARAMETERS)}")
    cursor = params.get("next")
    return IngestionQuery(
        source=parse_source(params.get("source")),
        key=parse_object_key("key", params.get("key")),
        bucket=params.get("bucket"),
        since_ns=parse_query_time("since", params.get("since")),
        status=parse_status(params.get("status")),
        limit=parse_count("limit", params.get("limit"), DEFAULT_LISTING_LIMIT, MAX_LISTING_LIMIT),
        before=decode_position(cursor) if cursor else None,
    )


def _next_parameters(query: IngestionQuery, cursor: str) -> list[tuple[str, str]]:
    given = {
        "source": query.source.value if query.source is not None else None,
        "key": query.key,
        "bucket": query.bucket,
        "since": format_ns(query.since_ns) if query.since_ns is not None else None,
        "status": query.status.value if query.status is not None else None,
        "limit": str(query.limit),
        "next": cursor,
    }
    return [(name, value) for name, value in given.items() if value is not None]


def listing_json(query: IngestionQuery, listing: IngestionListing, base: str) -> dict[str, Any]:
    items = [{**item, "status_url": f"{base}/ingestions/{item['ingestion_id']}"} for item in listing.items]
    cursor = None if listing.more is None else encode_position(listing.more)
    next_url = None if cursor is None else (
        f"{base}/ingestions?" + urlencode(_next_parameters(query, cursor), quote_via=quote))
    return {"ingestions": items, "next": cursor, "next_url": next_url}


def list_ingestions(params: Mapping[str, str], listing: ListIngestions, base: str) -> dict[str, Any]:
    """GET /ingestions's answer to a query string; links start with ``base`` (see api.base_url)."""
    query = listing_query(params)
    return listing_json(query, listing(query), base)
