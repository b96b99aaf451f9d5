"""Exports that do not describe themselves, in as they are: header-less CSV, other column names, text times
in a strftime format and a local time zone, a symbol for every row. The same options through POST /ingest's
query string and through S3 object metadata; bars checked against bars computed here from the same rows."""

from __future__ import annotations

import calendar
import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from tests.moto_stack import deliver_events, drain_queue, run_processor
from tests.real_exports import BITCOINCHARTS, HL_FORMAT, HYPERLIQUID, KRAKEN, chicago, epoch_rows, reference_bars


def as_compared(bar: dict[str, Any]) -> dict[str, Any]:
    start = calendar.timegm(datetime.strptime(bar["start"], "%Y-%m-%dT%H:%M:%SZ").timetuple())
    return {"start": start, **{k: Decimal(bar[k]) for k in ("open", "high", "low", "close", "volume")},
            "trades": bar["trades"], "vwap": None if bar["vwap"] is None else Decimal(bar["vwap"])}


def post(stack: dict[str, Any], body: str, params: dict[str, str], content_type: str = "text/csv") -> Any:
    return stack["client"].http.post("/ingest?" + urlencode(params), headers={"Content-Type": content_type},
                                     body=body.encode())


def upload(stack: dict[str, Any], key: str, body: str, metadata: dict[str, str]) -> dict[str, Any]:
    """Put an object, run the pipeline over it, and answer its ingestion's status."""
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack["settings"].bucket_name, Key=key, Body=body.encode(), Metadata=metadata)
    [(_, planned)] = deliver_events(stack)
    run_processor(stack)
    deliver_events(stack)
    return get(stack, f"/ingestions/{planned['ingestion_id']}")[1]


def process(stack: dict[str, Any]) -> None:
    run_processor(stack)
    deliver_events(stack)


def get(stack: dict[str, Any], path: str) -> tuple[int, dict[str, Any]]:
    response = stack["client"].http.get(path)
    return response.status_code, json.loads(response.body)


def bars_of(stack: dict[str, Any], symbol: str) -> list[dict[str, Any]]:
    status, doc = get(stack, "/bars?" + urlencode({"symbol": symbol, "interval": "1m", "limit": "1000"}))
    assert status == 200, doc
    return [as_compared(bar) for bar in doc["bars"]]


# ------------------------------------------------------------------------------------------ header-less CSV
def test_a_headerless_bitcoincharts_file_through_s3_metadata(stack: dict[str, Any]) -> None:
    status = upload(stack, "bitcoincharts/bitstampUSD.csv", BITCOINCHARTS,
                    {"columns": "timestamp,price,volume", "symbol": "BTC/USD"})
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 10, 0), status
    assert bars_of(stack, "BTC/USD") == reference_bars(epoch_rows(BITCOINCHARTS, 0, 1, 2))


def test_a_headerless_file_through_the_query_string(stack: dict[str, Any]) -> None:
    response = post(stack, BITCOINCHARTS, {"columns": "unixtime,price,amount", "symbol": "BTC/USD"})
    assert response.status_code == 202, response.body
    assert json.loads(response.body)["accepted"] == 10
    process(stack)
    assert bars_of(stack, "BTC/USD") == reference_bars(epoch_rows(BITCOINCHARTS, 0, 1, 2))


def test_skipped_columns_and_a_header_row_sent_as_data(stack: dict[str, Any]) -> None:
    # Columns named "skip" are ignored; a header row in a file said to have none is that line's reject.
    body = "unixtime,venue,price,amount\n" + "".join(
        f"{ts},X,{price},{amount}\n" for ts, price, amount in (line.split(",") for line in BITCOINCHARTS.split()))
    status = upload(stack, "bitcoincharts/with-venue.csv", body,
                    {"columns": "timestamp,skip,price,volume", "symbol": "BTC/USD"})
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 10, 1), status
    assert {e["location"] for e in status["errors"]} == {"line 1"}
    assert bars_of(stack, "BTC/USD") == reference_bars(epoch_rows(BITCOINCHARTS, 0, 1, 2))


