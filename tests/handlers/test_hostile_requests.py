"""Requests a hostile or careless client sends, through the Chalice app: each gets a precise 4xx naming the
parameter (never a 5xx), and nothing in a response comes from the request's Host header."""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.timefmt import END_OF_TIME_NS, format_ns
from tests.handlers.test_app import get, post
from tests.moto_stack import ROOT, deliver_events, moto_stack, run_processor

TICKS = [{"symbol": "HOST", "price": 100 + i, "volume": 1, "timestamp": f"2024-07-01T10:0{i}:00Z"} for i in range(3)]


def cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def position_cursor(index: int, start_ns: int) -> str:
    """A cursor of the API's layout (version, symbol index, bar start, tag) whose tag belongs to no query."""
    return base64.urlsafe_b64encode(struct.pack(">BBq8s", 1, index, start_ns, b"\0" * 8)).decode()


@pytest.fixture(scope="module")
def with_bars() -> Iterator[dict[str, Any]]:
    """One stack for the module's read-only queries, holding the three 1m bars of TICKS."""
    from chalice.test import Client

    with pytest.MonkeyPatch.context() as monkeypatch, moto_stack(monkeypatch) as resources, \
            Client(resources["app"].app, stage_name="dev", project_dir=str(ROOT)) as client:
        stack = {"client": client, **resources}
        assert post(stack, TICKS).status_code == 202
        run_processor(stack)
        deliver_events(stack)
        yield stack


@pytest.mark.parametrize(("query", "parameter", "fragment"), [
    ("limit=10_0", "limit", "digits 0-9"),
    ("limit=%D9%A5", "limit", "digits 0-9"),  # Arabic-Indic 5
    ("limit=%EF%BC%95", "limit", "digits 0-9"),  # full-width 5
    ("limit=%C2%B2", "limit", "digits 0-9"),  # superscript 2
    ("limit=-1", "limit", "digits 0-9"),
    ("limit=0", "limit", "between 1 and 10000"),
    ("limit=10001", "limit", "between 1 and 10000"),
    ("limit=99999999999999999999999", "limit", "between 1 and 10000"),
    ("start=0001-01-01&end=1969-01-01", "start", "must be between 1970-01-01T00:00:00Z"),
    ("end=1969-01-01", "end", "must be between 1970"),
    ("start=2263-01-01", "start", "2262-04-11T23:47:16.854775807Z"),
    ("start=-5", "start", "must be between 1970"),
    ("start=2024-07-02&end=2024-07-01", "end", "end must be after start"),
    ("start=2024-07-01&end=2024-07-01", "end", "end must be after start"),
    ("start=%D9%A1%D9%A7%D9%A1%D9%A9", "start", "is not ISO 8601"),
    ("start=2024-07-01T1%C2%B2:00:00Z", "start", "is not ISO 8601"),
    ("next=" + cursor("-5"), "next", "not a cursor this API returned"),
    ("next=" + cursor("1_000"), "next", "not a cursor this API returned"),
    ("next=" + cursor("\u0661\u0662"), "next", "not a cursor this API returned"),
    ("next=" + cursor("9" * 30), "next", "not a cursor this API returned"),
    ("next=%%%", "next", "not a cursor this API returned"),
    ("end=2030-01-01&next=" + position_cursor(0, END_OF_TIME_NS - 1), "next", "points outside [start, end)"),
    ("start=2024-07-01T10:01:00Z&next=" + position_cursor(0, 10**15), "next", "points outside [start, end)"),
    ("next=" + position_cursor(0, 10**18), "next", "not a cursor of this query"),  # a tag of no query
    ("next=" + position_cursor(3, 10**18), "next", "not a cursor of this query"),  # no fourth symbol
    ("symbol=A%C2%A0B", "symbol", "must be 1-32 letters"),
])
def test_bad_bar_queries_get_a_400_naming_the_parameter(
        with_bars: dict[str, Any], query: str, parameter: str, fragment: str) -> None:
    path = "/bars?" + ("" if query.startswith("symbol=") else "symbol=HOST&") + query
    status, body = get(with_bars, path)
    assert status == 400, body
    assert body["error"] == "InvalidQuery" and parameter in body["message"]
    assert fragment in body["message"], body


def test_a_cursor_at_the_end_of_the_range_gives_an_empty_page(with_bars: dict[str, Any]) -> None:
    status, page = get(with_bars, "/bars?symbol=HOST&limit=2")
    assert status == 200 and [b["open"] for b in page["bars"]] == ["100", "101"] and page["next"]
    end = quote(page["bars"][-1]["start"]).replace("%3A", ":")
    status, body = get(with_bars, f"/bars?symbol=HOST&end={end}&next={page['next']}")
    assert status == 400 and "points outside" in body["message"]
    status, rest = get(with_bars, f"/bars?symbol=HOST&next={page['next']}")
    assert status == 200 and [b["open"] for b in rest["bars"]] == ["102"] and rest["next"] is None


def test_the_widest_range_is_answered(with_bars: dict[str, Any]) -> None:
    status, body = get(with_bars, f"/bars?symbol=HOST&start=1970-01-01T00:00:00Z&end={END_OF_TIME_NS - 1}")
    assert status == 200 and len(body["bars"]) == 3
    assert format_ns(END_OF_TIME_NS - 1) == "2262-04-11T23:47:16.854775807Z"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:443/phish?", "127.0.0.1:8000"])
