"""A reverse proxy that checks AWS Signature V4 the way API Gateway's IAM authorization does, for `chalice local`.

`chalice local` ignores IAM authorizers. With `python -m localrun --require-sigv4` this proxy takes the API
port: a request without a valid signature (service execute-api, the emulator's credentials) gets API
Gateway's 403 answer; any other request goes to `chalice local` on an internal port unchanged.

The signature is recomputed with botocore's SigV4 signer from the request as received (its method, path,
query, the headers it says it signed, the hash of its body, its X-Amz-Date) and the secret of its access key.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UPSTREAM_TIMEOUT_S = 120
# Per connection, not end to end (RFC 9110 7.6.1): never forwarded in either direction.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "proxy-connection"}
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.")


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


def _incomplete(message: str) -> Rejection:
    return Rejection("IncompleteSignatureException", message)


class _Recomputed(SigV4Auth):
    """botocore's signer, fed exactly what the client says it signed and a given canonical query string."""

    def __init__(self, credentials: Credentials, region: str, service: str, signed: Sequence[str], query: str) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed
        self._query = query

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # Not botocore's selection: a client may sign headers botocore never would (e.g. user-agent).
        selected = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                selected[name] = value
        return selected

    def canonical_query_string(self, request: AWSRequest) -> str:
        return self._query


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
    """Checks a request's SigV4 Authorization header as API Gateway's IAM authorization does."""

    def __init__(self, keys: Mapping[str, Secret], region: str, service: str = SERVICE,
                 max_skew: timedelta = MAX_SKEW, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._keys = dict(keys)
        self._region = region
        self._service = service
        self._max_skew = max_skew
        self._now = now

    def check(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> Rejection | None:
        """None if the request is signed correctly, else why not. ``target`` is the request line's path."""
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
        signed = fields["SignedHeaders"].lower().split(";")
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

        body_hash = hashlib.sha256(body).hexdigest()
        claimed = (by_name.get("x-amz-content-sha256") or [body_hash])[0].strip().lower()
        url = urlsplit(target)
        request = AWSRequest(method=method.upper(), url=f"http://{url.netloc or 'host'}{url.path or '/'}", data=body)
        request.headers = HTTPHeaders()
        for name in signed:
            for value in by_name.get(name, []):
                request.headers[name] = value
        request.context["timestamp"] = amz_date
        credentials = Credentials(access_key, secret.secret_key, token)
        given = fields["Signature"].strip().lower()
        expected: tuple[str, str] = ("", "")
        for query in _query_forms(url.query):
            signer = _Recomputed(credentials, region, service, signed, query)
            canonical = signer.canonical_request(request)
            string_to_sign = signer.string_to_sign(request, canonical)
            # botocore trusts a signed x-amz-content-sha256 as the body's hash; API Gateway hashes the body.
            if claimed == body_hash and hmac.compare_digest(signer.signature(string_to_sign, request), given):
                return None
            expected = expected if expected[0] else (canonical, string_to_sign)
        return Rejection("InvalidSignatureException",
                         f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{expected[0]}'\n\n"
                         f"The String-to-Sign should have been\n'{expected[1]}'\n")


class SigV4Proxy(ThreadingHTTPServer):
    """Listens on the API's address; verifies, then forwards to ``upstream`` (host, port)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], upstream: tuple[str, int], verifier: SigV4Verifier) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream
        self.verifier = verifier

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="sigv4-proxy", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: SigV4Proxy
    protocol_version = "HTTP/1.0"  # one request per connection: no keep-alive bookkeeping in a dev proxy

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        body = self._read_body()
        rejection = self.server.verifier.check(self.command, self.path, list(self.headers.items()), body)
        if rejection is not None:
            print(f"sigv4: 403 {self.command} {self.path.split('?')[0]}: {rejection.error_type}",
                  file=sys.stderr, flush=True)
            payload = json.dumps({"message": rejection.message}).encode()
            self._send(403, [("Content-Type", "application/json"), ("x-amzn-ErrorType", rejection.error_type)],
                       payload)
            return
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
            message = json.dumps({"message": f"the local API (chalice local) did not answer: {exc}"}).encode()
            self._send(502, [("Content-Type", "application/json")], message)
        finally:
            connection.close()

    def _send(self, status: int, headers: Sequence[tuple[str, str]], body: bytes,
              head_length: str | None = None) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", head_length if self.command == "HEAD" and head_length else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # chalice local logs the requests that reach it; rejections are printed in _handle


def start_proxy(host: str, port: int, upstream: tuple[str, int], keys: Mapping[str, Secret],
                region: str) -> SigV4Proxy:
    """Serve the verifying proxy on ``host:port`` in a background thread."""
    proxy = SigV4Proxy((host, port), upstream, SigV4Verifier(keys, region))
    proxy.start()
    return proxy
