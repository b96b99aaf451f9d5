"""The SigV4 verifier of the local API proxy (localrun.sigv4_proxy), fed requests signed by botocore; then the
proxy itself, in-process between raw sockets and a tiny upstream, for what it does before reading a body."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from localrun.sigv4_proxy import (
    Rejection,
    RequestError,
    Secret,
    SigV4Proxy,
    SigV4Verifier,
    read_chunked,
)

HOST = "api.test"
NOW = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)
VERIFIER = SigV4Verifier({"testing": Secret("testing", "token-1")}, "us-east-1", now=lambda: NOW)
LIMIT = 64 * 1024  # the proxy's body limit in these tests
READ_TIMEOUT_S = 1.0


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
    ("non-ASCII signature", "InvalidSignatureException"),
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
    if case == "non-ASCII signature":
        headers = [(k, v.replace("Signature=", "Signature=é") if k == "Authorization" else v) for k, v in headers]
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


def test_the_signature_over_a_claimed_body_hash_is_checked_without_the_body() -> None:
    body = b'{"symbol":"A","price":1,"volume":1}'
    claimed = hashlib.sha256(body).hexdigest()
    authorization = VERIFIER.authorization(sign("POST", "/ingest", body, {"X-Amz-Content-SHA256": claimed}))
    assert not isinstance(authorization, Rejection) and authorization.content_sha256 == claimed
    assert VERIFIER.verify(authorization, "POST", "/ingest", claimed) is None
    forged = VERIFIER.authorization(sign("POST", "/ingest", body, {"X-Amz-Content-SHA256": claimed}, secret="no"))
    assert not isinstance(forged, Rejection)
    assert VERIFIER.verify(forged, "POST", "/ingest", claimed) is not None
    # Signed correctly, but the body that arrives is another one: its hash is not the one claimed.
    other = hashlib.sha256(body + b" ").hexdigest()
    rejection = VERIFIER.verify(authorization, "POST", "/ingest", other)
    assert rejection is not None and rejection.error_type == "InvalidSignatureException"


# ------------------------------------------------------------------------------------------ chunked bodies
@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=12), st.booleans())
def test_any_chunking_of_a_body_reads_back_as_the_body(body: bytes, sizes: list[int], leading_zeros: bool) -> None:
    framed, rest = b"", body
    for size in [*sizes, len(body)]:
        piece, rest = rest[:size], rest[size:]
        if piece:
            framed += (b"00" if leading_zeros else b"") + f"{len(piece):X};n=v\r\n".encode() + piece + b"\r\n"
    framed += b"0\r\nX-Checksum: 1\r\n\r\n"
    stream = io.BytesIO(framed + b"NEXT")
    assert read_chunked(stream, LIMIT) == body
    assert stream.read() == b"NEXT"  # nothing past the body's end is consumed


def test_a_chunked_body_over_the_limit_is_refused_before_its_data_is_read() -> None:
    stream = io.BytesIO(f"{LIMIT + 1:x}\r\n".encode() + b"x" * (LIMIT + 1))
    with pytest.raises(RequestError) as refused:
        read_chunked(stream, LIMIT)
    assert refused.value.status == 413 and stream.tell() < 16


# ------------------------------------------------------------------------------------------ the proxy, in-process
class Upstream(ThreadingHTTPServer):
    """Stands in for chalice local: records what reaches it, answers its sha256."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []


class _Echo(BaseHTTPRequestHandler):
    server: Upstream

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.command, self.path, dict(self.headers.items()), body))
        answer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_PUT = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Running:
    address: tuple[str, int]
    upstream: Upstream

    def received(self) -> list[bytes]:
        return [body for _, _, _, body in self.upstream.received]


def _serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def running_proxy() -> Iterator[Running]:
    upstream = Upstream()
    _serve(upstream)
    server = SigV4Proxy(("127.0.0.1", 0), upstream.server_address[:2], VERIFIER,  # type: ignore[arg-type]
                        max_body_bytes=LIMIT, read_timeout=READ_TIMEOUT_S)
    server.start()
    try:
        yield Running(server.server_address[:2], upstream)  # type: ignore[arg-type]
    finally:
        server.stop()
        upstream.shutdown()
        upstream.server_close()


