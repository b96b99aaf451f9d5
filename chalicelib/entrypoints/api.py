"""REST entry points: Chalice request -> typed query -> one use case -> JSON response (or, for GET /chart, the
chart page).

The one place where errors become HTTP statuses (``ERRORS``) and where bars become JSON (the query string
and the ``next`` cursor: bar_params.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
from chalice.app import Request, Response

from .. import rest_models
from ..adapters.failures import is_unreachable
from ..domain.bars import Bar
from ..domain.decimals import decimal_text
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
from ..domain.queries import parse_interval, parse_query_symbol
from ..domain.timefmt import format_ns
from ..observability import logger
from ..settings import get_settings
from .events import flushes_metrics

if TYPE_CHECKING:
    from ..domain.bar_requests import BarsPage, BarsQuery
    from ..usecases.ingest_body import IngestBody
    from ..usecases.listing import ListIngestions
    from ..usecases.queries import IngestionStatus, ListSymbols, ReadBars

__all__ = ["bar_json", "bar_query", "get_bars", "page_json", "read_bars"]
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


def answer(model: type, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the response model says (rest_models.py): a field the model does not have, or a value of
    another type, is a bug here, never a silent difference from the published OpenAPI document."""
    return msgspec.to_builtins(msgspec.convert(body, model))


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
        return json_response(status, answer(rest_models.Error, {**body, "request_id": _request_id(request)}))


def _guarded(request: Request, call: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    return _answered(request, lambda: json_response(*call()))


# ------------------------------------------------------------------------------------------ bars as JSON
def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def bar_json(bar: Bar, revision: int, local_date: str | None = None) -> dict[str, Any]:
    """A bar as GET /bars prints it; ``local_date``: the local date a bar of a tz query begins on."""
    out = {
        "start": format_ns(bar.start_ns),
        "open": _decimal(bar.open), "high": _decimal(bar.high), "low": _decimal(bar.low),
        "close": _decimal(bar.close), "volume": _decimal(bar.volume), "vwap": _decimal(bar.vwap),
        "trades": bar.trades, "first_tick": format_ns(bar.first_ns), "last_tick": format_ns(bar.last_ns),
        "revision": revision,
    }
    if local_date is not None:
        out["date"] = local_date
    return out


def bar_query(params: Mapping[str, Any]) -> BarsQuery:
    """GET /bars's query string as a query; InvalidQuery naming the parameter that is wrong."""
    from .bar_params import bars_query, single_values  # GET /bars alone needs them: not at a cold start

    return bars_query(single_values(params))


def page_json(query: BarsQuery, page: BarsPage, values: Mapping[str, str] | None = None,
              base: str = "") -> dict[str, Any]:
    """The answer to one symbol (``symbol=``: its bars as a list) or several (``symbols=``: bars by symbol, in
    the order asked); ``next`` and ``next_url`` (from ``base`` and the parameters given) are null at the end."""
    from ..domain.intervals import LocalDays
    from .bar_params import encode_cursor, next_url

    dates = query.windows if query.zone is not None else None

    def rows(symbol: str) -> list[dict[str, Any]]:
        return [bar_json(bar, rev, dates.local_date(bar.start_ns) if isinstance(dates, LocalDays) else None)
                for bar, rev in page.bars.get(symbol, [])]

    cursor = None if page.position is None else encode_cursor(query, page.position)
    values = values if values is not None else {}
    out: dict[str, Any]
    if values.get("symbols") is None and len(query.symbols) == 1:
        out = {"symbol": query.symbols[0], "interval": query.interval.text}
    else:
        out = {"symbols": list(query.symbols), "interval": query.interval.text}
    if query.zone_name is not None:
        out["tz"] = query.zone_name
    out["bars"] = rows(query.symbols[0]) if "symbol" in out else {s: rows(s) for s in query.symbols}
    out["next"] = cursor
    out["next_url"] = None if cursor is None else next_url(base, values, cursor)
    return out


def read_bars(params: Mapping[str, Any], read: ReadBars, base: str = "") -> dict[str, Any]:
    """GET /bars's answer to a query string; ``base``: where the API is, for ``next_url``."""
    from .bar_params import bars_query, single_values

    values = single_values(params)
    query = bars_query(values)
    return page_json(query, read.page(query), values, base)


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
        return 202, answer(rest_models.IngestAccepted, result)

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


def get_bars(request: Request, read: ReadBars, configured_base_url: str = "") -> Response:
    def call() -> tuple[int, dict[str, Any]]:
        page = read_bars(request.query_params or {}, read, base_url(request, configured_base_url))
        return 200, answer(rest_models.BarPage if "symbol" in page else rest_models.SymbolsBarPage, page)

    return _guarded(request, call)


def get_ingestion(request: Request, status: IngestionStatus, ingestion_id: str) -> Response:
    return _guarded(request, lambda: (200, answer(rest_models.Ingestion, status(ingestion_id))))


def get_symbols(request: Request, symbols: ListSymbols) -> Response:
    return _guarded(request, lambda: (200, answer(rest_models.SymbolList, {
        "symbols": [{"symbol": s, "latest_bar": format_ns(ns)} for s, ns in symbols()]})))


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
    return _guarded(request, lambda: (200, answer(rest_models.IngestionList, list_ingestions(
        single_valued(request.query_params), listing, base_url(request, configured_base_url)))))


def get_openapi(request: Request, configured_base_url: str) -> Response:
    from ..openapi import document  # built for its own route

    return _guarded(request, lambda: (200, document(base_url(request, configured_base_url))))
