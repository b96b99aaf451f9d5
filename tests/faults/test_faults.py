"""Nothing lost, nothing counted twice: real trades through the pipeline under injected faults.

Every scenario ends with the bars compared exactly with reference bars computed independently from the
same trades (freqtrade's XRP/ETH candles, Databento's ESU4 bars), and with the count of ticks in the
bars equal to the count of ticks sent: ticks lost 0, ticks doubled 0.
"""

from __future__ import annotations

import csv
import io
import json
import random
from decimal import Decimal
from typing import Any

import boto3
import pytest

from tests.fakes import bars_json
from tests.faults.conftest import DATA, TALLY
from tests.faults.harness import Delivery, FaultInjector, FaultPlan, InjectedCrash

XRP_TRADES = "freqtrade_binance_XRPETH_trades_2019-10-11_13.csv"
XRP_1M = "freqtrade_binance_XRPETH_ohlcv-1m_2019-10-11_13.json"
XRP_5M = "freqtrade_binance_XRPETH_ohlcv-5m_2019-10-11_13.json"
ES_TRADES = "databento_GLBX_ESU4_trades_2024-07-01T2358Z_2024-07-02T0002Z.csv"
ES_BARS = "databento_GLBX_ESU4_NQU4_ohlcv-1m_2024-07-01T2340Z_2024-07-02T0010Z.csv"
XRP_CUT_MS = 1_570_780_800_000  # 2019-10-11T08:00Z: the first eight hours of trades (whole 5m windows)


def data(name: str) -> str:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"reference data not present: {path}")
    return path.read_text(encoding="utf-8")


def xrp_rows() -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(data(XRP_TRADES))))
    return rows[0], [r for r in rows[1:] if int(r[0]) < XRP_CUT_MS]


def xrp_reference(interval: str, symbol_bars: list[dict[str, Any]]) -> None:
    name = XRP_1M if interval == "1m" else XRP_5M
    candles = json.loads(data(name), parse_float=Decimal)
    expected = {int(c[0]): c[1:] for c in candles if Decimal(c[5]) > 0 and int(c[0]) < XRP_CUT_MS}
    got = {_ms(b["start"]): b for b in symbol_bars}
    assert set(got) == set(expected)
    for start, (o, h, lo, c, v) in expected.items():
        bar = got[start]
        assert (Decimal(bar["open"]), Decimal(bar["high"]), Decimal(bar["low"]), Decimal(bar["close"])) == (o, h, lo, c)
        assert abs(Decimal(bar["volume"]) - v) <= Decimal("1e-6")


def _ms(iso: str) -> int:
    from chalicelib.domain.timefmt import parse_timestamp

    return parse_timestamp(iso) // 1_000_000


