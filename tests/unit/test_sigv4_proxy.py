"""The SigV4 verifier of the local API proxy (localrun.sigv4_proxy), fed requests signed by botocore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from localrun.sigv4_proxy import Rejection, Secret, SigV4Verifier

HOST = "127.0.0.1:8000"
NOW = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)
VERIFIER = SigV4Verifier({"testing": Secret("testing", "token-1")}, "us-east-1", now=lambda: NOW)


@pytest.fixture(autouse=True)
def frozen_signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))


def sign(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
         params: dict[str, str] | None = None, key: str = "testing", secret: str = "testing",
         token: str | None = None, service: str = "execute-api", region: str = "us-east-1") -> list[tuple[str, str]]:
    """Sign like a client would and return the headers as the proxy receives them (Host included)."""
    request = AWSRequest(method=method, url=f"http://{HOST}{target}", data=body, headers=headers or {},
                         params=params or {})
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return [("Host", HOST), *request.headers.items()]


def check(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> Rejection | None:
    return VERIFIER.check(method, target, headers, body)


def test_botocore_signatures_pass_with_or_without_the_session_token() -> None:
    assert check("GET", "/symbols", sign("GET", "/symbols")) is None
    assert check("GET", "/symbols", sign("GET", "/symbols", token="token-1")) is None
    body = b'{"symbol":"A","price":1,"volume":1}'
    headers = sign("POST", "/ingest", body, {"Content-Type": "application/json"})
    assert check("POST", "/ingest", headers, body) is None
    target = "/ingestions/a%20b?x=1&a=2+3&start=2024-01-01T00%3A00Z"
    assert check("GET", target, sign("GET", target)) is None


def test_a_query_signed_in_its_specified_encoding_passes_even_if_sent_raw() -> None:
    # awscurl-style clients sign name=value URI-encoded (':' as %3A) but may send ':' as is.
    headers = sign("GET", "/bars", params={"symbol": "AAPL", "start": "2024-01-01T00:00:00Z"})
    assert check("GET", "/bars?symbol=AAPL&start=2024-01-01T00:00:00Z", headers) is None


@pytest.mark.parametrize(("case", "error_type"), [
    ("unsigned", "MissingAuthenticationTokenException"),
    ("wrong secret", "InvalidSignatureException"),
    ("other body", "InvalidSignatureException"),
    ("false body hash", "InvalidSignatureException"),
    ("unknown key", "UnrecognizedClientException"),
    ("wrong token", "UnrecognizedClientException"),
    ("wrong service", "InvalidSignatureException"),
    ("wrong region", "InvalidSignatureException"),
    ("host not signed", "IncompleteSignatureException"),
    ("no date", "IncompleteSignatureException"),
])
def test_what_api_gateway_refuses_is_refused(case: str, error_type: str) -> None:
    body = b'{"symbol":"A","price":1,"volume":1}'
    signed = {
        "wrong secret": lambda: sign("POST", "/ingest", body, secret="nope"),
        "unknown key": lambda: sign("POST", "/ingest", body, key="AKIDOTHER"),
        "wrong token": lambda: sign("POST", "/ingest", body, token="token-2"),
        "wrong service": lambda: sign("POST", "/ingest", body, service="s3"),
        "wrong region": lambda: sign("POST", "/ingest", body, region="eu-west-1"),
        "false body hash": lambda: sign("POST", "/ingest", body, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}),
    }
    headers = signed.get(case, lambda: sign("POST", "/ingest", body))()
    if case == "unsigned":
        headers = [(k, v) for k, v in headers if k.lower() not in ("authorization", "x-amz-date")]
    if case == "host not signed":
        headers = [(k, v.replace("SignedHeaders=host;", "SignedHeaders=")) for k, v in headers]
    if case == "no date":
        headers = [(k, v) for k, v in headers if k.lower() != "x-amz-date"]
    sent = body + b" " if case == "other body" else body
    rejection = check("POST", "/ingest", headers, sent)
    assert rejection is not None and rejection.error_type == error_type, rejection


@pytest.mark.parametrize(("skew", "refused"), [(-16, "Signature expired"), (16, "Signature not yet current"),
                                                (-14, None), (14, None)])
def test_signatures_older_or_newer_than_15_minutes_are_refused(
    monkeypatch: pytest.MonkeyPatch, skew: int, refused: str | None
) -> None:
    signed_at = (NOW + timedelta(minutes=skew)).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    rejection = check("GET", "/symbols", sign("GET", "/symbols"))
    if refused is None:
        assert rejection is None
    else:
        assert rejection is not None and rejection.message.startswith(refused)