@pytest.fixture
def proxy(running_proxy: Running) -> Running:
    """The module's proxy, with nothing received upstream yet."""
    running_proxy.upstream.received.clear()
    return running_proxy


def head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"


def parse(data: bytes) -> Answer:
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the proxy closes; a socket timeout (the proxy kept the connection open) fails."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def exchange(running: Running, request: bytes, then_close: bool = False, timeout: float = 5.0) -> Answer:
    with socket.create_connection(running.address, timeout=timeout) as sock:
        sock.sendall(request)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
        return parse(read_to_end(sock))


def chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


BODY = b'{"symbol":"A","price":1,"volume":1}'


def api_error(answer: Answer, status: int, error: str) -> str:
    """The message of an error answered in the API's shape ({"error", "message", "request_id"})."""
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    document = answer.json()
    assert document["error"] == error and document["request_id"] == answer.headers["x-amzn-requestid"], document
    return str(document["message"])


def forbidden(answer: Answer, error_type: str) -> str:
    """The message of API Gateway's 403."""
    assert answer.status == 403, (answer.status, answer.body[:300])
    assert answer.headers["x-amzn-errortype"] == error_type and answer.headers["connection"] == "close"
    return str(answer.json()["message"])


@pytest.mark.parametrize("content_sha256", [False, True])
def test_signed_requests_pass_through_unchanged(proxy: Running, content_sha256: bool) -> None:
    extra = {"Content-Type": "application/json"}
    if content_sha256:
        extra["X-Amz-Content-SHA256"] = hashlib.sha256(BODY).hexdigest()
    connection = http.client.HTTPConnection(*proxy.address, timeout=5)
    connection.request("POST", "/ingest?x=1", BODY, dict(sign("POST", "/ingest?x=1", BODY, extra)))
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read()) == {"sha256": hashlib.sha256(BODY).hexdigest()}
    connection.close()
    [(method, path, headers, body)] = proxy.upstream.received
    assert (method, path, body, headers["Content-Length"]) == ("POST", "/ingest?x=1", BODY, str(len(BODY)))


def test_a_signed_chunked_body_reaches_the_api_whole(proxy: Running) -> None:
    headers = [*sign("POST", "/ingest", BODY), ("Transfer-Encoding", "chunked")]
    answer = exchange(proxy, head("POST", "/ingest", headers) + chunked(BODY))
    assert answer.status == 200, answer.body
    [(_, _, upstream_headers, body)] = proxy.upstream.received
    assert body == BODY and upstream_headers["Content-Length"] == str(len(BODY))
    assert "Transfer-Encoding" not in upstream_headers


def test_a_wrong_signature_is_refused_after_the_body(proxy: Running) -> None:
    headers = [*sign("POST", "/ingest", BODY, secret="not-it"), ("Content-Length", str(len(BODY)))]
    message = forbidden(exchange(proxy, head("POST", "/ingest", headers) + BODY), "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match")
    tampered = [*sign("POST", "/ingest", BODY), ("Content-Length", str(len(BODY)))]
    forbidden(exchange(proxy, head("POST", "/ingest", tampered) + BODY.replace(b"1", b"9")),
              "InvalidSignatureException")
    assert proxy.received() == []


@pytest.mark.parametrize("sent", [b"", b"x" * 65536])
def test_an_unsigned_upload_of_300_mb_is_refused_at_once_unread(proxy: Running, sent: bytes) -> None:
    headers = [("Host", HOST), ("Content-Type", "application/json"), ("Content-Length", str(300 * 1024 * 1024))]
    started = time.monotonic()
    # The answer comes while the client has sent at most 64 KiB of the 300 MB: nothing waited for the rest.
    answer = exchange(proxy, head("POST", "/ingest", headers) + sent)
    assert time.monotonic() - started < 2.0
    assert forbidden(answer, "MissingAuthenticationTokenException") == "Missing Authentication Token"
    assert proxy.received() == []


