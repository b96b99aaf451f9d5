"""REST entry points: Chalice request -> typed query -> one use case -> JSON response (or, for GET /chart, the
chart page).

The one place where errors become HTTP statuses (``ERRORS``), where the ``next`` cursor is encoded, and
where bars become JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from chalice.app import Request, Response

from ..adapters.failures import is_unreachable
from ..domain.bars import Bar
from ..domain.errors import (
    FileRejected,
    IdempotencyConflict,
    InputError,
    InvalidQuery,
    InvalidTicks,
    NotFound,
    PayloadTooLarge,
    PipelineError,
    TransientError,
    UnsupportedFormat,
)
from ..domain.queries import (
    DEFAULT_BAR_LIMIT,
    MAX_BAR_LIMIT,
    BarQuery,
    parse_count,
    parse_interval,
    parse_query_symbol,
    parse_time_range,
)
from ..domain.text import ascii_digits
from ..domain.timefmt import format_ns
from ..observability import logger
from ..settings import get_settings
from ..usecases.ingest_body import IngestBody
from ..usecases.listing import ListIngestions
from ..usecases.queries import BarPage, IngestionStatus, ListSymbols, ReadBars
from .events import flushes_metrics
from .listing import list_ingestions

# Error class -> (HTTP status, error code), most specific first; anything else is a 500.
ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidTicks, 400, "InvalidTicks"),
    (InvalidQuery, 400, "InvalidQuery"),
    (UnsupportedFormat, 415, "UnsupportedMediaType"),
    (PayloadTooLarge, 413, "PayloadTooLarge"),
    (IdempotencyConflict, 409, "IdempotencyConflict"),
    (FileRejected, 400, "FileRejected"),
    (InputError, 400, "BadRequest"),
    (NotFound, 404, "NotFound"),
    (TransientError, 503, "ServiceUnavailable"),
)
EXECUTE_API_DOMAIN = re.compile(r"[a-z0-9]{1,32}\.execute-api\.[a-z0-9-]{1,32}\.amazonaws\.com(?:\.cn)?")
STAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def http_error(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The status and JSON body that answer an error."""
    for kind, status, code in ERRORS:
        if isinstance(exc, kind):
            assert isinstance(exc, PipelineError)
            body: dict[str, Any] = {"error": code, "message": exc.message}
            if isinstance(exc, InvalidTicks):
                body["error_count"] = exc.total_errors
                body["errors"] = [e.as_dict() for e in exc.errors]
            return status, body
    if is_unreachable(exc):
        return 503, {"error": "AwsUnreachable", "message": unreachable_message(exc)}
    # Under chalice local against real AWS, an error there (no such table, access denied) is most likely that.
    hint = LOCAL_HINT if get_settings().chalice_local_without_endpoint else ""
    return 500, {"error": "InternalError", "message": "internal error; see the logs" + hint}


LOCAL_HINT = (
    "; this is `chalice local` without AWS_ENDPOINT_URL, so it talks to real AWS. To run it against the local "
    "emulator, start `make emulator` in another terminal and run chalice local with the command it prints "
    "(AWS_ENDPOINT_URL=http://127.0.0.1:5000 and test credentials), or run everything with `make run`")


def unreachable_message(exc: Exception) -> str:
    """What failed, and, under `chalice local` with no emulator configured, what to run."""
    hint = LOCAL_HINT if get_settings().chalice_local_without_endpoint else ""
    return f"AWS cannot be reached: {exc}{hint}"


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def _request_id(request: Request) -> str | None:
    return (request.context or {}).get("requestId")


@flushes_metrics
def _answered(request: Request, call: Callable[[], Response]) -> Response:
    """``call``'s response, or the JSON error that answers what it raised."""
    try:
        return call()
    except Exception as exc:
        status, body = http_error(exc)
        if status == 500:
            logger.exception("unexpected error", extra={"request_id": _request_id(request)})
        elif status >= 500:
            logger.warning("request failed", extra={"error": str(exc), "request_id": _request_id(request)})
        return json_response(status, {**body, "request_id": _request_id(request)})