def test_status_url_never_comes_from_the_host_header(stack: dict[str, Any], host: str) -> None:
    response = stack["client"].http.post("/ingest", headers={"Content-Type": "application/json", "Host": host},
                                         body=json.dumps(TICKS[0]).encode())
    assert response.status_code == 202
    body = json.loads(response.body)
    assert body["status_url"] == f"/ingestions/{body['ingestion_id']}"  # no base URL configured: a path


def test_status_url_uses_the_configured_base_url(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.setattr(stack["app"], "settings", replace(stack["settings"], api_base_url="https://api.example.com/v1"))
    response = stack["client"].http.post("/ingest", headers={"Content-Type": "application/json", "Host": "evil"},
                                         body=json.dumps(TICKS[0]).encode())
    body = json.loads(response.body)
    assert body["status_url"] == f"https://api.example.com/v1/ingestions/{body['ingestion_id']}"


@pytest.mark.parametrize("ingestion_id", ["api-%C2%B2", "s3-" + "0" * 200, "..%2F..%2Fetc", "api-ABC", "x"])
def test_unknown_or_malformed_ingestion_ids_are_404(stack: dict[str, Any], ingestion_id: str) -> None:
    status, body = get(stack, f"/ingestions/{ingestion_id}")
    assert status == 404 and body["error"] == "NotFound"


@pytest.mark.parametrize("key", ["caf\u00e9", "a" * 129, "tab\there", ""])
def test_a_bad_idempotency_key_is_a_400(stack: dict[str, Any], key: str) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    response = stack["client"].http.post("/ingest", headers=headers, body=json.dumps(TICKS[0]).encode())
    assert response.status_code == 400 and "Idempotency-Key" in json.loads(response.body)["message"]


LAMBDA_SYNC_PAYLOAD_BYTES = 6_000_000  # "6 MB" per synchronous invocation, read as decimal megabytes to be safe
API_GATEWAY_HEADER_BYTES = 10_240  # API Gateway's limit on a request's headers


def proxy_event(body: str) -> dict[str, Any]:
    """API Gateway's proxy event for a POST /ingest with the largest headers it lets through, given twice
    (headers and multiValueHeaders) as API Gateway does."""
    headers = {"Content-Type": "application/json", "X-Padding": "p" * (API_GATEWAY_HEADER_BYTES - 40)}
    return {
        "resource": "/ingest", "path": "/ingest", "httpMethod": "POST", "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": "/ingest", "httpMethod": "POST", "stage": "api", "requestId": "r" * 36,
                           "identity": {"userArn": "arn:aws:iam::123456789012:user/" + "u" * 64,
                                        "sourceIp": "203.0.113.10", "userAgent": "a" * 256},
                           "domainName": "abcdefghij.execute-api.us-east-1.amazonaws.com", "apiId": "abcdefghij"},
        "body": body, "isBase64Encoded": False,
    }


def test_a_body_at_the_limit_always_fits_the_lambda_event_and_one_byte_more_is_the_apps_413(
        stack: dict[str, Any]) -> None:
    limit = stack["settings"].max_body_bytes
    # The worst case: every byte a control character, which JSON spells \u00XX (6 bytes).
    worst = "\x01" * limit
    assert len(json.dumps(proxy_event(worst)).encode()) <= LAMBDA_SYNC_PAYLOAD_BYTES
    response = post(stack, b" " * (limit + 1))
    assert response.status_code == 413
    assert json.loads(response.body)["message"] == f"body is {limit + 1} bytes; the limit is {limit} bytes"
    assert post(stack, b" " * limit).status_code == 400  # at the limit: read, and answered for what it is


# ------------------------------------------------------------------------------------------ fuzzing the routes
HTTP_EXAMPLES = max(50, int(os.environ.get("FUZZ_EXAMPLES", "200")) // 2)
ROUTE_FUZZ = settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
odd_text = st.one_of(st.text(max_size=40), st.sampled_from(["\u00b2", "1_0", "\uff15", "-0", "1e999", "%", "&", "=",
                                                            "2262-04-12", "0001-01-01", "\x00"]))


def assert_answered(response: Any, allowed: set[int]) -> dict[str, Any]:
    text = response.body.decode()
    assert response.status_code in allowed, text[:300]
    assert "Traceback" not in text and 'File "' not in text
    return dict(json.loads(text))


@ROUTE_FUZZ
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       content_type=st.one_of(st.sampled_from(["application/json", "application/x-ndjson", "text/csv",
                                               "application/json; charset=latin-1", "text/plain"]),
                              st.text(max_size=20)),
       key=st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=140)))
def test_post_ingest_answers_any_body_with_a_202_or_a_4xx(
        with_bars: dict[str, Any], body: bytes, content_type: str, key: str | None) -> None:
    headers = {"Content-Type": content_type, **({"Idempotency-Key": key} if key is not None else {})}
    answer = assert_answered(with_bars["client"].http.post("/ingest", headers=headers, body=body),
                             {202, 400, 409, 413, 415})
    assert "accepted" in answer or ("error" in answer or "Code" in answer)


@ROUTE_FUZZ
@given(params=st.dictionaries(st.sampled_from(["symbol", "interval", "start", "end", "limit", "next", "x"]), odd_text,
                              max_size=6))
def test_get_bars_answers_any_query_with_a_200_or_a_400(with_bars: dict[str, Any], params: dict[str, str]) -> None:
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    answer = assert_answered(with_bars["client"].http.get("/bars?symbol=HOST&" + query), {200, 400})
    assert "bars" in answer or answer["error"] == "InvalidQuery"