@pytest.mark.parametrize(("case", "error_type"), [
    ("basic auth", "IncompleteSignatureException"),
    ("other region", "InvalidSignatureException"),
    ("unknown key", "UnrecognizedClientException"),
    ("other token", "UnrecognizedClientException"),
])
def test_a_header_that_cannot_be_right_is_refused_before_the_body(proxy: Running, case: str, error_type: str) -> None:
    headers = {
        "basic auth": lambda: [("Host", HOST), ("Authorization", "Basic dGVzdGluZzp0ZXN0aW5n")],
        "other region": lambda: sign("POST", "/ingest", region="eu-west-1"),
        "unknown key": lambda: sign("POST", "/ingest", key="AKIDOTHER"),
        "other token": lambda: sign("POST", "/ingest", token="token-2"),
    }[case]()
    answer = exchange(proxy, head("POST", "/ingest", [*headers, ("Content-Length", str(LIMIT))]))
    forbidden(answer, error_type)
    assert proxy.received() == []


def test_a_stale_signature_is_refused_before_the_body(proxy: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    twenty_minutes_ago = (NOW - timedelta(minutes=20)).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: twenty_minutes_ago)
    answer = exchange(proxy, head("POST", "/ingest", [*sign("POST", "/ingest"), ("Content-Length", str(LIMIT))]))
    assert forbidden(answer, "InvalidSignatureException").startswith("Signature expired")


def test_a_signed_body_hash_lets_a_wrong_signature_be_refused_before_the_body(proxy: Running) -> None:
    body = b"x" * (LIMIT - 1)
    claim = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    wrong = [*sign("POST", "/ingest", body, claim, secret="not-it"), ("Content-Length", str(len(body)))]
    forbidden(exchange(proxy, head("POST", "/ingest", wrong)), "InvalidSignatureException")
    # Without the claim the signature covers the body's hash, so only the body can tell: the proxy waits for it.
    unclaimed = [*sign("POST", "/ingest", body, secret="not-it"), ("Content-Length", str(len(body)))]
    assert exchange(proxy, head("POST", "/ingest", unclaimed)).status == 408
    assert proxy.received() == []


def test_a_body_that_is_not_the_one_its_signed_hash_claims_is_refused(proxy: Running) -> None:
    claim = {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}
    headers = [*sign("POST", "/ingest", BODY, claim), ("Content-Length", str(len(BODY)))]
    forbidden(exchange(proxy, head("POST", "/ingest", headers) + BODY.replace(b"1", b"9")),
              "InvalidSignatureException")
    assert proxy.received() == []


def test_expect_100_continue_is_answered_only_once_the_headers_pass(proxy: Running) -> None:
    claim = {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}
    expect = [("Expect", "100-continue"), ("Content-Length", str(len(BODY)))]
    with socket.create_connection(proxy.address, timeout=5) as sock:
        sock.sendall(head("POST", "/ingest", [*sign("POST", "/ingest", BODY, claim), *expect]))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        assert parse(read_to_end(sock)).status == 200
    with socket.create_connection(proxy.address, timeout=5) as sock:
        sock.sendall(head("POST", "/ingest", [*sign("POST", "/ingest", BODY, claim, secret="no"), *expect]))
        forbidden(parse(read_to_end(sock)), "InvalidSignatureException")  # no 100: the client keeps its body
    assert proxy.received() == [BODY]


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1_000", "0x10", "1e3", "1.0", "", "5, 5", "١٢"])
def test_a_content_length_that_is_not_a_decimal_integer_is_a_400(proxy: Running, value: str) -> None:
    request = head("POST", "/ingest", [("Host", HOST)]).replace(b"\r\n\r\n", b"\r\nContent-Length: ")
    answer = exchange(proxy, request + value.encode() + b"\r\n\r\n12345")
    assert "Content-Length" in api_error(answer, 400, "BadRequest")
    assert proxy.received() == []


