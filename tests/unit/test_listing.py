"""The listing of ingestions (chalicelib/usecases/listing.py) on the in-memory fakes: statuses derived when read
(stalled, superseded) filter exactly as GET /ingestions/{id} answers, S3 is asked once per key, and what a page
examines is bounded by its limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.bootstrap import UseCases, wire
from chalicelib.domain.errors import InvalidQuery
from chalicelib.domain.ingestion import Ingestion, Source, Status
from chalicelib.domain.listing import IngestionQuery
from chalicelib.domain.timefmt import parse_timestamp
from chalicelib.entrypoints.listing import decode_position, encode_position, list_ingestions
from chalicelib.settings import Settings
from tests.fakes import MemoryEvents, MemoryObjects, MemoryQueue, MemoryStateStore

BUCKET = "market-data-bucket-dev"
SECOND = 1_000_000_000
ROWS = b"timestamp,price,size,symbol\n2024-07-01T14:30:00Z,100,1,UNIT\n"


class Clock:
    def __init__(self) -> None:
        self.now = parse_timestamp("2024-07-01T12:00:00Z")

    def __call__(self) -> int:
        self.now += 1000  # every reading later than the one before
        return self.now


class CountingObjects(MemoryObjects):
    """A bucket that counts the requests asking for a key's newest version."""

    def __init__(self) -> None:
        super().__init__()
        self.latest_asked = 0

    def latest_version(self, bucket: str, key: str) -> str | None:
        self.latest_asked += 1
        return super().latest_version(bucket, key)


class Env:
    def __init__(self) -> None:
        self.store, self.queue, self.objects, self.clock = MemoryStateStore(), MemoryQueue(), CountingObjects(), Clock()
        self.pipeline: UseCases = wire(self.store, self.queue, MemoryEvents(), self.objects, Settings(),
                                       clock=self.clock)

    def post(self, n: int) -> str:
        body = json.dumps({"symbol": "UNIT", "price": 10 + n, "volume": 1, "timestamp": "2024-07-01T10:00:00Z"})
        return str(self.pipeline.ingest_body(body.encode(), "application/json")["ingestion_id"])

    def upload(self, key: str, data: bytes = ROWS) -> str:
        version = self.objects.put(BUCKET, key, data)
        return str(self.pipeline.ingest_object(BUCKET, key, version)["ingestion_id"])

    def listed(self, **params: str) -> list[tuple[str, str]]:
        page = list_ingestions(params, self.pipeline.list_ingestions, "")
        return [(item["ingestion_id"], item["status"]) for item in page["ingestions"]]

    def process(self) -> None:
        assert self.pipeline.process_batch(self.queue.receive_all()).failed_message_ids == []


@pytest.fixture
def env() -> Env:
    return Env()


def test_stalled_is_what_the_status_route_answers_once_nothing_moved_for_long(env: Env) -> None:
    done, waiting = env.post(1), env.post(2)
    env.process()
    stuck = env.post(3)
    env.clock.now += 6 * 3600 * SECOND + 2 * SECOND  # past STALLED_AFTER_SECONDS
    assert env.listed() == [(stuck, "stalled"), (waiting, "processed"), (done, "processed")]
    assert env.listed(status="stalled") == [(stuck, "stalled")]
    assert env.listed(status="queued") == []
    assert env.pipeline.ingestion_status(stuck)["status"] == "stalled"


def test_a_file_replaced_in_s3_is_superseded_before_the_new_version_is_even_ingested(env: Env) -> None:
    old = env.upload("in/a.csv")
    env.process()
    env.objects.put(BUCKET, "in/a.csv", ROWS.replace(b",100,", b",200,"))  # its event not handled yet
    env.objects.latest_asked = 0
    assert env.listed(key="in/a.csv") == [(old, "superseded")]
    assert env.objects.latest_asked == 1
    assert env.listed(status="processed") == []
    assert env.listed(status="superseded", source="s3") == [(old, "superseded")]
    assert env.pipeline.ingestion_status(old)["status"] == "superseded"


