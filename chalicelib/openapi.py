"""The API's OpenAPI 3.1 document, generated from the models the routes answer with (rest_models.py) and the
parameters their parsers accept (the reading options, GET /ingestions's parameters...). Served at
``GET /openapi.json``; ``make openapi`` writes it to docs/openapi.json.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import rest_models
from .domain.media import MEDIA_TYPES
from .domain.options import OPTION_NAMES, QUERY

ERROR_CODES = {400: "a bad parameter, body or record (named)", 403: "not signed, or no such route (API Gateway)",
               404: "no such ingestion or route", 405: "the route does not take this method",
               409: "an Idempotency-Key reused with another body", 413: "the body is over the limit",
               415: "a content type the route does not take", 429: "throttled (API Gateway)",
               500: "a bug; see the logs", 503: "a dependency failed; retry"}

INGEST_OPTIONS = {
    "columns": "the columns of a CSV without a header, in order: tick fields or aliases, `skip` to ignore one",
    "column_map": "renames of header columns or JSON keys, `name=field` pairs separated by commas",
    "timestamp_format": "a strftime format for text times that are not ISO 8601, e.g. `%m/%d/%Y - %H:%M:%S`",
    "timezone": "the IANA time zone of times that carry none (default UTC), e.g. `America/Chicago`",
    "symbol": "the symbol of every record that has none",
}
BAR_PARAMETERS = {
    "symbol": "one symbol (or `symbols`)",
    "symbols": "up to 100 symbols, separated by commas (or `symbol`)",
    "interval": "`<n>m`, `<n>h` (dividing a day), `<n>d` or `1w`; default `1m`",
    "start": "bars starting at or after this time (ISO 8601 or epoch)",
    "end": "bars starting before this time",
    "limit": "bars per page (1-10000, default 1000)",
    "sort": "`asc` (default) or `desc`",
    "tz": "an IANA time zone for `d` and `w` intervals: days start at local midnight",
    "next": "the `next` of the previous page",
}
LISTING_PARAMETERS = {
    "source": "`api` or `s3`",
    "key": "an object key: that key's ingestions (every version)",
    "bucket": "the stage's bucket (the default)",
    "since": "ingestions received at or after this time (ISO 8601 or epoch)",
    "status": "only ingestions with this status",
    "limit": "ingestions per page (1-1000, default 100)",
    "next": "the `next` of the previous page",
}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query(parameters: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
            for name, text in parameters.items()]


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": ERROR_CODES[code],
                        "content": {"application/json": {"schema": _ref(rest_models.Error)}}}
            for code in (*codes, 403, 429, 500, 503)}


def _ok(model: type, description: str, status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {"application/json": {"schema": _ref(model)}}}}


def document(server_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``server_url`` is the API's base URL when known."""
    _, components = msgspec.json.schema_components(rest_models.MODELS, ref_template="#/components/schemas/{name}")
    assert set(INGEST_OPTIONS) == {names[QUERY] for names in OPTION_NAMES.values()}
    body_schemas = {media: ({"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
                            if fmt == "json" else {"type": "string"}) for media, fmt in MEDIA_TYPES.items()}
    paths: dict[str, Any] = {
        "/ingest": {"post": {
            "summary": "Validate a body of ticks whole, then queue them",
            "parameters": [*_query(INGEST_OPTIONS), {
                "name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                "description": "1-128 printable ASCII characters: a retry with the same key and body is answered "
                               "from the first attempt"}],
            "requestBody": {"required": True, "content": {m: {"schema": s} for m, s in body_schemas.items()}},
            "responses": {**_ok(rest_models.IngestAccepted, "queued", 202), **_errors(400, 409, 413, 415)},
        }},
        "/bars": {"get": {
            "summary": "OHLCV bars of one or more symbols",
            "parameters": _query(BAR_PARAMETERS),
            "responses": {"200": {"description": "a page of bars", "content": {"application/json": {"schema": {
                "oneOf": [_ref(rest_models.BarPage), _ref(rest_models.SymbolsBarPage)]}}}}, **_errors(400)},
        }},
        "/ingestions": {"get": {
            "summary": "Ingestions of an object key, or received since a time, newest first",
            "parameters": _query(LISTING_PARAMETERS),
            "responses": {**_ok(rest_models.IngestionList, "a page of ingestions"), **_errors(400)},
        }},
        "/ingestions/{ingestion_id}": {"get": {
            "summary": "What became of an ingestion",
            "parameters": [{"name": "ingestion_id", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "as POST /ingest answered it, or `s3-` and 32 hex digits for a file"}],
            "responses": {**_ok(rest_models.Ingestion, "the ingestion"), **_errors(404)},
        }},
        "/symbols": {"get": {
            "summary": "Every symbol with the start of its latest 1m bar",
            "responses": {**_ok(rest_models.SymbolList, "the symbols"), **_errors()},
        }},
        "/chart": {"get": {
            "summary": "A candlestick chart page",
            "parameters": _query({"symbol": "the symbol to show first", "interval": "as for /bars"}),
            "responses": {"200": {"description": "an HTML page", "content": {"text/html": {"schema": {
                "type": "string"}}}}, **_errors(400)},
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {
                "type": "object"}}}}, **_errors()},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "market-data", "version": "1",
                 "description": "Trade ticks in, exact OHLCV bars out. Every route needs a SigV4 signature "
                                "(service execute-api). Decimals are strings."},
        **({"servers": [{"url": server_url}]} if server_url else {}),
        "security": [{"sigv4": []}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"sigv4": {
            "type": "apiKey", "name": "Authorization", "in": "header",
            "description": "AWS Signature Version 4 (IAM)"}}},
    }
