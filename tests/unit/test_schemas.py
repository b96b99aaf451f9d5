"""The edge models (chalicelib/schemas.py): queue bodies, their decoding, and the events' details."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from chalicelib.domain.ticks import Tick, TickColumns
from chalicelib.schemas import (
    AggregationPendingDetail,
    BarsRevisedDetail,
    ColumnsMessage,
    ObjectCreatedDetail,
    ObjectMessage,
    QueueMessage,
    RangeMessage,
    RevisedBar,
    TextMessage,
    TicksMessage,
    TicksProcessedDetail,
    WindowChange,
    decode_columns,
    decode_message,
    decode_ticks,
    detail_of,
    encode_column_messages,
    encode_tick_messages,
    queue_body,
    to_builtins,
)

COMMON: dict[str, Any] = {"ingestion_id": "obj-1", "received_ns": 1_719_878_400_000_000_000, "rank": "r0001",
                          "bucket": "b", "key": "in/x.csv", "version_id": None, "default_symbol": None}


def test_a_queue_body_is_ascii_and_decodes_to_the_same_message() -> None:
    key = "in/caf\u00e9\ufffe.csv"
    message = TextMessage(chunk=2, first_line=5, format="ndjson", text="a\ufffe\u00e9\n",
                          **{**COMMON, "key": key})
    body = queue_body(message)
    assert body.isascii()
    assert "\\ufffe" in body and "\\u00e9" in body
    doc = json.loads(body)
    assert doc["kind"] == "text" and doc["v"] == 1 and doc["key"] == key
    decoded = decode_message(body)
    assert decoded == message and decoded.kind == "text"
    assert decode_message(body.encode()) == message


def test_every_kind_round_trips() -> None:
    header = {"columns": {"symbol": 0, "price": 1}, "timestamp_unit": None, "width": 2}
    messages: list[QueueMessage] = [
        RangeMessage(chunk=0, first_line=2, format="csv", header=header, start=10, end=99, **COMMON),
        ObjectMessage(chunk=0, first_line=1, format="json", gzip=True, **COMMON),
        TextMessage(chunk=1, first_line=1, format="ndjson", text="{}\n", **{**COMMON, "version_id": "v1"}),
    ]
    for message in messages:
        body = queue_body(message)
        assert json.loads(body)["kind"] == message.kind
        assert decode_message(body) == message


def test_tick_messages_carry_the_ticks_exactly() -> None:
    ticks = [Tick("ESU4", Decimal("5432.25"), Decimal("3"), 1_719_878_401_000_000_000, i, None, "buy", None)
             for i in range(50)]
    bodies = encode_tick_messages(ticks, "api-1", "r0002", 1_719_878_402_000_000_000, 1_200)
    assert len(bodies) > 1
    messages = [decode_message(body) for body in bodies]
    assert all(isinstance(m, TicksMessage) and m.kind == "ticks" for m in messages)
    decoded = [t for m in messages if isinstance(m, TicksMessage) for t in decode_ticks(m)]
    assert decoded == ticks
    assert [m.chunk for m in messages] == list(range(len(bodies)))


def mixed_ticks(n: int) -> list[Tick]:
    return [Tick(("ESU4", "BTC/USDT", "A:B")[i % 3], Decimal("5432.25") + i, Decimal(i % 4) / 8,
                 1_719_878_401_000_000_000 + i, i, str(1000 + i) if i % 5 else None, ("buy", None)[i % 2],
                 "CME" if i % 7 == 0 else None) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 50, 400])
@pytest.mark.parametrize("limit", [700, 1_200, 262_144])
def test_column_messages_carry_the_ticks_exactly_within_the_limit(n: int, limit: int) -> None:
    ticks = mixed_ticks(n)
    bodies = encode_column_messages(TickColumns.of(ticks), "api-1", "r0002", 1_719_878_402_000_000_000, limit)
    assert all(len(body.encode()) <= limit and body.isascii() for body in bodies)
    messages = [decode_message(body) for body in bodies]
    assert all(isinstance(m, ColumnsMessage) and m.kind == "columns" for m in messages)
    assert [m.chunk for m in messages] == list(range(len(bodies)))
    decoded = [t for m in messages if isinstance(m, ColumnsMessage) for t in decode_columns(m).ticks()]
    assert [(t.symbol, str(t.price), str(t.volume), t.ts_ns, t.trade_id, t.side, t.exchange) for t in decoded] == [
        (t.symbol, str(t.price), str(t.volume), t.ts_ns, t.trade_id, t.side, t.exchange) for t in ticks]
    assert [t.seq for t in decoded] == list(range(n))  # positions in the request, as the earlier form gave
    # ...and exactly what the earlier form of the same ticks decodes to
    earlier = [t for b in encode_tick_messages(ticks, "api-1", "r0002", 1, 262_144)
               for m in [decode_message(b)] if isinstance(m, TicksMessage) for t in decode_ticks(m)]
    assert decoded == earlier


def test_a_column_message_leaves_out_the_columns_no_tick_has() -> None:
    ticks = [Tick("A", Decimal(1), Decimal(2), 1_719_878_401_000_000_000, 0)]
    [body] = encode_column_messages(TickColumns.of(ticks), "api-1", "r", 5, 1_000)
    doc = json.loads(body)
    assert {"id", "side", "ex"}.isdisjoint(doc) and doc["symbols"] == ["A"] and doc["p"] == ["1"]


@pytest.mark.parametrize("change", [
    {"t": [1, 2]},  # columns of different lengths
    {"s": [1]},  # a symbol index out of range
    {"t": [], "s": [], "p": [], "q": []},  # no ticks
    {"p": [1]},  # a number where decimal text belongs
    {"id": ["1", "2"]},
])
def test_a_damaged_column_message_is_refused(change: dict[str, Any]) -> None:
    [body] = encode_column_messages(TickColumns.of([Tick("A", Decimal(1), Decimal(2), 10, 0, "7")]), "api-1", "r",
                                    5, 1_000)
    with pytest.raises(msgspec.ValidationError):
        decode_message(json.dumps({**json.loads(body), **change}))


@pytest.mark.parametrize("change", [
    {"kind": "orders"},  # not one of ours
    {"v": 2},  # another version
    {"unexpected": 1},  # unknown fields are refused
    {"chunk": -1},
    {"ingestion_id": ""},
    {"rank": "r" * 121},
    {"first_line": 0},
    {"format": "xml"},
    {"chunk": "0"},  # no coercion
])
def test_a_foreign_or_malformed_message_is_refused(change: dict[str, object]) -> None:
    doc = {**json.loads(queue_body(RangeMessage(chunk=0, first_line=1, format="csv", start=0, end=5, **COMMON))),
           **change}
    with pytest.raises(msgspec.ValidationError):
        decode_message(json.dumps(doc))
    with pytest.raises(ValueError):
        decode_message("{not json")


def test_the_object_created_detail_reads_what_s3_sends() -> None:
    sent = {"version": "0", "bucket": {"name": "b"}, "request-id": "R", "requester": "123", "reason": "PutObject",
            "object": {"key": "in/x.csv", "size": 12, "etag": "e", "sequencer": "s", "version-id": "v9"}}
    detail = detail_of(ObjectCreatedDetail, sent)
    assert (detail.bucket.name, detail.object.key, detail.object.version_id) == ("b", "in/x.csv", "v9")
    unversioned = {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1}}
    assert detail_of(ObjectCreatedDetail, unversioned).object.version_id is None
    nulled = {"bucket": {"name": "b"}, "object": {"key": "k", "version-id": None}}  # no size either
    assert detail_of(ObjectCreatedDetail, nulled).object.version_id is None
    assert detail_of(ObjectCreatedDetail, ObjectCreatedDetail.of("b", "k", "v1")).object.version_id == "v1"
    with pytest.raises(msgspec.ValidationError):
        detail_of(ObjectCreatedDetail, {"bucket": {"name": "b"}})


def test_the_pipeline_details_round_trip() -> None:
    processed = TicksProcessedDetail(ingestion_ids=["a"], symbols_changed=1,
                                     changes=[WindowChange(symbol="X", first_minute_ns=0, last_minute_ns=60, ticks=3)],
                                     mark_tokens=["t1"])
    assert to_builtins(processed) == {"ingestion_ids": ["a"], "symbols_changed": 1, "changes": [
        {"symbol": "X", "first_minute_ns": 0, "last_minute_ns": 60, "ticks": 3}], "mark_tokens": ["t1"]}
    # An event of the version before mark tokens is still read (its runs look at every symbol).
    assert detail_of(TicksProcessedDetail, {"changes": to_builtins(processed)["changes"]}).mark_tokens == []
    assert detail_of(TicksProcessedDetail, {**to_builtins(processed), "extra": 1}) == processed
    assert detail_of(TicksProcessedDetail, {}) == TicksProcessedDetail()
    with pytest.raises(msgspec.ValidationError):  # a change is ours exactly or not at all
        detail_of(TicksProcessedDetail, {"changes": [{**to_builtins(processed)["changes"][0], "extra": 1}]})
    revised = BarsRevisedDetail(count=2, bars=[RevisedBar(symbol="X", interval="1m", start="2024-07-01T00:00:00Z",
                                                          revision=None)])
    assert detail_of(BarsRevisedDetail, to_builtins(revised)) == revised
    assert to_builtins(AggregationPendingDetail(symbols=["X", "Y"])) == {"symbols": ["X", "Y"]}
