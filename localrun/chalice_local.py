"""`chalice local`, answering a request to no route in the API's error shape.

`chalice local` answers a path that no route matches with API Gateway's 403 ``{"message": "Missing
Authentication Token"}``. Locally there is no signature to be missing (IAM is not checked, unless
``--require-sigv4`` puts the verifying proxy in front), so such a request is what it is: a 404 ``NotFound``
naming the method and path, as ``{"error", "message", "request_id"}``. Its server also keeps up to
LISTEN_BACKLOG connections waiting to be accepted, not socketserver's 5: clients that open a connection per
request (16 at once in ``make bench``) were otherwise sometimes reset. Everything else is `chalice local`
itself. Run as ``python -m localrun.chalice_local <chalice local's options>``.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from chalice import local
from chalice.cli import main as chalice_main


class RouteNotFound(local.LocalGatewayException):
    CODE = 404


def not_found(method: str, path: str) -> RouteNotFound:
    request_id = str(uuid.uuid4())
    body = {"error": "NotFound", "message": f"no route matches {method} {path.split('?')[0][:200]}",
            "request_id": request_id}
    return RouteNotFound({"Content-Type": "application/json", "x-amzn-RequestId": request_id},
                         json.dumps(body, separators=(",", ":")).encode())


_handle_request = local.LocalGateway.handle_request
LISTEN_BACKLOG = 128


def handle_request(self: local.LocalGateway, method: str, path: str, headers: Any, body: Any) -> Any:
    try:
        self.event_converter._route_matcher.match_route(path)
    except ValueError:
        raise not_found(method, path) from None
    return _handle_request(self, method, path, headers, body)


def main(argv: list[str]) -> int:
    local.LocalGateway.handle_request = handle_request  # type: ignore[method-assign]
    local.ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG
    sys.argv = ["chalice", "local", *argv]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
