"""GET /ingestions through the Chalice app on moto: the ingestions of an object key, those received since a
time or with a status, pages that never skip or repeat, and a 400 naming each bad parameter."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.timefmt import format_ns, parse_timestamp
from tests.handlers.test_app import get, post
from tests.moto_stack import deliver_events, run_processor

ROWS = "timestamp,price,size,symbol\n2024-07-01T14:30:00Z,100,1,LIST\n2024-07-01T14:31:00Z,101,2,LIST\n"


def tick(n: int) -> dict[str, Any]:
    return {"symbol": "LIST", "price": 10 + n, "volume": 1, "timestamp": f"2024-07-01T10:{n % 60:02d}:00Z"}


def posted(stack: dict[str, Any], n: int) -> str:
    response = post(stack, tick(n))
    assert response.status_code == 202
    return str(json.loads(response.body)["ingestion_id"])


def cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def upload(stack: dict[str, Any], key: str, body: str) -> str:
    """Upload a version and deliver its Object Created event (DataIngestion); the version id."""
    version = boto3.client("s3").put_object(Bucket=stack["settings"].bucket_name, Key=key,
                                            Body=body.encode())["VersionId"]
    deliver_events(stack)
    return str(version)


def ids(page: dict[str, Any]) -> list[str]:
    return [item["ingestion_id"] for item in page["ingestions"]]


def every_page(stack: dict[str, Any], path: str, between: Any = None) -> list[dict[str, Any]]:
    """The pages of a listing, following next_url; ``between`` runs before each next page is asked for."""
    pages = []
    while path:
        status, page = get(stack, path)
        assert status == 200, page
        pages.append(page)
        assert (page["next"] is None) == (page["next_url"] is None)
        path = page["next_url"]
        if path and between is not None:
            between()
    return pages


def test_an_object_keys_versions_are_listed_newest_first_with_their_statuses(stack: dict[str, Any]) -> None:
    bucket = stack["settings"].bucket_name
    first = upload(stack, "incoming/list me.csv", ROWS)
    run_processor(stack)
    deliver_events(stack)
    second = upload(stack, "incoming/list me.csv", ROWS.replace(",100,", ",200,"))
    upload(stack, "incoming/other.csv", ROWS)
    status, page = get(stack, "/ingestions?source=s3&key=" + quote("incoming/list me.csv", safe=""))
    assert status == 200 and page["next"] is None and page["next_url"] is None
    summaries = [(i["status"], i["object"]["version_id"], i["source"], i["format"], i["accepted"], i["rejected"])
                 for i in page["ingestions"]]
    assert summaries == [("queued", second, "s3", "csv", 0, 0), ("superseded", first, "s3", "csv", 2, 0)]
    newest, older = page["ingestions"]
    assert parse_timestamp(newest["received_at"]) > parse_timestamp(older["received_at"])
    assert newest["status_url"] == f"/ingestions/{newest['ingestion_id']}"
    assert get(stack, newest["status_url"])[1]["status"] == "queued"  # what GET /ingestions/{id} says
    assert get(stack, older["status_url"])[1]["status"] == "superseded"
    assert {i["object"]["key"] for i in page["ingestions"]} == {"incoming/list me.csv"}
    assert {i["object"]["bucket"] for i in page["ingestions"]} == {bucket}

    run_processor(stack)
    same = get(stack, f"/ingestions?key=incoming/list%20me.csv&bucket={bucket}")[1]  # source=s3 is implied
    assert [(i["ingestion_id"], i["status"], i["accepted"]) for i in same["ingestions"]] == [
        (newest["ingestion_id"], "processed", 2), (older["ingestion_id"], "superseded", 2)]
    assert ids(get(stack, "/ingestions?key=incoming/list%20me.csv&status=superseded")[1]) == [older["ingestion_id"]]
    assert ids(get(stack, "/ingestions?key=incoming/list%20me.csv&limit=1")[1]) == [newest["ingestion_id"]]
    pages = every_page(stack, "/ingestions?key=incoming/list%20me.csv&limit=1")
    assert [ids(p) for p in pages] == [[newest["ingestion_id"]], [older["ingestion_id"]]]
    assert get(stack, "/ingestions?key=incoming/never.csv")[1] == {"ingestions": [], "next": None, "next_url": None}


def test_since_status_and_source_filter_on_the_status_the_api_answers(stack: dict[str, Any]) -> None:
    early = [posted(stack, n) for n in range(2)]
    run_processor(stack)
    since = time.time_ns()
    time.sleep(0.002)  # ids carry their receipt time in ms
    late = posted(stack, 2)
    upload(stack, "incoming/bad.csv", "no,usable,header\n1,2,3\n")
    rejected = ids(get(stack, "/ingestions?key=incoming/bad.csv")[1])
    assert len(rejected) == 1

    everything = get(stack, "/ingestions")[1]
    assert ids(everything) == [*rejected, late, *reversed(early)]
    assert [i["status"] for i in everything["ingestions"]] == ["rejected", "queued", "processed", "processed"]
    assert "object" not in everything["ingestions"][1]
    assert everything["ingestions"][0]["object"]["key"] == "incoming/bad.csv"
    assert ids(get(stack, f"/ingestions?since={since}")[1]) == [*rejected, late]  # epoch ns
    assert ids(get(stack, f"/ingestions?since={quote(format_ns(since))}")[1]) == [*rejected, late]  # ISO 8601
    assert ids(get(stack, "/ingestions?since=2262-01-01T00:00:00Z")[1]) == []
    assert ids(get(stack, "/ingestions?status=processed")[1]) == list(reversed(early))
    assert ids(get(stack, "/ingestions?status=queued&source=api")[1]) == [late]
    assert ids(get(stack, "/ingestions?status=rejected")[1]) == rejected
    assert ids(get(stack, "/ingestions?source=s3")[1]) == rejected
    assert ids(get(stack, f"/ingestions?source=api&since={since}")[1]) == [late]
    assert ids(get(stack, "/ingestions?status=superseded")[1]) == []
    run_processor(stack)
    assert ids(get(stack, "/ingestions?status=processed")[1]) == [late, *reversed(early)]
    assert ids(get(stack, "/ingestions?status=queued")[1]) == []


def test_pages_never_skip_or_repeat_while_new_ingestions_arrive(stack: dict[str, Any]) -> None:
    existing = [posted(stack, n) for n in range(7)]
    upload(stack, "incoming/page.csv", ROWS)
    existing.append(ids(get(stack, "/ingestions?key=incoming/page.csv")[1])[0])
    newest_first = list(reversed(existing))
    assert ids(get(stack, "/ingestions")[1]) == newest_first
    for limit in (1, 2, 3, 5, 8):
        arrived: list[str] = []
        pages = every_page(stack, f"/ingestions?limit={limit}",
                           between=lambda arrived=arrived: arrived.append(posted(stack, 50 + len(arrived))))
        assert [i for page in pages for i in ids(page)] == newest_first, limit
        assert all(len(page["ingestions"]) == limit for page in pages[:-1])
        newest_first = list(reversed(arrived)) + newest_first  # the next walk starts above them
        assert ids(get(stack, "/ingestions?limit=1000")[1]) == newest_first
    # With a filter, a page examines `limit` ingestions and keeps those that pass: none are lost either.
    pages = every_page(stack, "/ingestions?limit=2&source=s3")
    assert [i for page in pages for i in ids(page)] == [existing[-1]]
    run_processor(stack)
    posted(stack, 99)
    pages = every_page(stack, "/ingestions?limit=3&status=processed")
    assert [i for page in pages for i in ids(page)] == newest_first
    status, first = get(stack, "/ingestions?limit=1&since=2020-01-01")
    assert status == 200 and first["next_url"].startswith("/ingestions?since=2020-01-01T00%3A00%3A00Z&limit=1&next=")


@pytest.mark.parametrize(("query", "parameter", "fragment"), [
    ("foo=1", "foo", "unknown parameter 'foo'"),
    ("symbol=AAPL&ingestion_id=x", "ingestion_id", "unknown parameters 'ingestion_id', 'symbol'"),
    ("source=ftp", "source", "must be one of api, s3"),
    ("source=", "source", "must be one of api, s3"),
    ("status=done", "status", "must be one of scanning, queued, processing, processed, rejected, superseded"),
    ("status=PROCESSED", "status", "must be one of"),
    ("limit=0", "limit", "between 1 and 1000"),
    ("limit=1001", "limit", "between 1 and 1000"),
    ("limit=1_0", "limit", "digits 0-9"),
    ("since=yesterday", "since", "is not ISO 8601"),
    ("since=-5", "since", "must be between 1970"),
    ("since=2263-01-01", "since", "must be between 1970"),
    ("next=%25%25%25", "next", "not a cursor this API returned"),
    ("next=" + "A" * 200, "next", "not a cursor this API returned"),
    ("next=" + cursor("123"), "next", "not a cursor this API returned"),  # no id part
    ("next=" + cursor("123.x"), "next", "not a cursor this API returned"),  # not an ingestion id
    ("next=" + cursor("-5.api-1"), "next", "not a cursor this API returned"),
    ("next=" + cursor(f"{2**63}."), "next", "not a cursor this API returned"),  # past the end of time
    ("since=2024-07-02&next=" + cursor("1719792000000000000."), "next", "points before since"),  # 2024-07-01
    ("key=", "key", "1 to 1024 bytes"),
    ("key=" + "%C3%A9" * 513, "key", "1 to 1024 bytes"),
    ("key=a.csv&source=api", "source", "source must be s3 when key is given"),
    ("bucket=market-data-bucket-dev", "bucket", "bucket needs key"),
    ("key=a.csv&bucket=someone-elses", "bucket", "the stage's bucket"),
])
def test_bad_parameters_get_a_400_naming_the_parameter(stack: dict[str, Any], query: str, parameter: str,
                                                       fragment: str) -> None:
    status, body = get(stack, "/ingestions?" + query)
    assert status == 400, body
    assert body["error"] == "InvalidQuery" and parameter in body["message"] and fragment in body["message"], body


ODD = st.one_of(st.text(max_size=30), st.sampled_from(["\u00b2", "1_0", "-0", "1e999", "%", "2262-04-12", "\x00",
                                                       "api", "s3", "queued", "MTIzLmFwaS0x"]))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["source", "key", "bucket", "since", "status", "limit", "next", "x"]),
                              ODD, max_size=5))
def test_any_query_is_answered_with_a_200_or_a_400(stack: dict[str, Any], params: dict[str, str]) -> None:
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    status, body = get(stack, "/ingestions?" + query)
    assert status in (200, 400), body
    assert "ingestions" in body or body["error"] == "InvalidQuery"
