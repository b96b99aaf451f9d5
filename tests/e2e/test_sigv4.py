"""`python -m localrun --require-sigv4`: the local API refuses what API Gateway's IAM authorization would refuse.

One stack for the module, started with the flag; requests are signed in the test with botocore's SigV4Auth
(service execute-api), as an IAM-authorized client of the deployed API would sign them.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.settings import Settings
from localrun.control import LocalStack, Response, running_local_stack, unique_symbol

pytestmark = pytest.mark.e2e

REGION = "us-east-1"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """Named like the session fixture it replaces here, so a failure shows this stack's log."""
    with tempfile.TemporaryDirectory(prefix="e2e-sigv4-") as tmp:
        try:
            with running_local_stack(Path(tmp) / "localrun.log", extra_args=("--require-sigv4",),
                                     ready_statuses=(403,)) as running:
                yield running
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)


def signed(stack: LocalStack, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
           access_key: str = "testing", secret_key: str = "testing") -> dict[str, str]:
    """The headers botocore adds to sign this request (Host, X-Amz-Date, Authorization) plus ``headers``."""
    request = AWSRequest(method=method, url=stack.api_url + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(access_key, secret_key), "execute-api", REGION).add_auth(request)
    return dict(request.headers.items())


def refused(response: Response, message_start: str) -> None:
    assert response.status == 403, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"].startswith(message_start), response.json()


def test_unsigned_request_gets_403_missing_token(stack: LocalStack) -> None:
    refused(stack.get("/symbols"), "Missing Authentication Token")
    refused(stack.post_ingest({"symbol": "UNSIGNED", "price": 1, "volume": 1}), "Missing Authentication Token")


def test_wrong_secret_tampered_body_and_unknown_key_get_403(stack: LocalStack) -> None:
    mismatch = "The request signature we calculated does not match the signature you provided"
    refused(stack.request("GET", "/symbols", headers=signed(stack, "GET", "/symbols", secret_key="not-it")), mismatch)

    body = json.dumps({"symbol": "TAMPER", "price": 1, "volume": 1}).encode()
    headers = signed(stack, "POST", "/ingest", body, {"Content-Type": "application/json"})
    refused(stack.request("POST", "/ingest", body.replace(b'"volume": 1', b'"volume": 9'), headers), mismatch)

    path = "/bars?symbol=AAPL&interval=1m"
    refused(stack.request("GET", path.replace("1m", "5m"), headers=signed(stack, "GET", path)), mismatch)

    refused(stack.request("GET", "/symbols", headers=signed(stack, "GET", "/symbols", access_key="AKIDUNKNOWN")),
            "The security token included in the request is invalid")


def test_stale_signature_gets_403(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    twenty_minutes_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: twenty_minutes_ago)
    refused(stack.request("GET", "/symbols", headers=signed(stack, "GET", "/symbols")), "Signature expired")


def test_signed_requests_pass_through(stack: LocalStack) -> None:
    symbol = unique_symbol("SIGNED")
    response = stack.request("GET", "/symbols", headers=signed(stack, "GET", "/symbols"))
    assert response.status == 200, response.body[:300]
    assert "symbols" in response.json()

    body = json.dumps({"symbol": symbol, "price": "101.5", "volume": 3}).encode()
    response = stack.request("POST", "/ingest", body, signed(stack, "POST", "/ingest", body,
                                                             {"Content-Type": "application/json"}))
    assert response.status == 202, response.body[:300]
    accepted = response.json()
    assert accepted["accepted"] == 1
    assert accepted["status_url"].startswith(stack.api_url)  # the proxy's address, not chalice's internal one

    status_path = f"/ingestions/{accepted['ingestion_id']}"
    response = stack.request("GET", status_path, headers=signed(stack, "GET", status_path))
    assert response.status == 200 and response.json()["ingestion_id"] == accepted["ingestion_id"]

    query = f"/bars?symbol={symbol}&interval=1m&start=2024-01-01T00%3A00%3A00Z"
    response = stack.request("GET", query, headers=signed(stack, "GET", query))
    assert response.status == 200 and response.json()["symbol"] == symbol


def test_bodies_are_framed_and_bounded_before_they_are_read(stack: LocalStack) -> None:
    """Through the real stack, on raw sockets: what the headers alone condemn is answered without the body."""
    address = urlsplit(stack.api_url)
    assert address.hostname and address.port

    def exchange(request: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):  # the proxy closes after answering
                data += chunk
        top, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        return int(status_line.split()[1]), headers, json.loads(body)

    def head(headers: dict[str, str]) -> bytes:
        lines = ["POST /ingest HTTP/1.1", f"Host: {address.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
        return "\r\n".join(lines).encode() + b"\r\n\r\n"

    started = time.monotonic()
    status, _, body = exchange(head({"Content-Length": str(300 * 1024 * 1024)}))
    assert (status, body["message"]) == (403, "Missing Authentication Token") and time.monotonic() - started < 2

    status, _, body = exchange(head({"Content-Length": "abc"}))
    assert status == 400 and body["error"] == "BadRequest" and "Content-Length" in body["message"], body

    oversize = signed(stack, "POST", "/ingest", headers={"Content-Type": "application/json"})
    status, _, body = exchange(head({**oversize, "Content-Length": str(10 * 1024 * 1024)}))
    assert status == 413 and body["error"] == "PayloadTooLarge" and set(body) == {"error", "message", "request_id"}
    assert body["message"].endswith(f"the limit is {Settings().max_body_bytes} bytes"), body  # the API's own limit

    tick = json.dumps({"symbol": unique_symbol("FRAMED"), "price": 1, "volume": 1}).encode()
    claimed = {"Content-Type": "application/json", "X-Amz-Content-SHA256": hashlib.sha256(tick).hexdigest()}
    headers = {**signed(stack, "POST", "/ingest", tick, claimed), "Transfer-Encoding": "chunked"}
    status, _, body = exchange(head(headers) + f"{len(tick):x}\r\n".encode() + tick + b"\r\n0\r\n\r\n")
    assert status == 202 and body["accepted"] == 1, body
    status, _, body = exchange(head(headers) + b"zz\r\n")
    assert status == 400 and "chunk-size" in body["message"], body
