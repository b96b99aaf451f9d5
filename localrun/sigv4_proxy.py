"""A reverse proxy that checks AWS Signature V4 the way API Gateway's IAM authorization does, for `chalice local`.

`chalice local` ignores IAM authorizers. With `python -m localrun --require-sigv4` this proxy takes the API
port: a request without a valid signature (service execute-api, the emulator's credentials) gets API
Gateway's 403 answer; any other request goes to `chalice local` on an internal port unchanged.

The signature is recomputed with botocore's SigV4 signer from the request as received (its method, path,
query, the headers it says it signed, the hash of its body, its X-Amz-Date) and the secret of its access key.

No byte of a body is read before the request line and headers have passed every check they allow: the body's
framing (one Content-Length, a non-negative decimal, or chunked), the Authorization header (algorithm,
credential scope, known key, date within the skew, session token), then the declared length against the API's
body limit. When the client signed an x-amz-content-sha256 header the signature itself is checked before the
body too, and the body must then hash to it. So an unsigned or wrongly signed upload is refused at once,
whatever it declares, and memory per request stays within the body limit.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from chalicelib.settings import Settings

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UPSTREAM_TIMEOUT_S = 120
# The API's own body limit (POST /ingest answers 413 above it); API Gateway's 10 MB is higher, so no body
# the API could accept is refused here. start_proxy and SigV4Proxy take another as max_body_bytes.
DEFAULT_MAX_BODY_BYTES = Settings().max_body_bytes
# A client that stops sending (or sends a byte now and then) frees its thread after this long without data.
READ_TIMEOUT_S = 30.0
MAX_CHUNK_LINE_BYTES = 4096  # a chunk-size line with its extensions, or a trailer line, CRLF included
MAX_TRAILER_BYTES = 16 * 1024
# After refusing a request whose body was not read: what is discarded, at most, before closing. Closing a
# socket with unread data makes the kernel reset the connection, which can destroy the answer in flight.
LINGER_S = 1.0
LINGER_BYTES = 256 * 1024
# Per connection, not end to end (RFC 9110 7.6.1): never forwarded in either direction.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "proxy-connection"}
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.")
DECIMAL = re.compile(r"[0-9]+")
HEX = re.compile(rb"[0-9A-Fa-f]+")
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # in a chunk extension; HTAB is allowed


@dataclass(frozen=True)
class Secret:
    """What the verifier knows about an access key. A request carrying a session token must carry this one."""

    secret_key: str
    session_token: str | None = None


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: API Gateway's x-amzn-ErrorType and message."""

    error_type: str
    message: str


@dataclass(frozen=True)
class Authorization:
    """A well-formed SigV4 Authorization header of a known key, dated within the skew: what is left to check is
    its signature, over the request's method, target, signed headers and body hash."""

    credentials: Credentials
    region: str
    service: str
    amz_date: str
    signed: tuple[str, ...]
    signature: str
    headers: Mapping[str, Sequence[str]]  # every header of the request, by lower-case name
    content_sha256: str | None  # a signed x-amz-content-sha256: the body's hash as the client claims it