@pytest.mark.parametrize("framing", [
    [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
    [("Content-Length", "5"), ("Content-Length", "5")],
    [("Transfer-Encoding", "gzip, chunked")],
    [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
])
def test_ambiguous_or_unsupported_framing_is_a_400(proxy: Running, framing: list[tuple[str, str]]) -> None:
    answer = exchange(proxy, head("POST", "/ingest", [*sign("POST", "/ingest", b"hello"), *framing]) + b"hello")
    api_error(answer, 400, "BadRequest")
    assert proxy.received() == []


@pytest.mark.parametrize("body", [
    b"zz\r\n", b"-1\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b" 5\r\nhello\r\n0\r\n\r\n",
    b"5_0\r\n", b"\r\n", b"5\nhello\r\n0\r\n\r\n", b"5;a\x00b\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n",
    b"1" * 5000 + b"\r\n", b"5\r\nhel", b"5\r\nhello\r\n0\r\n" + b"X-Long: " + b"y" * 4090 + b"\r\n\r\n",
])
def test_a_malformed_chunked_body_is_a_400(proxy: Running, body: bytes) -> None:
    headers = [*sign("POST", "/ingest", b"hello"), ("Transfer-Encoding", "chunked")]
    answer = exchange(proxy, head("POST", "/ingest", headers) + body, then_close=True)
    message = api_error(answer, 400, "BadRequest")
    assert "chunk" in message or "trailer" in message
    assert proxy.received() == []


@pytest.mark.parametrize("length", [str(LIMIT + 1), "9" * 40])
def test_a_declared_length_over_the_limit_is_a_413_before_the_body(proxy: Running, length: str) -> None:
    answer = exchange(proxy, head("POST", "/ingest", [*sign("POST", "/ingest"), ("Content-Length", length)]))
    assert api_error(answer, 413, "PayloadTooLarge") == f"body is {length} bytes; the limit is {LIMIT} bytes"
    # A chunk that would take the body past the limit: refused as soon as its size is read.
    answer = exchange(proxy, head("POST", "/ingest", [*sign("POST", "/ingest"), ("Transfer-Encoding", "chunked")])
                      + b"8000\r\n" + b"x" * 0x8000 + b"\r\n" + b"8001\r\n")
    api_error(answer, 413, "PayloadTooLarge")
    assert proxy.received() == []


def test_a_body_shorter_than_declared_is_a_400_and_a_stalled_one_a_408(proxy: Running) -> None:
    headers = [*sign("POST", "/ingest", BODY), ("Content-Length", "100")]
    assert "ended after 10 of the 100 bytes" in api_error(
        exchange(proxy, head("POST", "/ingest", headers) + b"x" * 10, then_close=True), 400, "BadRequest")
    started = time.monotonic()
    api_error(exchange(proxy, head("POST", "/ingest", headers) + b"x" * 10), 408, "RequestTimeout")
    assert READ_TIMEOUT_S <= time.monotonic() - started < READ_TIMEOUT_S + 2
    assert proxy.received() == []


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"BREW /pot HTTP/1.1\r\nHost: api.test\r\n\r\n", 501),
    (b"GET /symbols HTTP/1.1\r\n" + b"X-Long: " + b"y" * 70000 + b"\r\n\r\n", 431),
    (b"GET /symbols HTTP/1.1\r\nHost: api.test\r\nAuthorization: AWS4-HMAC-SHA256 Credential=\xff\r\n\r\n", 403),
])
def test_what_http_server_itself_refuses_is_answered_in_json(
    proxy: Running, request_bytes: bytes, status: int
) -> None:
    answer = exchange(proxy, request_bytes)
    assert answer.status == status and answer.headers["content-type"] == "application/json"
    assert answer.json()["message"]


def test_an_unreachable_api_is_a_502(proxy: Running) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[:2]
    server = SigV4Proxy(("127.0.0.1", 0), closed, VERIFIER, max_body_bytes=LIMIT)
    server.start()
    try:
        answer = exchange(Running(server.server_address[:2], proxy.upstream),  # type: ignore[arg-type]
                          head("GET", "/symbols", sign("GET", "/symbols")))
        assert "did not answer" in api_error(answer, 502, "BadGateway")
    finally:
        server.stop()