# ------------------------------------------------------------------------------------------ Kraken
def test_a_kraken_export_with_the_symbol_as_a_query_parameter(stack: dict[str, Any]) -> None:
    response = post(stack, KRAKEN, {"symbol": "XBT/USD"})
    assert response.status_code == 202, response.body
    answer = json.loads(response.body)
    assert answer["accepted"] == 5
    assert answer["ignored_fields"] == ["market/limit", "miscellaneous"]  # buy/sell is the side
    process(stack)
    assert bars_of(stack, "XBT/USD") == reference_bars(epoch_rows(KRAKEN, 2, 0, 1, header=True))


def test_a_kraken_export_with_the_symbol_in_object_metadata(stack: dict[str, Any]) -> None:
    status = upload(stack, "kraken/XBTUSD.csv", KRAKEN, {"symbol": "XBT/USD"})
    assert (status["status"], status["accepted"]) == ("processed", 5), status
    assert bars_of(stack, "XBT/USD") == reference_bars(epoch_rows(KRAKEN, 2, 0, 1, header=True))


# ------------------------------------------------------------------------------------------ Hyperliquid
def test_a_hyperliquid_export_with_its_time_format_and_zone_through_s3(stack: dict[str, Any]) -> None:
    status = upload(stack, "hyperliquid/fills.csv", HYPERLIQUID,
                    {"timestamp-format": HL_FORMAT, "timezone": "America/Chicago"})
    assert (status["status"], status["accepted"], status["rejected"]) == ("processed", 4, 0), status
    expected = reference_bars(epoch_rows(HYPERLIQUID, 0, 3, 4, chicago, header=True))
    assert bars_of(stack, "ETH") == expected
    assert expected[0]["start"] == calendar.timegm((2024, 8, 7, 14, 51, 0))  # 09:51 CDT is 14:51 UTC


def test_a_hyperliquid_export_renamed_through_the_query_string(stack: dict[str, Any]) -> None:
    # The same export with its own names for every column, mapped explicitly, and the symbol renamed away.
    body = HYPERLIQUID.replace("time,coin,dir,px,sz", "Time (local),Asset,Direction,Fill Price,Fill Size")
    params = {"column_map": "Time (local)=timestamp,Asset=symbol,Fill Price=price,Fill Size=volume",
              "timestamp_format": HL_FORMAT, "timezone": "America/Chicago"}
    response = post(stack, body, params)
    assert response.status_code == 202, response.body
    process(stack)
    assert bars_of(stack, "ETH") == reference_bars(epoch_rows(HYPERLIQUID, 0, 3, 4, chicago, header=True))


def test_a_rename_wins_over_an_alias_and_skip_drops_a_column(stack: dict[str, Any]) -> None:
    # "price" is the fill price's alias, but the export's real trade price is "px": the rename decides.
    body = "symbol,price,px,volume,timestamp\nAAA,1,100,2,2024-08-07T10:00:00Z\nAAA,1,101,3,2024-08-07T10:00:30Z\n"
    response = post(stack, body, {"column_map": "px=price,price=skip"})
    assert response.status_code == 202, response.body
    process(stack)
    [bar] = bars_of(stack, "AAA")
    assert (bar["open"], bar["close"], bar["volume"]) == (Decimal(100), Decimal(101), Decimal(5))


def test_local_times_the_clocks_skipped_are_rejected_and_repeated_ones_read_as_the_first(
        stack: dict[str, Any]) -> None:
    body = ("symbol,price,volume,timestamp\n"
            "DST,10,1,2024-03-10 02:30:00\n"     # skipped in Chicago: 02:00 became 03:00
            "DST,11,1,2024-03-10 03:30:00\n"     # 08:30 UTC
            "DST,12,1,2024-11-03 01:30:00\n")    # shown twice: the first is CDT, 06:30 UTC
    status = upload(stack, "dst.csv", body, {"timezone": "America/Chicago"})
    assert (status["accepted"], status["rejected"]) == (2, 1), status
    assert status["errors"][0]["location"] == "line 2" and "does not exist in America/Chicago" in \
        status["errors"][0]["reason"]
    assert [b["start"] for b in bars_of(stack, "DST")] == [calendar.timegm((2024, 3, 10, 8, 30, 0)),
                                                           calendar.timegm((2024, 11, 3, 6, 30, 0))]