def csv_body(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def bars(symbol: str, interval: str) -> list[dict[str, Any]]:
    from chalicelib.bootstrap import use_cases

    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = bars_json(use_cases(), symbol, interval, limit="5000", cursor=cursor)
        out += page["bars"]
        cursor = page["next"]
        if not cursor:
            return out


def post(injector: FaultInjector, body: bytes, content_type: str = "text/csv") -> dict[str, Any]:
    """POST /ingest as a careful client does: on a 5xx, retry with the same Idempotency-Key."""
    from chalicelib.bootstrap import use_cases

    key = f"k-{random.random()}"
    for _ in range(20):
        try:
            with injector.invocation():
                return use_cases().ingest_body(body, content_type, key)
        except (Exception, InjectedCrash):
            TALLY["client_retries"] += 1
    raise AssertionError("the API kept failing")


def assert_no_loss_no_double(symbol: str, ticks_sent: int, volume_sent: Decimal) -> None:
    day = bars(symbol, "1d")
    minute = bars(symbol, "1m")
    counted = sum(b["trades"] for b in minute)
    assert counted == ticks_sent, f"ticks lost or doubled: {counted} in bars, {ticks_sent} sent"
    assert sum(b["trades"] for b in day) == ticks_sent
    assert sum(Decimal(b["volume"]) for b in minute) == volume_sent
    TALLY["ticks_checked"] += ticks_sent
    TALLY["ticks_lost"] += max(0, ticks_sent - counted)
    TALLY["ticks_doubled"] += max(0, counted - ticks_sent)


def make_delivery(stack: dict[str, Any], injector: FaultInjector, **options: Any) -> Delivery:
    report = options.pop("report_batch_item_failures", stack["settings"].report_batch_item_failures)
    return Delivery(stack["app"], stack["queue_url"], stack["dlq_url"], stack["events_queue_url"], injector,
                    report_batch_item_failures=report, **options)


def tally(delivery: Delivery, injector: FaultInjector) -> None:
    TALLY.update({f"faults:{k}": v for k, v in injector.counts.items()})
    TALLY["messages_redelivered"] += delivery.counts["messages_redelivered"]
    TALLY["failed_invocations"] += delivery.counts["failed_invocations"]


def xrp_in_shuffled_requests(injector: FaultInjector, seed: int, parts: int = 8) -> tuple[int, Decimal]:
    header, rows = xrp_rows()
    size = len(rows) // parts + 1
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    random.Random(seed).shuffle(chunks)
    for chunk in chunks:
        assert post(injector, csv_body(header, chunk))["accepted"] == len(chunk)
    return len(rows), sum(Decimal(r[6]) for r in rows)


# ------------------------------------------------------------------------------------------------ scenarios
def test_every_message_delivered_twice_in_shuffled_batches(stack: dict[str, Any]) -> None:
    injector = FaultInjector(FaultPlan())
    delivery = make_delivery(stack, injector, duplicate=True, shuffle_seed=11)
    with injector.installed():
        sent, volume = xrp_in_shuffled_requests(injector, seed=3)
        delivery.run_until_quiet()
    tally(delivery, injector)
    assert delivery.counts["messages_redelivered"] > 0
    xrp_reference("1m", bars("XRP/ETH", "1m"))
    xrp_reference("5m", bars("XRP/ETH", "5m"))
    assert_no_loss_no_double("XRP/ETH", sent, volume)


def test_throttling_and_unprocessed_items_at_random(stack: dict[str, Any]) -> None:
    injector = FaultInjector(FaultPlan(seed=21, throttle_rate=0.08, throttle_first_call=True, unprocessed_rate=0.3))
    delivery = make_delivery(stack, injector, shuffle_seed=5, concurrent_aggregators=4)
    s3 = boto3.client("s3")
    with injector.installed():
        sent, volume = xrp_in_shuffled_requests(injector, seed=8)
        s3.put_object(Bucket=stack["bucket"], Key="incoming/es.csv", Body=data(ES_TRADES).encode())
        delivery.run_until_quiet()
    tally(delivery, injector)
    assert injector.counts["unprocessed_items"] > 0
    assert sum(v for k, v in injector.counts.items() if k.startswith("throttle:")) > 10
    assert {k.split(":")[1] for k in injector.counts if k.startswith("throttle:")} >= {"dynamodb", "sqs", "s3"}
    xrp_reference("1m", bars("XRP/ETH", "1m"))
    xrp_reference("5m", bars("XRP/ETH", "5m"))
    assert_no_loss_no_double("XRP/ETH", sent, volume)
    assert_es_bars()


def test_invocations_crashing_half_way_are_redelivered_and_converge(stack: dict[str, Any]) -> None:
    injector = FaultInjector(FaultPlan(crash_after_writes=3, crash_invocations=12))
    delivery = make_delivery(stack, injector, shuffle_seed=2, concurrent_aggregators=4)
    with injector.installed():
        sent, volume = xrp_in_shuffled_requests(injector, seed=4, parts=12)
        delivery.run_until_quiet()
    tally(delivery, injector)
    assert injector.counts["crash"] == 12
    xrp_reference("1m", bars("XRP/ETH", "1m"))
    assert_no_loss_no_double("XRP/ETH", sent, volume)


@pytest.mark.parametrize("report_batch_item_failures", [True, False])
def test_a_poison_message_ends_in_the_dlq_and_its_batch_is_processed(
    stack: dict[str, Any], report_batch_item_failures: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    monkeypatch.setattr(stack["app"], "settings",
                        replace(stack["settings"], report_batch_item_failures=report_batch_item_failures))
    injector = FaultInjector(FaultPlan())
    delivery = make_delivery(stack, injector, report_batch_item_failures=report_batch_item_failures)
    header, rows = xrp_rows()
    poison = json.dumps({"v": 1, "kind": "ticks", "ingestion_id": "x", "chunk": 0})  # fails validation every time
    with injector.installed():
        for i in range(0, len(rows), 400):  # small requests: many messages, so batches hold several
            post(injector, csv_body(header, rows[i : i + 400]))
        boto3.client("sqs").send_message(QueueUrl=stack["queue_url"], MessageBody=poison)
        delivery.run_until_quiet()
    tally(delivery, injector)
    dead = delivery.dead_letters()
    assert poison in dead
    if report_batch_item_failures:
        assert dead == [poison]  # only the poison; its batch-mates were acknowledged one by one
    xrp_reference("1m", bars("XRP/ETH", "1m"))
    assert_no_loss_no_double("XRP/ETH", len(rows), sum(Decimal(r[6]) for r in rows))


def assert_es_bars(symbol: str = "ESU4") -> None:
    reference = {int(r["ts_event_ns"]) // 1_000_000: r for r in csv.DictReader(io.StringIO(data(ES_BARS)))
                 if r["symbol"] == "ESU4"}
    got = bars(symbol, "1m")
    assert [b["trades"] for b in got] == [13, 15, 68, 24]
    for bar in got:
        ref = reference[_ms(bar["start"])]
        fields = ("open", "high", "low", "close", "volume")
        # Bars print decimals without trailing zeros ("5528.5"); the reference keeps its tick size's.
        assert [Decimal(bar[f]) for f in fields] == [Decimal(ref[f]) for f in fields]


def test_the_same_file_twice_counts_once_and_a_corrected_file_replaces_the_old(stack: dict[str, Any]) -> None:
    injector = FaultInjector(FaultPlan())
    delivery = make_delivery(stack, injector, duplicate=True)  # every S3 event handled twice too
    s3 = boto3.client("s3")
    original = data(ES_TRADES)
    lines = original.splitlines(keepends=True)
    # A wrong file first: a bad print in the first minute, a trade in a minute the real file does not
    # have, and the last minute's trades missing.
    wrong_rows = lines[1:-24]
    wrong_rows[0] = wrong_rows[0].replace(",5528.75,", ",5999.75,", 1)
    stray = lines[1].replace("2024-07-01T23:58:", "2024-07-01T23:50:", 1).replace("1719878281", "1719877801", 1)
    wrong = lines[0] + stray + "".join(wrong_rows)
    with injector.installed():
        s3.put_object(Bucket=stack["bucket"], Key="incoming/es.csv", Body=wrong.encode())
        delivery.run_until_quiet()
        assert [b["start"][11:16] for b in bars("ESU4", "1m")] == ["23:50", "23:58", "23:59", "00:00"]
        s3.put_object(Bucket=stack["bucket"], Key="incoming/es.csv", Body=original.encode())
        s3.put_object(Bucket=stack["bucket"], Key="incoming/es.csv", Body=original.encode())  # same file again
        delivery.run_until_quiet()
    tally(delivery, injector)
    assert_es_bars()
    assert_no_loss_no_double("ESU4", 120, Decimal(253))
    revised = boto3.client("sqs").receive_message(QueueUrl=stack["revised_url"], MaxNumberOfMessages=10)
    details = [json.loads(m["Body"])["detail"] for m in revised.get("Messages", [])]
    starts = {(b["interval"], b["start"][11:16], b["revision"]) for d in details for b in d["bars"]}
    assert ("1m", "23:50", None) in starts  # a window only the old version touched is gone


def test_late_ticks_revise_bars_without_duplicating_them(stack: dict[str, Any]) -> None:
    injector = FaultInjector(FaultPlan())
    delivery = make_delivery(stack, injector)
    header, rows = xrp_rows()
    late = rows[::7]
    on_time = [r for i, r in enumerate(rows) if i % 7]
    with injector.installed():
        post(injector, csv_body(header, on_time))
        delivery.run_until_quiet()
        before = {b["start"]: b for b in bars("XRP/ETH", "1m")}
        post(injector, csv_body(header, late))
        delivery.run_until_quiet()
    tally(delivery, injector)
    after = bars("XRP/ETH", "1m")
    xrp_reference("1m", after)
    xrp_reference("5m", bars("XRP/ETH", "5m"))
    assert_no_loss_no_double("XRP/ETH", len(rows), sum(Decimal(r[6]) for r in rows))
    revised = [b for b in after if b["start"] in before and b["revision"] > 1]
    assert revised and all(b["revision"] == before[b["start"]]["revision"] + 1 for b in revised)
    messages = boto3.client("sqs").receive_message(QueueUrl=stack["revised_url"], MaxNumberOfMessages=10)
    announced = sum(json.loads(m["Body"])["detail"]["count"] for m in messages.get("Messages", []))
    assert announced >= len(revised)
    TALLY["late_ticks"] += len(late)
