"""REST entry points: Chalice request -> one service call -> JSON response, with errors mapped in one place."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import Request, Response

from .domain.errors import PipelineError
from .handlers import flushes_metrics
from .observability import logger
from .services import Pipeline

EXECUTE_API_DOMAIN = re.compile(r"[a-z0-9]{1,32}\.execute-api\.[a-z0-9-]{1,32}\.amazonaws\.com(?:\.cn)?")
STAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


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


def _base_url(request: Request, configured: str) -> str:
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


def post_ingest(request: Request, pipeline: Pipeline) -> Response:
    def call() -> tuple[int, dict[str, Any]]:
        headers: Mapping[str, str] = request.headers or {}
        raw = request.raw_body or b""
        result = pipeline.ingest_body(
            raw if isinstance(raw, bytes) else raw.encode(), headers.get("content-type"), headers.get("idempotency-key")
        )
        result["status_url"] = _base_url(request, pipeline.settings.api_base_url) + result.pop("status_path")
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
