"""Partial aggregates, dirty windows, leases, bars and symbols in the table (see table.py for the layout)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ...domain.bars import Bar
from ...domain.errors import LeaseLost, TransientError
from ...ports import HOUR_NS, DirtyWindow, Lease, dirty_marks
from .layout import all_shards, shard_of
from .table import BATCH_GET_KEYS, CONDITION_FAILED, Table, time_range

# A transaction holds at most 100 items: the lease check and 99 writes.
TRANSACTION_WRITES = 99
LEASE_ATTEMPTS = 5


def _lease_key(symbol: str) -> dict[str, Any]:
    return {"pk": {"S": f"L#{symbol}"}, "sk": {"S": "LEASE"}}


def _mark_key(mark: tuple[str, int, str]) -> dict[str, Any]:
    symbol, hour, token = mark
    return {"pk": {"S": f"D#{shard_of(symbol)}"}, "sk": {"S": f"{symbol}#{hour:020d}#{token}"}}


def _withdrawals(item: dict[str, Any]) -> int:
    return int(item.get("wd", {}).get("N", "0"))


def _bar_attrs(bar: Bar) -> dict[str, Any]:
    return {
        "o": {"S": str(bar.open)}, "h": {"S": str(bar.high)}, "l": {"S": str(bar.low)},
        "c": {"S": str(bar.close)}, "v": {"S": str(bar.volume)}, "n": {"S": str(bar.notional)},
        "t": {"N": str(bar.trades)}, "f": {"N": str(bar.first_ns)}, "z": {"N": str(bar.last_ns)},
        "ok": {"S": bar.open_key}, "ck": {"S": bar.close_key},
    }


def _bar_from_item(item: dict[str, Any], symbol: str, interval: str, start_ns: int) -> Bar:
    return Bar(
        symbol=symbol, interval=interval, start_ns=start_ns,
        open=Decimal(item["o"]["S"]), high=Decimal(item["h"]["S"]), low=Decimal(item["l"]["S"]),
        close=Decimal(item["c"]["S"]), volume=Decimal(item["v"]["S"]), notional=Decimal(item["n"]["S"]),
        trades=int(item["t"]["N"]), first_ns=int(item["f"]["N"]), last_ns=int(item["z"]["N"]),
        open_key=item["ok"]["S"], close_key=item["ck"]["S"],
    )


class MarketRecords:
    """PartialStore, DirtyWindowStore, LeaseStore, BarStore and SymbolStore on the table."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # -- partial aggregates ----------------------------------------------------------------
    def put_partials(self, source: str, partials: Iterable[Bar]) -> int:
        return self.put_partials_of([(source, partials)])

    def put_partials_of(self, sources: Sequence[tuple[str, Iterable[Bar]]]) -> int:
        # By key, so that a source given twice (one message delivered twice in a batch) is one request item:
        # BatchWriteItem refuses a batch that names a key twice.
        items = {(bar.symbol, bar.start_ns, source): bar for source, partials in sources for bar in partials}
        self._table.batch_write([
            {"PutRequest": {"Item": {
                "pk": {"S": f"P#{symbol}"}, "sk": {"S": f"{start:020d}#{source}"}, **_bar_attrs(bar)
            }}}
            for (symbol, start, source), bar in items.items()
        ])
        return len(items)

    def _partial_items(self, symbol: str, first_minute: int, last_minute: int, **extra: Any) -> Iterable[Any]:
        keys = time_range(first_minute, last_minute)
        if keys is None:
            return []
        return self._table.query(
            KeyConditionExpression="pk = :pk AND #sk BETWEEN :lo AND :hi", ExpressionAttributeNames={"#sk": "sk"},
            ExpressionAttributeValues={":pk": {"S": f"P#{symbol}"}, ":lo": {"S": keys[0]}, ":hi": {"S": keys[1] + "~"}},
            ConsistentRead=True, **extra)

    def query_partials(self, symbol: str, first_minute: int, last_minute: int) -> list[tuple[str, Bar]]:
        out = []
        for item in self._partial_items(symbol, first_minute, last_minute):
            sort_key = item["sk"]["S"]
            out.append((sort_key[21:], _bar_from_item(item, symbol, "1m", int(sort_key[:20]))))
        return out

    def list_partial_minutes(self, symbol: str, first_minute: int, last_minute: int) -> list[int]:
        items = self._partial_items(symbol, first_minute, last_minute, ProjectionExpression="#sk")
        return sorted({int(item["sk"]["S"][:20]) for item in items})

    # -- dirty windows ---------------------------------------------------------------------
    # One immutable item per (symbol, hour, mark token), under the symbol's shard: marking puts new items
    # (batched, no read-modify-write), clearing deletes exactly the items that were read.
    def mark_dirty(self, windows: Iterable[tuple[str, int]], token: str) -> None:
        by_hour: dict[tuple[str, int], set[int]] = {}
        for symbol, minute in windows:
            by_hour.setdefault((symbol, minute - minute % HOUR_NS), set()).add(minute)
        self._table.batch_write([
            {"PutRequest": {"Item": {
                "pk": {"S": f"D#{shard_of(symbol)}"}, "sk": {"S": f"{symbol}#{hour:020d}#{token}"},
                "m": {"NS": [str(m) for m in sorted(minutes)]},
            }}}
            for (symbol, hour), minutes in sorted(by_hour.items())
        ])

    def _mark_queries(self, symbols: Iterable[str] | None) -> list[dict[str, Any]]:
        if symbols is None:
            return [{"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": f"D#{shard}"}}}
                    for shard in all_shards()]
        return [
            {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
             "ExpressionAttributeValues": {":pk": {"S": f"D#{shard_of(s)}"}, ":p": {"S": f"{s}#"}}}
            for s in sorted(set(symbols))
        ]

    def list_dirty(self, symbols: Iterable[str] | None, limit: int) -> list[DirtyWindow]:
        out: list[DirtyWindow] = []
        for query in self._mark_queries(symbols):
            for item in self._table.query(ConsistentRead=True, **query):
                symbol, _, token = item["sk"]["S"].rsplit("#", 2)
                out.extend((symbol, int(m), token) for m in item["m"]["NS"])
                if len(out) >= limit:
                    return sorted(out)
        return sorted(out)

    def clear_dirty(self, entries: Iterable[DirtyWindow]) -> int:
        marks = dirty_marks(entries)
        self._table.batch_write([{"DeleteRequest": {"Key": _mark_key(mark)}} for mark in sorted(marks)])
        return sum(marks.values())

    def dirty_symbols(self) -> list[str]:
        symbols: set[str] = set()
        for query in self._mark_queries(None):
            for item in self._table.query(ConsistentRead=True, ProjectionExpression="sk", **query):
                symbols.add(item["sk"]["S"].rsplit("#", 2)[0])
        return sorted(symbols)

    def any_dirty(self, symbol: str, first_minute: int, last_minute: int) -> bool:
        keys = time_range(first_minute - first_minute % HOUR_NS, last_minute)
        if keys is None:
            return False
        for _ in self._table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": f"D#{shard_of(symbol)}"}, ":lo": {"S": f"{symbol}#{keys[0]}"},
                                       ":hi": {"S": f"{symbol}#{keys[1]}~"}},
            ConsistentRead=True, Limit=1, ProjectionExpression="sk",
        ):
            return True
        return False

    def still_marked(self, marks: Iterable[tuple[str, int, str]]) -> set[str]:
        keys = [{"pk": {"S": f"D#{shard_of(symbol)}"}, "sk": {"S": f"{symbol}#{hour:020d}#{token}"}}
                for symbol, hour, token in sorted(set(marks))]
        found: set[str] = set()
        for i in range(0, len(keys), BATCH_GET_KEYS):
            for item in self._table.batch_get(keys[i : i + BATCH_GET_KEYS], projection="sk"):
                found.add(item["sk"]["S"].rsplit("#", 2)[0])
        return found

    # -- leases ----------------------------------------------------------------------------
    # One item per symbol: the token of the run that holds it and when it expires. Every bar write is a
    # transaction that checks the token, so a run whose lease passed to another cannot write.
    def acquire_lease(self, symbol: str, token: str, now_ns: int, ttl_ns: int, ask: bool = True) -> Lease | None:
        for _ in range(LEASE_ATTEMPTS):
            acquired, held = self._table.update_or_old(
                Key=_lease_key(symbol), UpdateExpression="SET tok = :t, exp = :e REMOVE want",
                ConditionExpression="attribute_not_exists(tok) OR exp < :now",
                ExpressionAttributeValues={":t": {"S": token}, ":e": {"N": str(now_ns + ttl_ns)},
                                           ":now": {"N": str(now_ns)}},
            )
            if acquired:
                after = held.get("nxt", {}).get("N")
                return Lease(symbol, token, int(after) if after is not None else None, _withdrawals(held))
            # Held: ask the holder to look again when it lets go, unless it let go meanwhile (then try again).
            # Asked already (the refusal returns the item): the holder looks again after it lets go, and this
            # run's marks, written before it came, are there to be found then.
            if not ask or (held.get("want", {}).get("BOOL") and "tok" in held):
                return None
            if self._table.update_unless_failed(
                Key=_lease_key(symbol), UpdateExpression="SET want = :y", ConditionExpression="tok = :h",
                ExpressionAttributeValues={":y": {"BOOL": True}, ":h": held["tok"]},
            ):
                return None
        raise TransientError(f"the lease on {symbol} changed hands {LEASE_ATTEMPTS} times while it was asked for")

    def renew_lease(self, lease: Lease, now_ns: int, ttl_ns: int) -> Lease | None:
        renewed, held = self._table.update_or_old(
            Key=_lease_key(lease.symbol), UpdateExpression="SET exp = :e", ConditionExpression="tok = :t",
            ExpressionAttributeValues={":t": {"S": lease.token}, ":e": {"N": str(now_ns + ttl_ns)}},
        )
        return replace(lease, withdrawals=_withdrawals(held)) if renewed else None

    def note_withdrawals(self, symbols: Iterable[str]) -> None:
        for symbol in sorted(set(symbols)):
            self._table.update(Key=_lease_key(symbol), UpdateExpression="ADD wd :one",
                               ExpressionAttributeValues={":one": {"N": "1"}})

    def release_lease(self, lease: Lease, next_round_ns: int | None = None) -> bool:
        values: dict[str, Any] = {":t": {"S": lease.token}}
        expression = "REMOVE tok, exp, want"
        if next_round_ns is not None:
            expression += " SET nxt = :n"
            values[":n"] = {"N": str(next_round_ns)}
        try:
            old = self._table.update(
                Key=_lease_key(lease.symbol), UpdateExpression=expression, ConditionExpression="tok = :t",
                ExpressionAttributeValues=values, ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False
        return bool(old.get("want", {}).get("BOOL"))

    # -- bars ------------------------------------------------------------------------------
    def query_bars(
        self, symbol: str, interval: str, first_start: int, last_start: int,
        limit: int | None = None, after: int | None = None, descending: bool = False,
    ) -> tuple[list[tuple[Bar, int]], int | None]:
        lo, hi = first_start, last_start
        if after is not None:
            lo, hi = (lo, min(hi, after - 1)) if descending else (max(lo, after + 1), hi)
        out: list[tuple[Bar, int]] = []
        keys = time_range(lo, hi)
        if keys is None or (limit is not None and limit < 1):
            return out, None
        for item in self._table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": f"B#{symbol}#{interval}"}, ":lo": {"S": keys[0]},
                                       ":hi": {"S": keys[1]}},
            ScanIndexForward=not descending,
            # The aggregator reads back bars it has just written (5m from the fresh 1m...): an eventually
            # consistent read could miss them, and the window would then be cleared with a stale bar.
            ConsistentRead=True,
            # One more than asked tells whether more follow, and no page reads past it.
            max_items=None if limit is None else limit + 1,
        ):
            start = int(item["sk"]["S"])
            out.append((_bar_from_item(item, symbol, interval, start), int(item.get("rev", {"N": "1"})["N"])))
            if limit is not None and len(out) > limit:
                return out[:limit], out[limit - 1][0].start_ns
        return out, None

    def get_bars(self, symbol: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], tuple[Bar, int]]:
        out: dict[tuple[str, int], tuple[Bar, int]] = {}
        for item in self._table.batch_get([
            {"pk": {"S": f"B#{symbol}#{interval}"}, "sk": {"S": f"{start:020d}"}} for interval, start in keys
        ]):
            interval, start = item["pk"]["S"].rsplit("#", 1)[1], int(item["sk"]["S"])
            revision = int(item.get("rev", {"N": "1"})["N"])
            out[(interval, start)] = (_bar_from_item(item, symbol, interval, start), revision)
        return out

    def write_bars(self, lease: Lease, puts: Sequence[tuple[Bar, int]], deletes: Sequence[tuple[str, int]],
                   updated_ns: int, latest_ns: int | None = None, cleared: Iterable[DirtyWindow] = ()) -> None:
        symbol = lease.symbol
        writes: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table.name, "Item": {
                "pk": {"S": f"B#{symbol}#{bar.interval}"}, "sk": {"S": f"{bar.start_ns:020d}"},
                "rev": {"N": str(rev)}, "upd": {"N": str(updated_ns)}, **_bar_attrs(bar),
            }}}
            for bar, rev in puts
        ] + [
            {"Delete": {"TableName": self._table.name,
                        "Key": {"pk": {"S": f"B#{symbol}#{interval}"}, "sk": {"S": f"{start:020d}"}}}}
            for interval, start in deletes
        ]
        # The latest time and the marks after the bars: a group is written only after the ones before it, so
        # /symbols names a bar only once it is stored, and a mark goes only once every bar did.
        latest = None
        if latest_ns is not None:
            latest = {"Update": {"TableName": self._table.name, **self._symbol_update(symbol, latest_ns)}}
            writes.append(latest)
        writes += [{"Delete": {"TableName": self._table.name, "Key": _mark_key(mark)}}
                   for mark in sorted(dirty_marks(cleared))]
        fence = {"ConditionCheck": {"TableName": self._table.name, "Key": _lease_key(symbol),
                                    "ConditionExpression": "tok = :t",
                                    "ExpressionAttributeValues": {":t": {"S": lease.token}}}}
        for i in range(0, len(writes), TRANSACTION_WRITES):
            group = [fence, *writes[i : i + TRANSACTION_WRITES]]
            failed = self._table.transact_write_failures(group)
            if failed and not failed[0] and any(item is latest for item in group):
                # The stored latest start is later already (its condition failed): the group without it.
                failed = self._table.transact_write_failures([item for item in group if item is not latest])
            if failed and failed[0]:
                raise LeaseLost(f"the lease on {symbol} passed to another run")
            if failed:  # no other item has a condition
                raise TransientError(f"DynamoDB cancelled the bar writes of {symbol}: a condition failed")

    # -- symbols ---------------------------------------------------------------------------
    @staticmethod
    def _symbol_update(symbol: str, latest_bar_ns: int) -> dict[str, Any]:
        return {"Key": {"pk": {"S": f"S#{shard_of(symbol)}"}, "sk": {"S": symbol}},
                "UpdateExpression": "SET latest = :t",
                "ConditionExpression": "attribute_not_exists(latest) OR latest < :t",
                "ExpressionAttributeValues": {":t": {"N": str(latest_bar_ns)}}}

    # -- symbols ---------------------------------------------------------------------------
    def update_symbol(self, symbol: str, latest_bar_ns: int) -> None:
        self._table.update_unless_failed(**self._symbol_update(symbol, latest_bar_ns))

    def list_symbols(self) -> list[tuple[str, int]]:
        return sorted(
            (item["sk"]["S"], int(item["latest"]["N"]))
            for shard in all_shards()
            for item in self._table.query(KeyConditionExpression="pk = :pk",
                                          ExpressionAttributeValues={":pk": {"S": f"S#{shard}"}})
        )