def test_s3_is_asked_once_per_key_and_only_when_the_answer_matters(env: Env) -> None:
    versions = [env.upload("in/many.csv", ROWS + f"2024-07-01T14:3{n}:00Z,1,1,UNIT\n".encode()) for n in range(4)]
    other = env.upload("in/other.csv")
    api = env.post(1)
    env.objects.latest_asked = 0
    listed = env.listed()
    assert listed[:2] == [(api, "queued"), (other, "queued")]
    assert listed[2:] == [(versions[3], "queued")] + [(v, "superseded") for v in reversed(versions[:3])]
    assert env.objects.latest_asked == 2  # one per key
    env.objects.latest_asked = 0
    assert env.listed(status="processing") == []  # nothing is processing: no need to ask
    assert env.objects.latest_asked == 0


def test_a_page_examines_at_most_limit_ingestions_and_hands_on_the_rest(env: Env) -> None:
    queued = [env.post(n) for n in range(3)]
    rejected = env.upload("in/bad.csv", b"no,usable,header\n1,2,3\n")
    more = [env.post(n) for n in range(3, 5)]
    page = list_ingestions({"status": "rejected", "limit": "2"}, env.pipeline.list_ingestions, "")
    assert page["ingestions"] == [] and page["next"] is not None  # two examined, neither rejected
    page = list_ingestions({"status": "rejected", "limit": "2", "next": page["next"]}, env.pipeline.list_ingestions,
                           "")
    assert [i["ingestion_id"] for i in page["ingestions"]] == [rejected] and page["next"] is not None
    assert env.listed(status="queued") == [(i, "queued") for i in reversed(queued + more)]


def test_an_index_entry_without_its_record_is_not_listed(env: Env) -> None:
    kept = env.post(1)
    env.store.ingestion_index.add(("api", env.clock.now + 5, "api-0dead"))  # a write that failed part-way
    assert env.listed() == [(kept, "queued")]


def test_every_version_of_a_key_is_listed_even_when_it_never_got_past_its_scan(env: Env) -> None:
    first = env.objects.put(BUCKET, "in/k.csv", ROWS)
    second = env.objects.put(BUCKET, "in/k.csv", ROWS + b"2024-07-01T14:31:00Z,1,1,UNIT\n")
    newer = env.pipeline.ingest_object(BUCKET, "in/k.csv", second)["ingestion_id"]
    late = env.pipeline.ingest_object(BUCKET, "in/k.csv", first)  # delivered late: never counts
    assert late["status"] == "superseded"
    assert env.listed(key="in/k.csv") == [(late["ingestion_id"], "superseded"), (newer, "queued")]


def test_a_cursor_is_a_position_and_anything_else_is_refused() -> None:
    for position in [(0, ""), (2**63 - 1, "api-0a"), (1_719_792_000_000_000_000, "s3-" + "f" * 32)]:
        assert decode_position(encode_position(position)) == position
    with pytest.raises(InvalidQuery, match="next"):
        decode_position(encode_position((5, "not-an-id")))
    with pytest.raises(InvalidQuery, match="before since"):
        IngestionQuery(since_ns=10, before=(9, "api-1"))
    assert IngestionQuery().sources == (Source.API, Source.S3)
    assert IngestionQuery(key="k").sources == (Source.S3,)


def test_summaries_hold_what_a_client_needs_to_follow_up(env: Env) -> None:
    file_id = env.upload("in/sum.csv")
    env.process()
    api_id = env.post(1)
    page = list_ingestions({}, env.pipeline.list_ingestions, "https://api.example.com/v1")
    api_item, file_item = page["ingestions"]
    assert api_item == {"ingestion_id": api_id, "source": "api", "status": "queued",
                        "received_at": api_item["received_at"], "accepted": 1, "rejected": 0, "format": "json",
                        "status_url": f"https://api.example.com/v1/ingestions/{api_id}"}
    stored: Ingestion | None = env.store.get_ingestion_meta(file_id)
    assert stored is not None and stored.status is Status.QUEUED
    assert file_item["status"] == "processed" and file_item["accepted"] == 1 and file_item["format"] == "csv"
    assert stored.object is not None and file_item["object"] == stored.object.to_doc()
    assert page["next"] is None and page["next_url"] is None


def test_an_unknown_parameter_is_named(env: Any) -> None:
    with pytest.raises(InvalidQuery, match="unknown parameter 'symbol'"):
        env.listed(symbol="AAPL")