class RequestError(Exception):
    """A request the proxy answers itself, in the API's error shape: malformed framing, a body over the limit."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _bad_request(message: str) -> RequestError:
    return RequestError(400, "BadRequest", message)


def _too_large(message: str) -> RequestError:
    return RequestError(413, "PayloadTooLarge", message)


def _incomplete(message: str) -> Rejection:
    return Rejection("IncompleteSignatureException", message)


class _Recomputed(SigV4Auth):
    """botocore's signer, fed exactly what the client says it signed, a canonical query string and the body's
    hash."""

    def __init__(self, credentials: Credentials, region: str, service: str, signed: Sequence[str], query: str,
                 payload_hash: str) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed
        self._query = query
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # Not botocore's selection: a client may sign headers botocore never would (e.g. user-agent).
        selected = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                selected[name] = value
        return selected

    def canonical_query_string(self, request: AWSRequest) -> str:
        return self._query

    def canonical_request(self, request: AWSRequest) -> str:
        # botocore trusts a signed x-amz-content-sha256 as the payload's hash; API Gateway hashes the body.
        head, _, _ = super().canonical_request(request).rpartition("\n")
        return f"{head}\n{self._payload_hash}"


def _query_forms(raw: str) -> list[str]:
    """Canonical query strings a correct client may have signed: the query as sent (botocore signing a URL),
    and each name and value decoded then encoded as the SigV4 specification says (e.g. awscurl)."""
    if not raw:
        return [""]
    pairs = [pair.partition("=") for pair in raw.split("&")]
    as_sent = "&".join(f"{k}={v}" for k, v in sorted((k, v) for k, _, v in pairs))
    encoded = sorted((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")) for k, _, v in pairs)
    specified = "&".join(f"{k}={v}" for k, v in encoded)
    return [as_sent] if specified == as_sent else [as_sent, specified]


class SigV4Verifier:
    """Checks a request's SigV4 Authorization header as API Gateway's IAM authorization does.

    In two steps, so that a proxy can refuse before reading a body: ``authorization`` (the headers alone), then
    ``verify`` (the signature, given the body's hash). ``check`` does both for a request at hand.
    """

    def __init__(self, keys: Mapping[str, Secret], region: str, service: str = SERVICE,
                 max_skew: timedelta = MAX_SKEW, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._keys = dict(keys)
        self._region = region
        self._service = service
        self._max_skew = max_skew
        self._now = now

    def check(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> Rejection | None:
        """None if the request is signed correctly, else why not. ``target`` is the request line's path."""
        authorization = self.authorization(headers)
        if isinstance(authorization, Rejection):
            return authorization
        return self.verify(authorization, method, target, hashlib.sha256(body).hexdigest())

    def authorization(self, headers: Sequence[tuple[str, str]]) -> Authorization | Rejection:
        """What the headers alone allow to check: a well-formed Authorization header, scoped to this region
        and service, of a known key (and its session token), signing Host, dated within the skew."""
        by_name: dict[str, list[str]] = {}
        for name, value in headers:
            by_name.setdefault(name.lower(), []).append(value)
        authorization = (by_name.get("authorization") or [""])[0].strip()
        if not authorization:
            return Rejection("MissingAuthenticationTokenException", "Missing Authentication Token")
        algorithm, _, rest = authorization.partition(" ")
        fields = {}
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields[name] = value
        amz_date = (by_name.get("x-amz-date") or [""])[0].strip()
        missing = [f"Authorization header requires '{name}' parameter."
                   for name in ("Credential", "Signature", "SignedHeaders") if not fields.get(name)]
        if not amz_date:
            missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        if algorithm != ALGORITHM or missing:
            if algorithm != ALGORITHM:
                missing.insert(0, f"Unsupported authorization type: only {ALGORITHM} is accepted.")
            return _incomplete(" ".join(missing) + f" Authorization={authorization[:100]}")

        scope = fields["Credential"].split("/")
        signed = tuple(fields["SignedHeaders"].lower().split(";"))
        if len(scope) != 5:
            return _incomplete(f"Credential should be <access key>/<date>/<region>/<service>/aws4_request, "
                               f"not '{fields['Credential']}'.")
        access_key, scope_date, region, service, terminator = scope
        if region != self._region:
            return Rejection("InvalidSignatureException", f"Credential should be scoped to a valid region, "
                                                          f"not '{region}'. ")
        if service != self._service:
            return Rejection("InvalidSignatureException",
                             f"Credential should be scoped to correct service: '{self._service}'. ")
        if terminator != "aws4_request":
            return Rejection("InvalidSignatureException", "Credential should be scoped with a valid terminator: "
                                                          f"'aws4_request', not '{terminator}'. ")
        if "host" not in signed:
            return _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        try:
            signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.")
        if scope_date != amz_date[:8]:
            return Rejection("InvalidSignatureException",
                             "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
                             f"HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.")
        now = self._now()
        minutes = int(self._max_skew.total_seconds() // 60)
        if signed_at < now - self._max_skew:
            return Rejection("InvalidSignatureException",
                             f"Signature expired: {amz_date} is now earlier than "
                             f"{(now - self._max_skew).strftime(AMZ_DATE_FORMAT)} "
                             f"({now.strftime(AMZ_DATE_FORMAT)} - {minutes} min.)")
        if signed_at > now + self._max_skew:
            return Rejection("InvalidSignatureException",
                             f"Signature not yet current: {amz_date} is still later than "
                             f"{(now + self._max_skew).strftime(AMZ_DATE_FORMAT)} "
                             f"({now.strftime(AMZ_DATE_FORMAT)} + {minutes} min.)")
        secret = self._keys.get(access_key)
        tokens = by_name.get("x-amz-security-token")
        token = tokens[0] if tokens else None
        if secret is None or (token is not None and secret.session_token is not None and token != secret.session_token):
            return Rejection("UnrecognizedClientException", "The security token included in the request is invalid.")
        claims = by_name.get("x-amz-content-sha256") if "x-amz-content-sha256" in signed else None
        return Authorization(Credentials(access_key, secret.secret_key, token), region, service, amz_date, signed,
                             fields["Signature"].strip().lower(), by_name,
                             claims[0].strip().lower() if claims else None)

    def verify(self, authorization: Authorization, method: str, target: str, payload_hash: str) -> Rejection | None:
        """None if ``authorization`` signs this method and target with a body of SHA-256 ``payload_hash`` (and
        that is the hash a signed x-amz-content-sha256 claims), else API Gateway's mismatch answer."""
        url = urlsplit(target)
        request = AWSRequest(method=method.upper(), url=f"http://{url.netloc or 'host'}{url.path or '/'}")
        request.headers = HTTPHeaders()
        for name in authorization.signed:
            for value in authorization.headers.get(name, []):
                request.headers[name] = value
        request.context["timestamp"] = authorization.amz_date
        claim_holds = authorization.content_sha256 in (None, payload_hash)
        # Header values arrive as latin-1 text; compare_digest refuses non-ASCII str, not bytes.
        given = authorization.signature.encode("utf-8", "replace")
        expected: tuple[str, str] = ("", "")
        for query in _query_forms(url.query):
            signer = _Recomputed(authorization.credentials, authorization.region, authorization.service,
                                 authorization.signed, query, payload_hash)
            canonical = signer.canonical_request(request)
            string_to_sign = signer.string_to_sign(request, canonical)
            if claim_holds and hmac.compare_digest(signer.signature(string_to_sign, request).encode(), given):
                return None
            expected = expected if expected[0] else (canonical, string_to_sign)
        return Rejection("InvalidSignatureException",
                         f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{expected[0]}'\n\n"
                         f"The String-to-Sign should have been\n'{expected[1]}'\n")


# ------------------------------------------------------------------------------------------ body framing
@dataclass(frozen=True)
class Framing:
    """How a request's body is delimited, from its headers alone (RFC 9112 6.3)."""

    chunked: bool = False
    length: int = 0  # the declared Content-Length; 0 when chunked or when there is none

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


def framing(headers: Message) -> Framing:
    """The framing the headers declare; RequestError (400) when it is ambiguous or malformed."""
    lengths = headers.get_all("Content-Length") or []
    codings = headers.get_all("Transfer-Encoding") or []
    if lengths and codings:
        raise _bad_request("a request must not carry both Content-Length and Transfer-Encoding")
    if codings:
        if [c.strip().lower() for value in codings for c in value.split(",")] != ["chunked"]:
            raise _bad_request(f"Transfer-Encoding must be 'chunked' (no other coding is supported), "
                               f"not {', '.join(codings)!r}")
        return Framing(chunked=True)
    if not lengths:
        return Framing()
    if len(lengths) > 1:
        raise _bad_request(f"a request must carry one Content-Length header, not {len(lengths)}")
    text = lengths[0].strip(" \t")
    if not DECIMAL.fullmatch(text):
        raise _bad_request(f"Content-Length must be a non-negative decimal integer, not {lengths[0][:40]!r}")
    digits = text.lstrip("0") or "0"
    # Only ever compared with the limit: a longer number is past any limit (and int() refuses the longest).
    return Framing(length=int(digits) if len(digits) <= 18 else 10**18)


def read_length(rfile: io.BufferedIOBase, length: int) -> bytes:
    """Exactly ``length`` bytes (already checked against the limit); RequestError if the body ends before."""
    data = rfile.read(length)
    if len(data) < length:
        raise _bad_request(f"the body ended after {len(data)} of the {length} bytes its Content-Length declares")
    return data


def read_chunked(rfile: io.BufferedIOBase, limit: int) -> bytes:
    """A chunked body (RFC 9112 7.1), parsed strictly and never read past ``limit`` bytes of data; its
    extensions and trailers are dropped. RequestError (400 malformed, 413 over the limit)."""
    body = bytearray()
    while True:
        line = _crlf_line(rfile, "chunk-size")
        size_field, _, extension = line.partition(b";")
        size_field = size_field.rstrip(b" \t")
        if not HEX.fullmatch(size_field) or CONTROL.search(extension):
            raise _bad_request(f"malformed chunk-size line {line[:40]!r}: expected hexadecimal digits, "
                               "optionally followed by ;extensions")
        digits = size_field.lstrip(b"0") or b"0"
        size = int(digits, 16) if len(digits) <= 15 else limit + 1  # more hex digits: past any limit
        if len(body) + size > limit:
            raise _too_large(f"the chunked body is more than {limit} bytes; the limit is {limit} bytes")
        if size == 0:
            break
        data = rfile.read(size)
        if len(data) < size:
            raise _bad_request(f"the body ended inside a chunk ({len(data)} of its {size} bytes)")
        body += data
        if rfile.read(2) != b"\r\n":
            raise _bad_request("a chunk's data must be followed by CRLF")
    trailers = 0
    while line := _crlf_line(rfile, "trailer"):
        trailers += len(line)
        if trailers > MAX_TRAILER_BYTES:
            raise _bad_request(f"the trailer section is longer than {MAX_TRAILER_BYTES} bytes")
    return bytes(body)


def _crlf_line(rfile: io.BufferedIOBase, what: str) -> bytes:
    raw = rfile.readline(MAX_CHUNK_LINE_BYTES)
    if not raw.endswith(b"\n"):
        if len(raw) >= MAX_CHUNK_LINE_BYTES:
            raise _bad_request(f"a {what} line is longer than {MAX_CHUNK_LINE_BYTES} bytes")
        raise _bad_request(f"the body ended before the end of a {what} line")
    if not raw.endswith(b"\r\n"):
        raise _bad_request(f"a {what} line must end with CRLF")
    return raw[:-2]


# ------------------------------------------------------------------------------------------ the proxy
class SigV4Proxy(ThreadingHTTPServer):
    """Listens on the API's address; verifies, then forwards to ``upstream`` (host, port)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], upstream: tuple[str, int], verifier: SigV4Verifier,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, read_timeout: float = READ_TIMEOUT_S) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="sigv4-proxy", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: SigV4Proxy
    # HTTP/1.1 for Expect: 100-continue (a refused client never sends its body), yet one request per connection:
    # every answer says Connection: close, so there is no keep-alive bookkeeping.
    protocol_version = "HTTP/1.1"
    _expects_continue = False
    _answered = False
    _framing: Framing | None = None  # None until the headers declared one
    _body_read = False

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # the client went away; nobody is left to answer
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        self._expects_continue = True  # 100 Continue goes out once the headers pass, right before the body is read
        return True

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (request line, header lines, method): the API's JSON, not an HTML page,
        # after a status line even when the request line was too broken to tell its HTTP version.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        name = re.sub(r"[^A-Za-z]", "", HTTPStatus(code).phrase.title())
        text = "; ".join(part for part in (message or HTTPStatus(code).phrase, explain) if part)
        self._answer_error(RequestError(code, name, text))

    def _handle(self) -> None:
        self.close_connection = True
        try:
            self._serve()
        except RequestError as exc:
            self._answer_error(exc)
        except TimeoutError:
            self._answer_error(RequestError(408, "RequestTimeout",
                                            f"no data from the client for {self.server.read_timeout:g} s"))
        except ConnectionError:
            pass  # the client went away
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._answer_error(RequestError(500, "InternalError", "internal error; see the logs"))

    def _serve(self) -> None:
        self._framing = framing(self.headers)
        verifier = self.server.verifier
        authorization = verifier.authorization(list(self.headers.items()))
        if isinstance(authorization, Rejection):
            self._forbid(authorization)
            return
        limit = self.server.max_body_bytes
        if self._framing.length > limit:
            declared = str(self.headers["Content-Length"]).strip(" \t")  # as sent: past 18 digits, length is not it
            raise _too_large(f"body is {declared} bytes; the limit is {limit} bytes")
        if authorization.content_sha256 is not None:
            rejection = verifier.verify(authorization, self.command, self.path, authorization.content_sha256)
            if rejection is not None:
                self._forbid(rejection)
                return
        body = self._read_body(self._framing, limit)
        rejection = verifier.verify(authorization, self.command, self.path, hashlib.sha256(body).hexdigest())
        if rejection is not None:
            self._forbid(rejection)
            return
        self._forward(body)

    def _read_body(self, frame: Framing, limit: int) -> bytes:
        if frame.has_body and self._expects_continue:
            self.send_response_only(100)
            self.end_headers()
        body = read_chunked(self.rfile, limit) if frame.chunked else read_length(self.rfile, frame.length)
        self._body_read = True
        return body

    def _forward(self, body: bytes) -> None:
        # The body is read already: an Expect: 100-continue must not make the upstream wait for it.
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP | {"expect"}}
        headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(*self.server.upstream, timeout=UPSTREAM_TIMEOUT_S)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
            self._send(response.status, kept, data, head_length=response.getheader("Content-Length"))
        except (OSError, http.client.HTTPException) as exc:
            self._answer_error(RequestError(502, "BadGateway", f"the local API (chalice local) did not answer: {exc}"))
        finally:
            connection.close()

    def _forbid(self, rejection: Rejection) -> None:
        """API Gateway's own answer to a request its IAM authorization refuses (its header; the body in the
        API's error shape, as the stack's gateway responses give it)."""
        self._log(403, rejection.error_type)
        code = rejection.error_type.removesuffix("Exception")
        self._answer(403, {"error": code, "message": rejection.message}, [("x-amzn-ErrorType", rejection.error_type)])

    def _answer_error(self, error: RequestError) -> None:
        """The API's error shape (chalicelib/entrypoints/api.py), for what the proxy refuses itself."""
        if self._answered:
            return  # a response is on its way already: another would corrupt it
        self._log(error.status, f"{error.error}: {error.message}")
        self._answer(error.status, {"error": error.error, "message": error.message})

    def _answer(self, status: int, payload: dict[str, Any], headers: Sequence[tuple[str, str]] = ()) -> None:
        request_id = str(uuid.uuid4())
        if "error" in payload:
            payload = {**payload, "request_id": request_id}
        self._send(status, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id), *headers],
                   json.dumps(payload, separators=(",", ":")).encode())
        if not self._body_read and (self._framing is None or self._framing.has_body):
            self._linger()

    def _send(self, status: int, headers: Sequence[tuple[str, str]], body: bytes,
              head_length: str | None = None) -> None:
        self._answered = True
        self.close_connection = True
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", head_length if self.command == "HEAD" and head_length else str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _linger(self) -> None:
        """Half-close, then discard what the client still sends for a moment: closing with its body unread
        would reset the connection, and a reset can destroy the answer before the client reads it."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            discarded = 0
            while discarded < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                data = self.connection.recv(64 * 1024)
                if not data:
                    return
                discarded += len(data)
        except OSError:
            pass

    def _log(self, status: int, why: str) -> None:
        path = (getattr(self, "path", "") or "").split("?")[0]  # unset when the request line was unreadable
        print(f"sigv4: {status} {self.command or '-'} {path}: {why}", file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: object) -> None:
        pass  # chalice local logs the requests that reach it; refusals are printed by _log


def start_proxy(host: str, port: int, upstream: tuple[str, int], keys: Mapping[str, Secret],
                region: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> SigV4Proxy:
    """Serve the verifying proxy on ``host:port`` in a background thread."""
    proxy = SigV4Proxy((host, port), upstream, SigV4Verifier(keys, region), max_body_bytes)
    proxy.start()
    return proxy