# ------------------------------------------------------------------------------------------ JSON, one set of rules
def test_a_coinbase_record_is_read_the_same_from_the_api_and_from_s3(stack: dict[str, Any]) -> None:
    record = {"time": "2024-08-07T10:00:00.123456Z", "trade_id": 74, "price": "2471.30", "size": "0.5",
              "side": "buy", "product_id": "ETH-USD", "sequence": 123}
    response = post(stack, json.dumps([record]), {}, "application/json")
    assert response.status_code == 202, response.body
    assert json.loads(response.body)["ignored_fields"] == ["sequence"]
    process(stack)
    status = upload(stack, "coinbase/one.json", json.dumps([{**record, "product_id": "ETH-EUR"}]), {})
    assert status["accepted"] == 1
    assert bars_of(stack, "ETH-USD") == bars_of(stack, "ETH-EUR") != []


def test_json_records_take_the_renames_and_time_options(stack: dict[str, Any]) -> None:
    body = "\n".join(json.dumps({"t": "07.08.2024 10:00:05", "ticker_name": "EURX", "p": "1.5", "qty": 2})
                     for _ in range(1)) + "\n"
    response = post(stack, body, {"column_map": "t=timestamp,ticker_name=symbol,p=price",
                                  "timestamp_format": "%d.%m.%Y %H:%M:%S", "timezone": "Europe/Berlin"},
                    "application/x-ndjson")
    assert response.status_code == 202, response.body
    process(stack)
    [bar] = bars_of(stack, "EURX")
    assert bar["start"] == calendar.timegm((2024, 8, 7, 8, 0, 0))  # CEST is UTC+2


# ------------------------------------------------------------------------------------------ bad options
@pytest.mark.parametrize(("params", "named"), [
    ({"columns": "timestamp,price"}, "columns"),                      # no volume
    ({"columns": "timestamp,price,volume,colour", "symbol": "A"}, "columns"),
    ({"columns": "price,price,volume", "symbol": "A"}, "columns"),
    ({"column_map": "coin"}, "column_map"),
    ({"column_map": "coin=colour"}, "column_map"),
    ({"column_map": "a=price,b=price"}, "column_map"),
    ({"timestamp_format": "%H:%M:%S"}, "timestamp_format"),          # no date
    ({"timestamp_format": "%Y-%Q"}, "timestamp_format"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"symbol": "not a symbol!"}, "symbol"),
    ({"colour": "red"}, "colour"),                                   # not a parameter at all
])
def test_a_bad_option_is_a_400_naming_it_and_queues_nothing(stack: dict[str, Any], params: dict[str, str],
                                                              named: str) -> None:
    response = post(stack, "symbol,price,volume\nA,1,1\n", params)
    assert response.status_code == 400, response.body
    answer = json.loads(response.body)
    assert answer["error"] == "InvalidQuery" and named in answer["message"], answer
    assert drain_queue(stack["queue_url"]) == []


@pytest.mark.parametrize(("metadata", "named"), [
    ({"columns": "timestamp,price"}, "x-amz-meta-columns"),
    ({"column-map": "coin=colour"}, "x-amz-meta-column-map"),
    ({"timestamp-format": "%H:%M"}, "x-amz-meta-timestamp-format"),
    ({"timezone": "Nowhere/Special"}, "x-amz-meta-timezone"),
    ({"column-map": "ticker=symbol"}, "x-amz-meta-column-map"),  # the header has no "ticker"
])
def test_a_bad_option_in_metadata_rejects_the_file_naming_it(stack: dict[str, Any], metadata: dict[str, str],
                                                               named: str) -> None:
    status = upload(stack, "bad-options.csv", "symbol,price,volume\nA,1,1\n", metadata)
    assert status["status"] == "rejected", status
    assert named in status["errors"][0]["reason"], status


def test_a_csv_without_a_symbol_column_says_how_to_give_one(stack: dict[str, Any]) -> None:
    response = post(stack, "price,volume\n1,1\n", {})
    assert response.status_code == 400
    reason = json.loads(response.body)["errors"][0]["reason"]
    assert "?symbol=" in reason and "x-amz-meta" not in reason
