"""REST entry points: Chalice request -> one service call -> JSON response, with errors mapped in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import Request, Response

from .domain.errors import PipelineError
from .handlers import flushes_metrics
from .observability import logger
from .services import Pipeline


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _request_id(request: Request) -> str | None:
    return (request.context or {}).get("requestId")


@flushes_metrics
def _guarded(request: Request, call: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    try:
        status, body = call()
        return json_response(status, body)
    except PipelineError as exc:
        if exc.status >= 500:
            logger.warning("request failed", extra={"error": exc.message, "request_id": _request_id(request)})
        body = exc.as_dict()
        body["request_id"] = _request_id(request)
        return json_response(exc.status, body)
    except Exception:
        logger.exception("unexpected error", extra={"request_id": _request_id(request)})
        return json_response(500, {"error": "InternalError", "message": "internal error; see the logs",
                                   "request_id": _request_id(request)})


def _base_url(request: Request) -> str:
    context = request.context or {}
    headers: Mapping[str, str] = request.headers or {}
    domain = context.get("domainName")
    stage = context.get("stage")
    if domain and stage and "amazonaws.com" in domain:
        return f"https://{domain}/{stage}"
    host = headers.get("host")
    return f"http://{host}" if host else ""


def post_ingest(request: Request, pipeline: Pipeline) -> Response:
    def call() -> tuple[int, dict[str, Any]]:
        headers: Mapping[str, str] = request.headers or {}
        raw = request.raw_body or b""
        result = pipeline.ingest_body(
            raw if isinstance(raw, bytes) else raw.encode(), headers.get("content-type"), headers.get("idempotency-key")
        )
        result["status_url"] = _base_url(request) + result.pop("status_path")
        return 202, result

    return _guarded(request, call)


def get_bars(request: Request, pipeline: Pipeline) -> Response:
    params: Mapping[str, str] = request.query_params or {}
    return _guarded(request, lambda: (200, pipeline.get_bars(
        params.get("symbol"), params.get("interval"), params.get("start"), params.get("end"),
        params.get("limit"), params.get("next"),
    )))


def get_ingestion(request: Request, pipeline: Pipeline, ingestion_id: str) -> Response:
    return _guarded(request, lambda: (200, pipeline.ingestion_status(ingestion_id)))


def get_symbols(request: Request, pipeline: Pipeline) -> Response:
    return _guarded(request, lambda: (200, pipeline.list_symbols()))
