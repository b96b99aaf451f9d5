"""The Chalice handlers end to end in-process: REST -> queue -> processor -> event -> aggregator -> REST."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest

from tests.moto_stack import deliver_events, drain_queue, run_processor


def post(stack: dict[str, Any], body: Any, content_type: str = "application/json", **headers: str) -> Any:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return stack["client"].http.post("/ingest", headers={"Content-Type": content_type, **headers},
                                     body=raw.encode() if isinstance(raw, str) else raw)


def get(stack: dict[str, Any], path: str) -> tuple[int, dict[str, Any]]:
    response = stack["client"].http.get(path)
    return response.status_code, json.loads(response.body)


def test_ticks_posted_become_bars(stack: dict[str, Any]) -> None:
    ticks = [
        {"symbol": "AAPL", "price": 150.25, "volume": 100, "timestamp": "2024-07-01T14:30:05Z"},
        {"symbol": "AAPL", "price": "150.75", "volume": 300, "timestamp": "2024-07-01T14:30:40Z"},
        {"symbol": "AAPL", "price": 150.5, "volume": 100, "timestamp": 1719844300},  # 14:31:40 epoch seconds
    ]
    response = post(stack, ticks)
    assert response.status_code == 202
    body = json.loads(response.body)
    assert body["accepted"] == 3 and body["status"] == "queued" and body["ingestion_id"] in body["status_url"]
    run_processor(stack)
    events = deliver_events(stack)
    assert [e["detail-type"] for e, _ in events] == ["TicksProcessed"]  # one event per batch
    status, bars = get(stack, "/bars?symbol=AAPL&interval=1m")
    assert status == 200
    got = [(b["start"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["trades"]) for b in bars["bars"]]
    assert got == [
        ("2024-07-01T14:30:00Z", "150.25", "150.75", "150.25", "150.75", "400", 2),
        ("2024-07-01T14:31:00Z", "150.5", "150.5", "150.5", "150.5", "100", 1),
    ]
    assert bars["bars"][0]["vwap"].startswith("150.625")
    status, five = get(stack, "/bars?symbol=AAPL&interval=5m")
    assert [(b["open"], b["close"], b["volume"], b["trades"]) for b in five["bars"]] == [("150.25", "150.5", "500", 3)]
    status, ingestion = get(stack, f"/ingestions/{body['ingestion_id']}")
    assert status == 200 and ingestion["status"] == "processed" and ingestion["accepted"] == 3
    status, symbols = get(stack, "/symbols")
    assert symbols["symbols"] == [{"symbol": "AAPL", "latest_bar": "2024-07-01T14:31:00Z"}]


def test_object_created_event_ingests_the_file(stack: dict[str, Any]) -> None:
    s3 = boto3.client("s3")
    rows = "ts,price,size\n" + "".join(f"2024-07-01T00:0{i}:00Z,{100 + i},{i + 1}\n" for i in range(3))
    s3.put_object(Bucket=stack["settings"].bucket_name, Key="incoming/es.csv.gz", Body=gzip.compress(rows.encode()),
                  Metadata={"symbol": "ESU4"})
    events = deliver_events(stack)  # S3's EventBridge notification -> DataIngestion
    assert [e["detail-type"] for e, _ in events] == ["Object Created"]
    run_processor(stack)
    deliver_events(stack)
    status, bars = get(stack, "/bars?symbol=ESU4&interval=1m")
    assert status == 200
    assert [(b["open"], b["volume"]) for b in bars["bars"]] == [("100", "1"), ("101", "2"), ("102", "3")]


@pytest.mark.parametrize("report_item_failures", [True, False])
def test_a_poison_message_goes_to_the_dlq_at_once_and_never_loses_the_rest_of_its_batch(
        stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, report_item_failures: bool) -> None:
    from dataclasses import replace

    monkeypatch.setattr(stack["app"], "settings", replace(stack["settings"],
                                                          report_batch_item_failures=report_item_failures))
    tick = {"symbol": "MSFT", "price": 410, "volume": 5, "timestamp": "2024-07-01T10:00:00Z"}
    assert post(stack, tick).status_code == 202
    good = drain_queue(stack["queue_url"])[0]["Body"]
    client = stack["client"]
    event = client.events.generate_sqs_event([good, "{not json"], queue_name=stack["settings"].queue_name)
    # No retry can help a message that is not one of the pipeline's: it is moved to the dead-letter queue
    # now, and the batch succeeds (with or without ReportBatchItemFailures on the trigger).
    assert client.lambda_.invoke("DataProcessor", event).payload == {"batchItemFailures": []}
    dlq_url = boto3.client("sqs").get_queue_url(QueueName=stack["settings"].dead_letter_queue_name)["QueueUrl"]
    assert [m["Body"] for m in drain_queue(dlq_url)] == ["{not json"]
    deliver_events(stack)
    status, bars = get(stack, "/bars?symbol=MSFT&interval=1m")
    assert status == 200
    assert [(b["open"], b["volume"]) for b in bars["bars"]] == [("410", "5")]


@pytest.mark.parametrize("body, content_type, status, fragment", [
    (b'{"symbol":"AAPL","price":-1,"volume":1}', "application/json", 400, "must be > 0"),
    (b'{"symbol":"AAPL","price":1', "application/json", 400, "invalid JSON"),
    (b'{"symbol":"AAPL","Price":1,"price":2,"volume":1}', "application/json", 400, "given more than once"),
    (b"symbol,price\nAAPL,1\n", "text/csv", 400, "volume"),
    (b"", "application/json", 400, "empty"),
    (b"a", "text/plain", 415, "nsupported"),
    (b" " * (7 * 1024 * 1024), "application/json", 413, "limit"),
])
def test_bad_requests_get_a_precise_4xx_and_nothing_is_queued(stack: dict[str, Any], body: bytes, content_type: str,
                                                              status: int, fragment: str) -> None:
    response = post(stack, body, content_type)
    assert response.status_code == status
    text = response.body.decode()
    assert fragment in text and "Traceback" not in text
    assert drain_queue(stack["queue_url"]) == []


def test_idempotency_key_replays_the_first_response(stack: dict[str, Any]) -> None:
    tick = {"symbol": "IBM", "price": 190, "volume": 7, "timestamp": "2024-07-01T10:00:00Z"}
    first = json.loads(post(stack, tick, **{"Idempotency-Key": "abc-1"}).body)
    again = post(stack, tick, **{"Idempotency-Key": "abc-1"})
    assert again.status_code == 202 and json.loads(again.body)["ingestion_id"] == first["ingestion_id"]
    assert len(drain_queue(stack["queue_url"])) == 1
    conflict = post(stack, {**tick, "volume": 8}, **{"Idempotency-Key": "abc-1"})
    assert conflict.status_code == 409


def test_read_routes_answer_bad_queries_with_400_and_unknown_ids_with_404(stack: dict[str, Any]) -> None:
    assert get(stack, "/bars?symbol=AAPL&interval=7m")[0] == 400
    assert get(stack, "/bars?interval=1m")[0] == 400
    assert get(stack, "/bars?symbol=AAPL&start=yesterday")[0] == 400
    assert get(stack, "/bars?symbol=AAPL&next=%%%")[0] == 400
    status, body = get(stack, "/ingestions/api-unknown")
    assert status == 404 and body["error"] == "NotFound"


def test_chart_serves_the_page_as_html_and_answers_a_bad_query_as_get_bars_would(stack: dict[str, Any]) -> None:
    response = stack["client"].http.get("/chart?symbol=AAPL&interval=5m")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"].endswith("; frame-ancestors 'none'")
    page = response.body.decode()
    assert page.startswith("<!DOCTYPE html>") and '"symbol":"AAPL","interval":"5m"' in page
    assert '"symbol":null,"interval":"1m"' in stack["client"].http.get("/chart").body.decode()
    status, body = get(stack, "/chart?symbol=AAPL&interval=2m")
    assert status == 400 and body["error"] == "InvalidQuery" and "interval" in body["message"]
    status, body = get(stack, "/chart?symbol=%3Cscript%3E")
    assert status == 400 and body["error"] == "InvalidQuery"


def test_a_chunk_throttled_on_its_last_receive_shows_as_failed_until_redriven(
        stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from chalicelib.adapters.dynamodb.market import MarketRecords
    from chalicelib.entrypoints.cli import main as cli

    tick = {"symbol": "LASTTRY", "price": 10, "volume": 2, "timestamp": "2024-07-01T10:00:00Z"}
    posted = json.loads(post(stack, tick).body)
    [message] = drain_queue(stack["queue_url"])
    client = stack["client"]
    event = client.events.generate_sqs_event([message["Body"]], queue_name=stack["settings"].queue_name)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"  # the redrive policy's last receive
    real_put_partials = MarketRecords.put_partials_of

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "BatchWriteItem")

    monkeypatch.setattr(MarketRecords, "put_partials_of", throttled)
    with pytest.raises(Exception, match="1 of 1 message"):  # failed: SQS moves it to the dead-letter queue now
        client.lambda_.invoke("DataProcessor", event)
    status, ingestion = get(stack, f"/ingestions/{posted['ingestion_id']}")
    assert status == 200 and ingestion["status"] == "failed"
    assert ingestion["errors"][0]["location"] == "chunk 0"
    assert "ThrottlingException" in ingestion["errors"][0]["reason"]
    assert "moved to the dead-letter queue after 5 attempts" in ingestion["errors"][0]["reason"]

    monkeypatch.setattr(MarketRecords, "put_partials_of", real_put_partials)  # the throttling is over
    sqs = boto3.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName=stack["settings"].dead_letter_queue_name)["QueueUrl"]
    sqs.send_message(QueueUrl=dlq_url, MessageBody=message["Body"])  # what the redrive policy did
    assert cli(["--stage", "dev", "dlq", "redrive", "--yes"]) == 0
    run_processor(stack)
    deliver_events(stack)
    status, ingestion = get(stack, f"/ingestions/{posted['ingestion_id']}")
    assert (ingestion["status"], ingestion["accepted"], ingestion["errors"]) == ("processed", 1, [])
    status, bars = get(stack, "/bars?symbol=LASTTRY")
    assert [(b["open"], b["volume"]) for b in bars["bars"]] == [("10", "2")]
