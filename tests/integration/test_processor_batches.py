"""A processor batch is stored together (a few requests for all its messages) through the DynamoDB store on moto,
gives the bars of its messages, and falls back to storing each message on its own when that fails."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.dynamodb import DynamoStateStore
from chalicelib.bootstrap import UseCases, wire
from chalicelib.domain.bars import MINUTE_NS
from chalicelib.settings import Settings
from tests.fakes import MemoryDeadLetterQueue, MemoryEvents, MemoryObjects, MemoryQueue

T0 = 1_719_000_000  # epoch seconds


def _bodies(count: int) -> list[list[dict[str, Any]]]:
    """``count`` request bodies, each three ticks of two symbols over two minutes."""
    out = []
    for i in range(count):
        out.append([{"symbol": symbol, "price": f"{100 + i}.{k}", "volume": f"{k + 1}", "trade_id": str(100 * i + k),
                     "timestamp": T0 + 50 * k + i} for k in range(3) for symbol in ("AAA", "BBB")])
    return out


class Stack:
    def __init__(self, client: Any, settings: Settings) -> None:
        self.store = DynamoStateStore(client, settings.table_name)
        self.queue, self.dead = MemoryQueue(), MemoryDeadLetterQueue()
        self.use_cases: UseCases = wire(self.store, self.queue, MemoryEvents(), MemoryObjects(), settings,
                                        dead_letters=self.dead, sleep=lambda _: None)

    def post(self, bodies: list[list[dict[str, Any]]]) -> list[str]:
        return [self.use_cases.ingest_body(json.dumps(body).encode(), "application/json")["ingestion_id"]
                for body in bodies]

    def minute_bars(self, symbol: str) -> dict[int, tuple[int, Decimal, Decimal]]:
        bars, _ = self.store.query_bars(symbol, "1m", 0, 10**19)
        return {bar.start_ns: (bar.trades, bar.volume, bar.high) for bar, _ in bars}


def expected(bodies: list[list[dict[str, Any]]], symbol: str) -> dict[int, tuple[int, Decimal, Decimal]]:
    out: dict[int, tuple[int, Decimal, Decimal]] = {}
    for tick in (t for body in bodies for t in body if t["symbol"] == symbol):
        minute = tick["timestamp"] * 10**9 // MINUTE_NS * MINUTE_NS
        trades, volume, high = out.get(minute, (0, Decimal(0), Decimal(0)))
        out[minute] = (trades + 1, volume + Decimal(tick["volume"]), max(high, Decimal(tick["price"])))
    return out


@pytest.fixture
def client(provisioned: dict[str, str], session: boto3.session.Session) -> Any:
    return session.client("dynamodb")


def test_a_batch_is_stored_in_a_few_requests_and_gives_its_messages_bars(client: Any, settings: Settings) -> None:
    stack = Stack(client, settings)
    bodies = _bodies(10)
    ids = stack.post(bodies)
    batch = [(m, b, 1) for m, b in stack.queue.receive_all()]
    assert len(batch) == 10
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    outcome = stack.use_cases.process_batch([*batch, batch[3]])  # one message delivered twice in the batch
    assert outcome.failed_message_ids == [] and outcome.ticks == 66
    # 10 messages x (2 symbols x 2 minutes) partials = 40 items in 2 requests, the marks and results in one each.
    assert calls == Counter({"BatchWriteItem": 4}), calls
    assert all(stack.use_cases.ingestion_status(i)["status"] == "processed" for i in ids)
    stack.use_cases.aggregate()
    for symbol in ("AAA", "BBB"):
        assert stack.minute_bars(symbol) == expected(bodies, symbol)


def test_a_failed_batch_write_falls_back_to_each_message_alone(client: Any, settings: Settings) -> None:
    """A write no retry can help (here: DynamoDB refuses the partials of one message) costs that message alone:
    it is set aside with its chunk's failure recorded, and the other messages of the batch are stored."""
    stack = Stack(client, settings)
    bodies = _bodies(6)
    ids = stack.post(bodies)
    poisoned = ids[2]

    def refuse(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "BatchWriteItem" and poisoned in json.dumps(params) and '"P#' in json.dumps(params):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Item size has exceeded the "
                                         "maximum allowed size"}}, "BatchWriteItem")

    client.meta.events.register("before-parameter-build.dynamodb", refuse)
    outcome = stack.use_cases.process_batch([(m, b, 1) for m, b in stack.queue.receive_all()])
    assert outcome.failed_message_ids == [] and outcome.ticks == 30
    assert len(stack.dead.messages) == 1 and poisoned in next(iter(stack.dead.messages.values()))[0]
    statuses = {i: stack.use_cases.ingestion_status(i)["status"] for i in ids}
    assert statuses.pop(poisoned) == "failed" and set(statuses.values()) == {"processed"}
    stack.use_cases.aggregate()
    kept = bodies[:2] + bodies[3:]
    for symbol in ("AAA", "BBB"):
        assert stack.minute_bars(symbol) == expected(kept, symbol)


def test_a_throttled_batch_write_is_tried_again_and_stores_every_message(client: Any, settings: Settings) -> None:
    stack = Stack(client, settings)
    bodies = _bodies(4)
    ids = stack.post(bodies)
    throttles = [2]

    def throttle(model: Any, **_: Any) -> None:
        if model.name == "BatchWriteItem" and throttles[0]:
            throttles[0] -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                              "BatchWriteItem")

    client.meta.events.register("before-call.dynamodb", throttle)
    outcome = stack.use_cases.process_batch([(m, b, 1) for m, b in stack.queue.receive_all()])
    assert outcome.failed_message_ids == [] and outcome.ticks == 24 and not stack.dead.messages
    assert {stack.use_cases.ingestion_status(i)["status"] for i in ids} == {"processed"}
    stack.use_cases.aggregate()
    for symbol in ("AAA", "BBB"):
        assert stack.minute_bars(symbol) == expected(bodies, symbol)
