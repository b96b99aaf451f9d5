"""Partial aggregates, dirty windows, bars and symbols in the table (see table.py for the layout)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ...domain.bars import Bar
from ...ports import HOUR_NS, DirtyWindow, dirty_hours
from .table import Table, time_range


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
    """PartialStore, DirtyWindowStore, BarStore and SymbolStore on the table."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # -- partial aggregates ----------------------------------------------------------------
    def put_partials(self, source: str, partials: Iterable[Bar]) -> int:
        requests = [
            {"PutRequest": {"Item": {
                "pk": {"S": f"P#{bar.symbol}"}, "sk": {"S": f"{bar.start_ns:020d}#{source}"}, **_bar_attrs(bar)
            }}}
            for bar in partials
        ]
        self._table.batch_write(requests)
        return len(requests)

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
    # One marker item per (symbol, hour) holds the set of dirty minutes and a token. Marking adds
    # minutes and replaces the token; clearing deletes the item only if the token is still the one
    # that was read, so a minute marked during an aggregation is never lost (the hour is redone).
    def mark_dirty(self, windows: Iterable[tuple[str, int]], token: str) -> None:
        by_hour: dict[tuple[str, int], set[int]] = {}
        for symbol, minute in windows:
            by_hour.setdefault((symbol, minute - minute % HOUR_NS), set()).add(minute)
        for (symbol, hour), minutes in sorted(by_hour.items()):
            self._table.update(
                Key={"pk": {"S": "D"}, "sk": {"S": f"{symbol}#{hour:020d}"}},
                UpdateExpression="SET tok = :t ADD m :m",
                ExpressionAttributeValues={":t": {"S": token}, ":m": {"NS": [str(m) for m in sorted(minutes)]}},
            )

    def list_dirty(self, symbols: Iterable[str] | None, limit: int) -> list[DirtyWindow]:
        out: list[DirtyWindow] = []
        if symbols is None:
            queries = [{"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "D"}}}]
        else:
            queries = [
                {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
                 "ExpressionAttributeValues": {":pk": {"S": "D"}, ":p": {"S": f"{s}#"}}}
                for s in sorted(set(symbols))
            ]
        for query in queries:
            for item in self._table.query(ConsistentRead=True, **query):
                symbol = item["sk"]["S"].rpartition("#")[0]
                token = item["tok"]["S"]
                out.extend((symbol, int(m), token) for m in sorted(item["m"]["NS"], key=int))
                if len(out) >= limit:
                    return out
        return out

    def clear_dirty(self, entries: Iterable[DirtyWindow]) -> int:
        cleared = 0
        for (symbol, hour, token), minutes in sorted(dirty_hours(entries).items()):
            if self._table.delete_if({"pk": {"S": "D"}, "sk": {"S": f"{symbol}#{hour:020d}"}}, "tok = :t",
                                     {":t": {"S": token}}):
                cleared += minutes
        return cleared

    # -- bars ------------------------------------------------------------------------------
    def query_bars(
        self, symbol: str, interval: str, first_start: int, last_start: int,
        limit: int | None = None, after: int | None = None,
    ) -> tuple[list[tuple[Bar, int]], int | None]:
        lo = max(first_start, after + 1) if after is not None else first_start
        out: list[tuple[Bar, int]] = []
        keys = time_range(lo, last_start)
        if keys is None:
            return out, None
        for item in self._table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": f"B#{symbol}#{interval}"}, ":lo": {"S": keys[0]},
                                       ":hi": {"S": keys[1]}},
            # The aggregator reads back bars it has just written (5m from the fresh 1m...): an eventually
            # consistent read could miss them, and the window would then be cleared with a stale bar.
            ConsistentRead=True,
        ):
            start = int(item["sk"]["S"])
            out.append((_bar_from_item(item, symbol, interval, start), int(item.get("rev", {"N": "1"})["N"])))
            if limit is not None and len(out) > limit:
                return out[:limit], out[limit - 1][0].start_ns
        return out, None

    def put_bars(self, bars: Iterable[tuple[Bar, int]], updated_ns: int) -> int:
        requests = [
            {"PutRequest": {"Item": {
                "pk": {"S": f"B#{bar.symbol}#{bar.interval}"}, "sk": {"S": f"{bar.start_ns:020d}"},
                "rev": {"N": str(rev)}, "upd": {"N": str(updated_ns)}, **_bar_attrs(bar),
            }}}
            for bar, rev in bars
        ]
        self._table.batch_write(requests)
        return len(requests)

    def delete_bars(self, keys: Iterable[tuple[str, str, int]]) -> None:
        self._table.batch_write([
            {"DeleteRequest": {"Key": {"pk": {"S": f"B#{s}#{iv}"}, "sk": {"S": f"{start:020d}"}}}}
            for s, iv, start in keys
        ])

    # -- symbols ---------------------------------------------------------------------------
    def update_symbol(self, symbol: str, latest_bar_ns: int) -> None:
        self._table.update_unless_failed(
            Key={"pk": {"S": "S"}, "sk": {"S": symbol}},
            UpdateExpression="SET latest = :t",
            ConditionExpression="attribute_not_exists(latest) OR latest < :t",
            ExpressionAttributeValues={":t": {"N": str(latest_bar_ns)}},
        )

    def list_symbols(self) -> list[tuple[str, int]]:
        return [
            (item["sk"]["S"], int(item["latest"]["N"]))
            for item in self._table.query(KeyConditionExpression="pk = :pk",
                                          ExpressionAttributeValues={":pk": {"S": "S"}})
        ]
