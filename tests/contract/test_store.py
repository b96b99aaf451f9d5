"""The store contract: what every use case relies on, checked against both stores (conftest.py's ``store``).

The in-memory twin the unit tests run on must pass exactly what the DynamoDB store passes: conditional
writes and what a lost race returns, dirty-window granularity and limits, range and page semantics.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.bars import MINUTE_NS, Bar
from chalicelib.domain.errors import LeaseLost, RecordError
from chalicelib.domain.ingestion import (
    ChunkFailure,
    ChunkResult,
    ClaimState,
    IdempotencyClaim,
    Ingestion,
    Source,
    Status,
    StoredObject,
)
from chalicelib.domain.listing import IndexPage
from tests.fakes import drop_bars, seed_bars

HOUR = 60 * MINUTE_NS
FUTURE = 4_000_000_000  # epoch seconds, 2096


def bar(symbol: str, minute: int, price: str = "10.5", interval: str = "1m") -> Bar:
    p = Decimal(price)
    start = minute * MINUTE_NS
    return Bar(symbol, interval, start, p, p, p, p, Decimal("2"), p * 2, 1, start + 1, start + 1,
               f"{start + 1:020d}|a", f"{start + 1:020d}|a")


INGESTION = Ingestion("s3-0a", Source.S3, Status.SCANNING, 1_719_000_000_000_000_000,
                      object=StoredObject("b", "k.csv", "v1", "etag", 10))


# ------------------------------------------------------------------------------------------ ingestions
def test_creating_an_ingestion_twice_answers_the_first_one(store: Any) -> None:
    assert store.create_ingestion(INGESTION) is None
    assert store.create_ingestion(INGESTION.but(received_ns=5)) == INGESTION  # the stored one, unchanged
    assert store.get_ingestion_meta("s3-0a") == INGESTION


def test_ingestion_records_are_read_many_at_once(store: Any) -> None:
    records = [INGESTION.but(ingestion_id=f"api-{n:03d}", source=Source.API, object=None) for n in range(130)]
    for record in records:
        store.put_ingestion(record)
    found = store.get_ingestion_metas([r.ingestion_id for r in records] + ["api-none", "api-000"])
    assert found == {r.ingestion_id: r for r in records}
    assert store.get_ingestion_metas([]) == {}


def test_ingestion_records_round_trip_with_their_chunks_in_order(store: Any) -> None:
    record = INGESTION.but(status=Status.QUEUED, chunks=3, rejected=1, format="csv",
                           errors=(RecordError("line 9", "-", "is longer than the limit"),))
    store.put_ingestion(record)
    results = [ChunkResult(c, 10, c, 100 + c, {"A": (c * MINUTE_NS, c * MINUTE_NS)},
                           (RecordError(f"line {c}", "price", "bad"),)) for c in (2, 0)]
    for result in results:
        store.put_chunk_result("s3-0a", result)
    assert store.get_ingestion("s3-0a") == (record, [results[1], results[0]])
    assert store.get_ingestion("s3-none") == (None, [])
    assert store.get_ingestion_meta("s3-none") is None


def test_a_failure_never_replaces_a_processed_chunk_and_a_result_replaces_a_failure(store: Any) -> None:
    store.put_ingestion(INGESTION)
    retrying = ChunkFailure(0, "throttled; retrying (attempt 1)", False, 1, 1)
    assert store.record_chunk_failure("s3-0a", retrying) is True
    final = ChunkFailure(0, "throttled; moved to the dead-letter queue after 5 attempts", True, 2, 5)
    assert store.record_chunk_failure("s3-0a", final) is True  # a failure replaces a failure
    assert store.get_ingestion("s3-0a")[1] == [final]
    result = ChunkResult(0, 3, 0, 9)
    store.put_chunk_result("s3-0a", result)  # redriven and processed
    assert store.record_chunk_failure("s3-0a", final) is False  # a redundant delivery failed afterwards
    assert store.get_ingestion("s3-0a")[1] == [result]


def test_a_chunk_of_thousands_of_symbols_is_stored_whole(store: Any) -> None:
    """Option chains put thousands of symbols in one chunk: its windows outgrow one DynamoDB item."""
    windows = {f"OPT{i:06d}C00190000": (i * MINUTE_NS, i * MINUTE_NS + HOUR) for i in range(20_000)}
    store.put_ingestion(INGESTION)
    big, small = ChunkResult(0, 20_000, 0, 1, windows), ChunkResult(1, 1, 0, 2, {"A": (1, 2)})
    store.put_chunk_result("s3-0a", big)
    store.put_chunk_result("s3-0a", small)
    assert store.get_ingestion("s3-0a") == (INGESTION, [big, small])


def test_chunk_results_of_several_ingestions_stored_together(store: Any) -> None:
    """A processor batch stores its chunks' results at once; the same chunk twice: the last one stands, and one
    too big for an item still goes in pages."""
    other = INGESTION.but(ingestion_id="api-1", source=Source.API)
    store.put_ingestion(INGESTION)
    store.put_ingestion(other)
    first, again = ChunkResult(0, 3, 0, 1, {"A": (0, 0)}), ChunkResult(0, 4, 1, 2, {"A": (0, MINUTE_NS)})
    windows = {f"OPT{i:06d}C00190000": (i * MINUTE_NS, i * MINUTE_NS + HOUR) for i in range(20_000)}
    big = ChunkResult(1, 20_000, 0, 3, windows)
    chunks = [ChunkResult(c, c, 0, 10 + c, {"B": (c * MINUTE_NS, c * MINUTE_NS)}) for c in range(30)]
    store.put_chunk_results([("s3-0a", first), ("api-1", chunks[5]), ("s3-0a", big), ("s3-0a", again),
                             *[("api-1", c) for c in chunks]])
    assert store.get_ingestion("s3-0a") == (INGESTION, [again, big])
    assert store.get_ingestion("api-1") == (other, chunks)
    store.put_chunk_results([])
    assert store.get_ingestion("s3-0a") == (INGESTION, [again, big])


def test_an_object_key_remembers_every_ingestion_of_it(store: Any) -> None:
    assert store.add_object_ingestion("b", "k", "s3-1") == {"s3-1"}
    assert store.add_object_ingestion("b", "k", "s3-2") == {"s3-1", "s3-2"}
    assert store.add_object_ingestion("b", "k", "s3-1") == {"s3-1", "s3-2"}
    assert store.add_object_ingestion("b", "other", "s3-3") == {"s3-3"}
    assert store.object_ingestion_ids("b", "k") == {"s3-1", "s3-2"}
    assert store.object_ingestion_ids("b", "none") == set()


# ------------------------------------------------------------------------------------------ the time index
DAY = 86_400 * 10**9
JULY_1 = 19_905 * DAY  # 2024-07-01T00:00:00Z
BOTH = (Source.API, Source.S3)


def api_ingestion(n: int, received_ns: int) -> Ingestion:
    return Ingestion(f"api-{n:04x}", Source.API, Status.QUEUED, received_ns, accepted=1, chunks=1)


def file_ingestion(n: int, received_ns: int) -> Ingestion:
    return Ingestion(f"s3-{n:04x}", Source.S3, Status.SCANNING, received_ns,
                     object=StoredObject("b", f"k{n}.csv", f"v{n}", "etag", 10))


def walk(store: Any, sources: Any, since_ns: int, limit: int) -> list[list[tuple[int, str]]]:
    """Every page of a walk, following ``more`` to the end."""
    pages, before = [], None
    while True:
        page = store.list_ingestions(sources, since_ns, before, limit)
        pages.append(page.refs)
        if page.more is None:
            return pages
        assert page.more < (before or (2**63, "")), "a walk always moves on"
        before = page.more


def test_every_ingestion_stored_is_indexed_once_under_its_receipt_time(store: Any) -> None:
    first = file_ingestion(1, JULY_1 + 5)
    assert store.create_ingestion(first) is None
    assert store.create_ingestion(first.but(received_ns=JULY_1 + 9)) == first  # a lost race indexes nothing
    store.put_ingestion(first.but(status=Status.QUEUED, chunks=2))  # stored again, and again: indexed once
    store.put_ingestion(first.but(status=Status.QUEUED, chunks=2))
    store.put_ingestion(api_ingestion(1, JULY_1 + 7))
    store.put_ingestion(api_ingestion(2, JULY_1 + 5))  # the same nanosecond as the file: by id, newest first
    page = store.list_ingestions(BOTH, 0, None, 10)
    assert page.refs == [(JULY_1 + 7, "api-0001"), (JULY_1 + 5, "s3-0001"), (JULY_1 + 5, "api-0002")]
    assert page.more is None
    assert store.list_ingestions((Source.S3,), 0, None, 10).refs == [(JULY_1 + 5, "s3-0001")]
    assert store.list_ingestions((Source.API,), JULY_1 + 6, None, 10).refs == [(JULY_1 + 7, "api-0001")]
    assert store.list_ingestions(BOTH, JULY_1 + 8, None, 10).refs == []


def test_pages_of_the_time_index_never_skip_or_repeat_whatever_their_size(store: Any) -> None:
    # 3 days apart, a gap of empty days, ties on the same nanosecond, both sources.
    times = [JULY_1 + 1, JULY_1 + 1, JULY_1 + 2, JULY_1 + DAY - 1, JULY_1 + DAY, JULY_1 + 10 * DAY + 3,
             JULY_1 + 10 * DAY + 3, JULY_1 + 10 * DAY + 4]
    for n, ns in enumerate(times):
        store.put_ingestion(api_ingestion(n, ns) if n % 2 else file_ingestion(n, ns))
    everything = store.list_ingestions(BOTH, 0, None, 1000).refs
    assert len(everything) == len(times) and everything == sorted(everything, reverse=True)
    for limit in (1, 2, 3, 4, 7, 8, 9):
        pages = walk(store, BOTH, 0, limit)
        assert [ref for page in pages for ref in page] == everything, limit
        assert all(len(page) == limit for page in pages[:-1])
    assert walk(store, BOTH, 0, 8) == [everything]  # the last page says nothing follows
    assert walk(store, BOTH, 0, 4) == [everything[:4], everything[4:]]
    assert [ref for page in walk(store, (Source.API,), JULY_1 + 2, 1) for ref in page] == [
        (ns, i) for ns, i in everything if i.startswith("api-") and ns >= JULY_1 + 2]


def test_a_walk_skips_empty_days_and_stops_after_a_month_of_days_that_hold_ingestions(store: Any) -> None:
    store.put_ingestion(api_ingestion(999, 5 * DAY))  # 1970: decades of empty days before the rest
    for n in range(40):
        store.put_ingestion(file_ingestion(n, JULY_1 + n * DAY + 7))
    first = store.list_ingestions(BOTH, 0, None, 100)
    assert first.refs == [(JULY_1 + n * DAY + 7, f"s3-{n:04x}") for n in range(39, 8, -1)]  # 31 days
    assert first.more == (JULY_1 + 9 * DAY, "")  # the start of the last day walked
    rest = store.list_ingestions(BOTH, 0, first.more, 100)
    assert rest.refs == [(JULY_1 + n * DAY + 7, f"s3-{n:04x}") for n in range(8, -1, -1)] + [(5 * DAY, "api-03e7")]
    assert rest.more is None
    assert store.list_ingestions((Source.API,), 0, None, 100).refs == [(5 * DAY, "api-03e7")]
    assert store.list_ingestions(BOTH, JULY_1 + 39 * DAY, None, 100) == IndexPage(
        [(JULY_1 + 39 * DAY + 7, "s3-0027")], None)
    assert store.list_ingestions(BOTH, 0, (5 * DAY, "api-03e7"), 100) == IndexPage([], None)
    assert store.list_ingestions(BOTH, 6 * DAY, (6 * DAY, ""), 100) == IndexPage([], None)  # an empty range


# ------------------------------------------------------------------------------------------ idempotency keys
def test_a_key_is_claimed_once_and_the_loser_gets_the_holder_in_the_same_call(store: Any) -> None:
    first = IdempotencyClaim("h1", "api-1", 1, ClaimState.PENDING)
    assert store.claim_idempotency_key("k", first, FUTURE) is None
    assert store.claim_idempotency_key("k", IdempotencyClaim("h2", "api-2", 2, ClaimState.PENDING), FUTURE) == first
    done = IdempotencyClaim("h1", "api-1", 1, ClaimState.DONE, {"ingestion_id": "api-1", "accepted": 3})
    store.complete_idempotency_key("k", done, FUTURE)
    assert store.claim_idempotency_key("k", first, FUTURE) == done


def test_an_expired_key_can_be_claimed_again(store: Any) -> None:
    old = IdempotencyClaim("h1", "api-1", 1, ClaimState.DONE, {"ingestion_id": "api-1"})
    assert store.claim_idempotency_key("k", old, 1) is None  # expired in 1970
    fresh = IdempotencyClaim("h2", "api-2", 2, ClaimState.PENDING)
    assert store.claim_idempotency_key("k", fresh, FUTURE) is None
    assert store.claim_idempotency_key("k", old, FUTURE) == fresh


# ------------------------------------------------------------------------------------------ partials
def test_partials_of_several_sources_stored_together(store: Any) -> None:
    """A processor batch stores every message's partials at once (more than one request's worth here); a source
    given twice (a message delivered twice in one batch) is stored once, the last one standing."""
    sources = [(f"api-{i}#000000", [bar("A", m, f"{10 + i}") for m in range(3)]) for i in range(12)]
    twice = ("api-3#000000", [bar("A", m, "99") for m in range(3)])
    assert store.put_partials_of([*sources, twice, ("api-20#000000", [])]) == 36
    got = store.query_partials("A", 0, 2 * MINUTE_NS)
    assert len(got) == 36
    closes = {(source, b.start_ns): b.close for source, b in got}
    assert closes[("api-3#000000", MINUTE_NS)] == Decimal("99")
    assert closes[("api-11#000000", 2 * MINUTE_NS)] == Decimal("21")
    assert store.put_partials_of([]) == 0


def test_a_source_overwrites_its_own_partials_and_ranges_are_inclusive(store: Any) -> None:
    assert store.put_partials("api-1#000000", [bar("A", m) for m in range(30)]) == 30
    store.put_partials("api-2#000000", [bar("A", 3, "11")])
    store.put_partials("api-1#000000", [bar("A", m, "12") for m in range(30)])
    got = store.query_partials("A", 2 * MINUTE_NS, 4 * MINUTE_NS)
    assert [(source, b.start_ns, b.close) for source, b in got] == [
        ("api-1#000000", 2 * MINUTE_NS, Decimal("12")), ("api-1#000000", 3 * MINUTE_NS, Decimal("12")),
        ("api-2#000000", 3 * MINUTE_NS, Decimal("11")), ("api-1#000000", 4 * MINUTE_NS, Decimal("12"))]
    assert store.list_partial_minutes("A", 28 * MINUTE_NS, 10**21) == [28 * MINUTE_NS, 29 * MINUTE_NS]
    assert store.query_partials("A", 5 * MINUTE_NS, 4 * MINUTE_NS) == []  # an inverted range is empty
    assert store.query_partials("A", -(10**19), -1) == []
    assert store.query_partials("B", 0, 10**19) == []


# ------------------------------------------------------------------------------------------ dirty windows
def test_dirty_windows_are_handed_out_whole_marks_at_a_time(store: Any) -> None:
    store.mark_dirty([("A", m * MINUTE_NS) for m in (0, 1, 2)] + [("A", HOUR)], "t1")
    # A limit inside a mark (one symbol-hour of one call) still hands out the whole mark.
    assert store.list_dirty(["A"], 2) == [("A", 0, "t1"), ("A", MINUTE_NS, "t1"), ("A", 2 * MINUTE_NS, "t1")]
    assert store.list_dirty(["A"], 4) == [("A", 0, "t1"), ("A", MINUTE_NS, "t1"), ("A", 2 * MINUTE_NS, "t1"),
                                          ("A", HOUR, "t1")]
    store.mark_dirty([("B", 0)], "t1")
    assert store.list_dirty(["B"], 100) == [("B", 0, "t1")]
    assert store.list_dirty(["C"], 100) == []
    assert len(store.list_dirty(None, 100)) == 5


def test_a_mark_made_during_a_run_keeps_only_its_own_windows_dirty(store: Any) -> None:
    store.mark_dirty([("A", 0), ("A", MINUTE_NS), ("A", HOUR), ("B", 0)], "t1")
    seen = store.list_dirty(None, 100)
    store.mark_dirty([("A", MINUTE_NS), ("A", 2 * MINUTE_NS)], "t2")  # marked while an aggregation was running
    assert store.clear_dirty(seen) == 4
    assert store.list_dirty(None, 100) == [("A", MINUTE_NS, "t2"), ("A", 2 * MINUTE_NS, "t2")]
    assert store.clear_dirty(seen) == 4  # deleting marks that are gone is harmless
    assert store.list_dirty(None, 100) == [("A", MINUTE_NS, "t2"), ("A", 2 * MINUTE_NS, "t2")]
    assert store.clear_dirty(store.list_dirty(None, 100)) == 2
    assert store.list_dirty(None, 100) == []


def test_a_window_in_several_marks_is_listed_once_per_mark(store: Any) -> None:
    store.mark_dirty([("A", 0)], "t1")
    store.mark_dirty([("A", 0)], "t2")
    assert store.list_dirty(["A"], 100) == [("A", 0, "t1"), ("A", 0, "t2")]
    assert store.dirty_symbols() == ["A"]


def test_dirty_windows_come_sorted(store: Any) -> None:
    store.mark_dirty([("B/USD", 0), ("A", 2 * HOUR), ("A-B", 0), ("A", 0)], "t")
    assert [(s, m) for s, m, _ in store.list_dirty(None, 100)] == [("A", 0), ("A", 2 * HOUR), ("A-B", 0),
                                                                  ("B/USD", 0)]
    assert [(s, m) for s, m, _ in store.list_dirty(["B/USD", "A"], 100)] == [("A", 0), ("A", 2 * HOUR),
                                                                            ("B/USD", 0)]
    assert store.dirty_symbols() == ["A", "A-B", "B/USD"]


def test_any_dirty_tells_whether_a_mark_covers_a_range(store: Any) -> None:
    store.mark_dirty([("A", HOUR + 5 * MINUTE_NS)], "t")
    assert store.any_dirty("A", HOUR, HOUR + 59 * MINUTE_NS)
    assert store.any_dirty("A", HOUR + 30 * MINUTE_NS, HOUR + 31 * MINUTE_NS)  # same hour: conservatively yes
    assert store.any_dirty("A", 0, 10 * HOUR)
    assert not store.any_dirty("A", 0, HOUR - 1)
    assert not store.any_dirty("A", 2 * HOUR, 3 * HOUR)
    assert not store.any_dirty("AB", 0, 10 * HOUR) and not store.any_dirty("B", 0, 10 * HOUR)
    assert store.dirty_symbols() == ["A"]


def test_marks_of_many_symbols_spread_and_are_all_found(store: Any) -> None:
    symbols = [f"S{n:04d}" for n in range(300)]
    store.mark_dirty([(s, 0) for s in symbols], "t")
    assert store.dirty_symbols() == symbols
    assert len(store.list_dirty(None, 10_000)) == 300
    store.clear_dirty(store.list_dirty(None, 10_000))
    assert store.dirty_symbols() == []


def test_still_marked_names_the_symbols_with_one_of_these_marks_left(store: Any) -> None:
    store.mark_dirty([("A", 5 * MINUTE_NS), ("A", HOUR + MINUTE_NS), ("B", 0), ("C", 0)], "t1")
    store.mark_dirty([("B", 0)], "t2")
    assert store.still_marked([("A", 0, "t1"), ("B", 0, "t1"), ("C", 0, "t1")]) == {"A", "B", "C"}
    store.clear_dirty([w for w in store.list_dirty(["A", "B"], 100) if w[2] == "t1"])
    # A's and B's t1 marks are gone; B's t2 mark and C's are left. Marks never written are not found.
    assert store.still_marked([("A", 0, "t1"), ("A", HOUR, "t1"), ("B", 0, "t1"), ("C", 0, "t1")]) == {"C"}
    assert store.still_marked([("B", 0, "t2"), ("B", HOUR, "t2"), ("C", HOUR, "t1"), ("A", 0, "t2")]) == {"B"}
    assert store.still_marked([]) == set()
    many = [f"S{n:04d}" for n in range(250)]  # more than one read takes
    store.mark_dirty([(s, 0) for s in many[::2]], "t3")
    assert store.still_marked([(s, 0, "t3") for s in many]) == set(many[::2])


# ------------------------------------------------------------------------------------------ leases
def test_a_lease_is_exclusive_until_it_expires_or_is_released(store: Any) -> None:
    lease = store.acquire_lease("A", "run-1", 1_000, 100)
    assert lease is not None and lease.token == "run-1"
    assert store.acquire_lease("A", "run-2", 1_050, 100) is None
    assert store.acquire_lease("B", "run-2", 1_050, 100) is not None  # per symbol
    assert store.renew_lease(lease, 1_090, 100) == lease
    assert store.acquire_lease("A", "run-2", 1_150, 100) is None  # renewed until 1_190
    taken = store.acquire_lease("A", "run-2", 1_191, 100)
    assert taken is not None
    assert store.renew_lease(lease, 1_200, 100) is None  # run-1 lost it
    store.release_lease(lease)  # releasing a lost lease does not release the new holder's
    assert store.acquire_lease("A", "run-3", 1_200, 100) is None
    store.release_lease(taken)
    assert store.acquire_lease("A", "run-3", 1_200, 100) is not None


def test_asking_for_a_held_lease_tells_the_holder_when_it_releases(store: Any) -> None:
    lease = store.acquire_lease("A", "run-1", 1_000, 100)
    assert store.release_lease(lease) is False  # nobody asked
    lease = store.acquire_lease("A", "run-2", 1_000, 100)
    assert store.acquire_lease("A", "run-3", 1_010, 100) is None
    assert store.release_lease(lease) is True
    again = store.acquire_lease("A", "run-4", 1_020, 100)
    assert again is not None and store.release_lease(again) is False  # the request was for the last holder
    assert store.release_lease(again) is False  # released already


def test_trying_a_held_lease_without_asking_leaves_the_holder_unasked(store: Any) -> None:
    lease = store.acquire_lease("A", "run-1", 1_000, 100)
    assert store.acquire_lease("A", "run-2", 1_010, 100, ask=False) is None
    assert store.release_lease(lease) is False  # nobody asked
    free = store.acquire_lease("A", "run-3", 1_020, 100, ask=False)  # a free lease is taken either way
    assert free is not None and free.token == "run-3"
    assert store.acquire_lease("A", "run-4", 1_030, 100, ask=False) is None
    assert store.acquire_lease("A", "run-5", 1_040, 100) is None  # asking afterwards still asks
    assert store.release_lease(free) is True


def test_many_runs_asking_for_a_held_lease_tell_its_holder_once(store: Any) -> None:
    lease = store.acquire_lease("A", "run-1", 1_000, 100)
    for n in range(2, 6):
        assert store.acquire_lease("A", f"run-{n}", 1_000 + n, 100) is None
    assert store.release_lease(lease) is True
    again = store.acquire_lease("A", "run-6", 1_010, 100)
    assert store.acquire_lease("A", "run-7", 1_011, 100) is None  # asks the new holder, not the old one's flag
    assert store.release_lease(again) is True
    last = store.acquire_lease("A", "run-8", 1_020, 100)
    assert last is not None and store.release_lease(last) is False


def test_a_lease_carries_the_next_round_time_to_the_next_holder(store: Any) -> None:
    first = store.acquire_lease("A", "run-1", 1_000, 100)
    assert first is not None and first.next_round_ns is None  # never rebuilt
    store.release_lease(first, 990)
    second = store.acquire_lease("A", "run-2", 1_010, 100)
    assert second is not None and second.next_round_ns == 990
    store.release_lease(second)  # a holder that did no round leaves the time as it was
    third = store.acquire_lease("A", "run-3", 1_020, 100)
    assert third is not None and third.next_round_ns == 990
    assert not store.release_lease(first, 5_000)  # not the holder: changes nothing
    store.release_lease(third, 1_015)
    taken_over = store.acquire_lease("A", "run-4", 1_030, 100)
    assert taken_over is not None and taken_over.next_round_ns == 1_015
    assert store.acquire_lease("B", "run-4", 1_030, 100).next_round_ns is None  # per symbol


def test_withdrawals_noted_on_a_symbol_show_on_its_next_lease_taken_or_renewed(store: Any) -> None:
    assert store.acquire_lease("A", "run-1", 1_000, 100).withdrawals == 0  # none noted yet
    store.note_withdrawals(["A", "B", "A"])  # once per symbol named, while run-1 holds A's lease
    assert store.acquire_lease("A", "run-2", 1_010, 100) is None  # held: noting did not take or end the lease
    renewed = store.renew_lease(store.acquire_lease("C", "run-3", 1_000, 100), 1_010, 100)
    assert renewed is not None and renewed.withdrawals == 0
    held = store.acquire_lease("A", "run-4", 1_200, 100)  # run-1's expired
    assert held is not None and held.withdrawals == 1
    store.note_withdrawals(["A"])
    again = store.renew_lease(held, 1_250, 100)
    assert again is not None and again.token == "run-4" and again.withdrawals == 2
    assert store.renew_lease(held, 1_260, 100).withdrawals == 2
    assert store.release_lease(again) is False
    assert store.acquire_lease("A", "run-5", 1_270, 100).withdrawals == 2  # kept across holders
    assert store.acquire_lease("B", "run-5", 1_270, 100).withdrawals == 1  # noted before any lease existed


def test_bar_writes_are_fenced_by_the_lease(store: Any) -> None:
    old = store.acquire_lease("ETH/USDT", "run-1", 0, 10)
    store.write_bars(old, [(bar("ETH/USDT", 0, "1"), 1), (bar("ETH/USDT", 1, "1"), 1)], [], 0)
    new = store.acquire_lease("ETH/USDT", "run-2", 11, 10**12)  # run-1 paused past its expiry
    with pytest.raises(LeaseLost):
        store.write_bars(old, [(bar("ETH/USDT", 0, "2"), 2)], [("1m", MINUTE_NS)], 0)
    assert [(b.close, rev) for b, rev in store.query_bars("ETH/USDT", "1m", 0, MINUTE_NS)[0]] == [
        (Decimal("1"), 1), (Decimal("1"), 1)]
    puts = [(bar("ETH/USDT", m, "3"), 2) for m in range(250)]  # more than one transaction holds
    store.write_bars(new, puts, [], 5)
    rows, _ = store.query_bars("ETH/USDT", "1m", 0, 10**19)
    assert len(rows) == 250 and {(b.close, rev) for b, rev in rows} == {(Decimal("3"), 2)}
    store.write_bars(new, [], [("1m", m * MINUTE_NS) for m in range(1, 250)], 6)
    assert [b.start_ns for b, _ in store.query_bars("ETH/USDT", "1m", 0, 10**19)[0]] == [0]


@pytest.mark.parametrize("writes", [3, 250])  # one transaction; several, the marks in the last
def test_bar_writes_raise_the_symbols_latest_and_delete_the_rebuilt_marks_under_the_same_fence(
        store: Any, writes: int) -> None:
    store.mark_dirty([("A", 0), ("A", 60 * MINUTE_NS), ("B", 0)], "t1")
    store.mark_dirty([("A", MINUTE_NS)], "t2")
    marks = store.list_dirty(["A"], 100)
    store.mark_dirty([("A", 2 * MINUTE_NS)], "t3")  # marked during the run: not the run's to delete
    old = store.acquire_lease("A", "run-1", 0, 10)
    store.acquire_lease("A", "run-2", 11, 10**12)
    puts = [(bar("A", m, "2"), 1) for m in range(writes)]
    with pytest.raises(LeaseLost):  # nothing of it is written
        store.write_bars(old, puts, [], 0, 7 * MINUTE_NS, marks)
    assert store.query_bars("A", "1m", 0, 10**19) == ([], None) and store.list_symbols() == []
    assert store.list_dirty(["A"], 100) == sorted([*marks, ("A", 2 * MINUTE_NS, "t3")])
    new = store.acquire_lease("A", "run-3", 10**13, 10**12)
    store.write_bars(new, puts, [], 0, 7 * MINUTE_NS, marks)
    assert len(store.query_bars("A", "1m", 0, 10**19)[0]) == writes
    assert store.list_symbols() == [("A", 7 * MINUTE_NS)]
    assert store.list_dirty(None, 100) == [("A", 2 * MINUTE_NS, "t3"), ("B", 0, "t1")]
    store.write_bars(new, [(bar("A", 0, "3"), 2)], [], 1, 5 * MINUTE_NS)  # earlier than stored: kept as it was
    assert store.list_symbols() == [("A", 7 * MINUTE_NS)]
    assert store.query_bars("A", "1m", 0, 0)[0][0][0].close == Decimal("3")
    store.write_bars(new, [], [("1m", 0)], 2, 9 * MINUTE_NS, [("A", 2 * MINUTE_NS, "t3")])
    assert store.list_symbols() == [("A", 9 * MINUTE_NS)] and store.list_dirty(["A"], 100) == []


# ------------------------------------------------------------------------------------------ bars and symbols
def test_bars_round_trip_with_revisions_and_pages(store: Any) -> None:
    seed_bars(store, [(bar("ETH/USDT", m, "0.00139676"), 1 + m % 2) for m in range(7)])
    page, cursor = store.query_bars("ETH/USDT", "1m", 0, 10 * MINUTE_NS, limit=5)
    assert [(b.start_ns, rev) for b, rev in page] == [(m * MINUTE_NS, 1 + m % 2) for m in range(5)]
    assert page[0][0] == bar("ETH/USDT", 0, "0.00139676") and cursor == 4 * MINUTE_NS
    rest, end = store.query_bars("ETH/USDT", "1m", 0, 10 * MINUTE_NS, limit=5, after=cursor)
    assert [b.start_ns for b, _ in rest] == [5 * MINUTE_NS, 6 * MINUTE_NS] and end is None
    exact, none_left = store.query_bars("ETH/USDT", "1m", 0, 6 * MINUTE_NS, limit=7)
    assert len(exact) == 7 and none_left is None
    assert store.query_bars("ETH/USDT", "1m", 5 * MINUTE_NS, 4 * MINUTE_NS) == ([], None)
    assert store.query_bars("ETH/USDT", "5m", 0, 10**19) == ([], None)
    drop_bars(store, [("ETH/USDT", "1m", 0), ("ETH/USDT", "1m", 99 * MINUTE_NS)])
    assert [b.start_ns for b, _ in store.query_bars("ETH/USDT", "1m", 0, MINUTE_NS)[0]] == [MINUTE_NS]


def test_bars_are_read_newest_first_in_pages_too(store: Any) -> None:
    seed_bars(store, [(bar("ETH/USDT", m), 1 + m) for m in range(7)])
    page, cursor = store.query_bars("ETH/USDT", "1m", MINUTE_NS, 10 * MINUTE_NS, limit=4, descending=True)
    assert [(b.start_ns // MINUTE_NS, rev) for b, rev in page] == [(6, 7), (5, 6), (4, 5), (3, 4)]
    assert cursor == 3 * MINUTE_NS
    rest, end = store.query_bars("ETH/USDT", "1m", MINUTE_NS, 10 * MINUTE_NS, limit=4, after=cursor, descending=True)
    assert [b.start_ns // MINUTE_NS for b, _ in rest] == [2, 1] and end is None  # minute 0 is before the range
    exact, none_left = store.query_bars("ETH/USDT", "1m", 0, 6 * MINUTE_NS, limit=7, descending=True)
    assert [b.start_ns // MINUTE_NS for b, _ in exact] == [6, 5, 4, 3, 2, 1, 0] and none_left is None
    assert store.query_bars("ETH/USDT", "1m", 0, 10 * MINUTE_NS, descending=True, after=0) == ([], None)
    one, more = store.query_bars("ETH/USDT", "1m", 0, 10 * MINUTE_NS, limit=1, descending=True)
    assert [b.start_ns for b, _ in one] == [6 * MINUTE_NS] and more == 6 * MINUTE_NS
    assert store.query_bars("ETH/USDT", "1m", 0, 10 * MINUTE_NS, limit=1, after=6 * MINUTE_NS) == ([], None)


def test_bars_are_read_by_key_across_intervals(store: Any) -> None:
    seed_bars(store, [(bar("A", 0), 1), (bar("A", 5), 3), (bar("A", 0, interval="5m"), 2), (bar("B", 0), 1)])
    got = store.get_bars("A", [("1m", 0), ("1m", MINUTE_NS), ("1m", 5 * MINUTE_NS), ("5m", 0), ("1h", 0)])
    assert {key: rev for key, (_, rev) in got.items()} == {("1m", 0): 1, ("1m", 5 * MINUTE_NS): 3, ("5m", 0): 2}
    assert got[("5m", 0)][0] == bar("A", 0, interval="5m")
    assert store.get_bars("A", [("1m", m * MINUTE_NS) for m in range(100)]).keys() == {("1m", 0), ("1m", 5 * MINUTE_NS)}
    assert store.get_bars("C", [("1m", 0)]) == {}


def test_a_symbols_latest_bar_only_moves_forward(store: Any) -> None:
    store.update_symbol("MSFT", 5)
    store.update_symbol("AAPL", 7)
    store.update_symbol("MSFT", 3)
    store.update_symbol("MSFT", 9)
    assert store.list_symbols() == [("AAPL", 7), ("MSFT", 9)]
