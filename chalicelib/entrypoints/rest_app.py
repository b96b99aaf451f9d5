"""The Chalice app class: Chalice, with every REST answer in the API's error shape and a request id.

Chalice answers some requests itself before any route runs: a method the route does not have (405), a
content type it does not list (415), an exception no handler caught (500). It writes those as
``{"Code", "Message"}``; here they become the API's ``{"error", "message", "request_id"}``. API Gateway
always sets a request id; ``chalice local`` and the test client do not, so one is made for them (routes read
it from the request context, as in AWS).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from chalice import Chalice

# Chalice's error codes -> the API's.
CHALICE_CODES = {
    "MethodNotAllowedError": "MethodNotAllowed",
    "UnsupportedMediaType": "UnsupportedMediaType",
    "InternalServerError": "InternalError",
    "BadRequestError": "BadRequest",
    "NotFoundError": "NotFound",
}


class MarketDataApp(Chalice):
    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        request_context = event.get("requestContext") if isinstance(event, dict) else None
        if isinstance(request_context, dict) and not request_context.get("requestId"):
            request_context["requestId"] = str(uuid.uuid4())
        response = super().__call__(event, context)
        if not isinstance(request_context, dict):
            return response
        return in_error_shape(response, request_context.get("requestId"), self._hint(request_context))

    def _hint(self, request_context: dict[str, Any]) -> str:
        """What the route takes, for Chalice's 405 and 415 messages."""
        methods = self.routes.get(request_context.get("resourcePath") or "", {})
        route = methods.get(request_context.get("httpMethod") or "")
        if route is None:
            return f"this route takes {', '.join(sorted(methods))}" if methods else ""
        return f"this route takes {', '.join(route.content_types)}"


def in_error_shape(response: dict[str, Any], request_id: str | None, hint: str = "") -> dict[str, Any]:
    """``response`` (a Lambda proxy answer) with a Chalice-made error body rewritten in the API's shape."""
    if response.get("statusCode", 200) < 400 or response.get("isBase64Encoded"):
        return response
    try:
        body = json.loads(response.get("body") or "")
    except ValueError:
        return response
    if not isinstance(body, dict) or "error" in body or "Code" not in body:
        return response
    code = str(body["Code"])
    hint = hint if code in ("MethodNotAllowedError", "UnsupportedMediaType") and hint else ""
    message = str(body.get("Message", "")) + (f"; {hint}" if hint else "")
    shaped = {"error": CHALICE_CODES.get(code, code), "message": message, "request_id": request_id}
    headers = {k: v for k, v in (response.get("headers") or {}).items() if k.lower() != "content-type"}
    return {**response, "headers": {**headers, "Content-Type": "application/json"},
            "body": json.dumps(shaped, separators=(",", ":"))}