def _guarded(request: Request, call: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    return _answered(request, lambda: json_response(*call()))


# ------------------------------------------------------------------------------------------ cursor and JSON
def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(str(after).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The bar start a ``next`` cursor carries; InvalidQuery if it is not one this API made."""
    text = ""
    if 0 < len(cursor) <= 32 and cursor.isascii():
        try:
            text = base64.urlsafe_b64decode(cursor.encode() + b"==").decode("ascii")
        except (ValueError, binascii.Error):
            text = ""
    if not ascii_digits(text) or len(text) > 19:
        raise InvalidQuery('next is not a cursor this API returned; pass back the "next" of a response')
    return int(text)


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def bar_json(bar: Bar, revision: int) -> dict[str, Any]:
    return {
        "start": format_ns(bar.start_ns),
        "open": _decimal(bar.open), "high": _decimal(bar.high), "low": _decimal(bar.low),
        "close": _decimal(bar.close), "volume": _decimal(bar.volume), "vwap": _decimal(bar.vwap),
        "trades": bar.trades, "first_tick": format_ns(bar.first_ns), "last_tick": format_ns(bar.last_ns),
        "revision": revision,
    }


def bar_query(params: Mapping[str, str]) -> BarQuery:
    """GET /bars's query string as a query; InvalidQuery naming the parameter that is wrong."""
    symbol = parse_query_symbol("symbol", params.get("symbol"))
    interval = parse_interval(params.get("interval"))
    start, end = parse_time_range(params.get("start"), params.get("end"))
    limit = parse_count("limit", params.get("limit"), DEFAULT_BAR_LIMIT, MAX_BAR_LIMIT)
    cursor = params.get("next")
    return BarQuery(symbol, interval, start, end, limit, decode_cursor(cursor) if cursor else None)


def page_json(query: BarQuery, page: BarPage) -> dict[str, Any]:
    return {"symbol": query.symbol, "interval": query.interval,
            "bars": [bar_json(bar, rev) for bar, rev in page.bars],
            "next": None if page.next_after is None else encode_cursor(page.next_after)}


def read_bars(params: Mapping[str, str], read: ReadBars) -> dict[str, Any]:
    """GET /bars's answer to a query string."""
    query = bar_query(params)
    return page_json(query, read(query))


# ------------------------------------------------------------------------------------------ routes
def base_url(request: Request, configured: str) -> str:
    """Where the API is, for links in responses: the stage's configured base URL, else the execute-api
    domain that API Gateway itself puts in the request context; else nothing (links are then paths).

    Never the Host header: a client could make the response point anywhere.
    """
    if configured:
        return configured
    context = request.context or {}
    domain, stage, api_id = context.get("domainName"), context.get("stage"), context.get("apiId")
    if (isinstance(domain, str) and isinstance(api_id, str) and isinstance(stage, str) and api_id and stage
            and EXECUTE_API_DOMAIN.fullmatch(domain) and domain.startswith(api_id + ".")
            and STAGE_NAME.fullmatch(stage)):
        return f"https://{domain}/{stage}"
    return ""


def post_ingest(request: Request, ingest: IngestBody, configured_base_url: str) -> Response:
    def call() -> tuple[int, dict[str, Any]]:
        headers: Mapping[str, str] = request.headers or {}
        raw = request.raw_body or b""
        result = ingest(raw if isinstance(raw, bytes) else raw.encode(), headers.get("content-type"),
                        headers.get("idempotency-key"), single_valued(request.query_params))
        result["status_url"] = base_url(request, configured_base_url) + result.pop("status_path")
        return 202, result

    return _guarded(request, call)


def single_valued(params: Mapping[str, str] | None) -> dict[str, str]:
    """A query string as one value per name; InvalidQuery naming a parameter given more than once."""
    if not params:
        return {}
    getlist = getattr(params, "getlist", None)
    repeated = sorted(name for name in params if getlist is not None and len(getlist(name)) > 1)
    if repeated:
        raise InvalidQuery(f"query parameter(s) given more than once: {', '.join(repeated[:10])}")
    return dict(params)


def get_bars(request: Request, read: ReadBars) -> Response:
    return _guarded(request, lambda: (200, read_bars(request.query_params or {}, read)))


def get_ingestion(request: Request, status: IngestionStatus, ingestion_id: str) -> Response:
    return _guarded(request, lambda: (200, status(ingestion_id)))


def get_symbols(request: Request, symbols: ListSymbols) -> Response:
    return _guarded(request, lambda: (200, {"symbols": [{"symbol": s, "latest_bar": format_ns(ns)}
                                                        for s, ns in symbols()]}))


def chart_view(params: Mapping[str, str]) -> tuple[str | None, str]:
    """GET /chart's query string: the symbol to start on (None: the page picks the first there is) and the
    interval; InvalidQuery as GET /bars would answer."""
    raw = params.get("symbol")
    return (parse_query_symbol("symbol", raw) if raw else None), parse_interval(params.get("interval"))


def get_chart(request: Request) -> Response:
    from ..chart import LIVE, content_security_policy, render_live_page  # the page is built for its own route

    def call() -> Response:
        symbol, interval = chart_view(request.query_params or {})
        return Response(body=render_live_page(symbol, interval), status_code=200, headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": content_security_policy(LIVE) + "; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        })

    return _answered(request, call)


def get_ingestions(request: Request, listing: ListIngestions, configured_base_url: str) -> Response:
    return _guarded(request, lambda: (200, list_ingestions(single_valued(request.query_params), listing,
                                                           base_url(request, configured_base_url))))
