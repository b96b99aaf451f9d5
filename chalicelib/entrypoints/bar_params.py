"""GET /bars's query string: which parameters it takes, each once; the typed query; the ``next`` cursor and the
``next_url`` that carries it.

The cursor is opaque and URL-safe: 24 base64url characters holding a format version, the index of the symbol
the page ended in, the start of its last bar, and a tag (BLAKE2b) of these and of the query they belong to
(symbols, interval, tz, sort, start and end; not the limit, which may change from page to page). A cursor of
another query, or one altered, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from ..domain.bar_requests import BarsQuery, Position, parse_query_symbols
from ..domain.errors import InvalidQuery
from ..domain.intervals import parse_bar_interval, parse_zone
from ..domain.queries import DEFAULT_BAR_LIMIT, MAX_BAR_LIMIT, parse_count, parse_query_symbol, parse_time_range
from ..domain.text import show

BAR_PARAMETERS = ("symbol", "symbols", "interval", "start", "end", "limit", "sort", "tz", "next")
SORTS = {"asc": False, "desc": True}
CURSOR_VERSION = 1
CURSOR_LAYOUT = struct.Struct(">BBq8s")  # version, symbol index, bar start (ns), tag
CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]{24}", re.ASCII)
NOT_A_CURSOR = 'next is not a cursor this API returned; pass back the "next" of a response'
NOT_THIS_QUERY = ("next is not a cursor of this query: pass it back with the same symbol or symbols, interval, tz, "
                  "sort, start and end")
URL_SAFE = ":,/"  # left as they are in next_url's values (they mean nothing special in a query string)


def single_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter's one value; InvalidQuery naming every unknown parameter, else every repeated one.

    ``params`` is Chalice's query string (a MultiDict: ``getlist`` has every value) or a plain mapping."""
    unknown = [name for name in params if name not in BAR_PARAMETERS]
    if unknown:
        raise InvalidQuery(f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(show(name) for name in unknown)}; GET /bars takes "
                           f"{', '.join(BAR_PARAMETERS)}")
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        repeated = [name for name in params if len(getlist(name)) > 1]
        if repeated:
            raise InvalidQuery(f"query parameter{'s' if len(repeated) > 1 else ''} "
                               f"{', '.join(show(name) for name in repeated)} given more than once; give each once "
                               "(symbols takes a comma-separated list: symbols=AAPL,MSFT)")
    return {name: params[name] for name in params}


def bars_query(values: Mapping[str, str]) -> BarsQuery:
    """The query of GET /bars's parameters (each given once); InvalidQuery naming the one that is wrong."""
    symbol, symbols = values.get("symbol"), values.get("symbols")
    if symbol is not None and symbols is not None:
        raise InvalidQuery("give symbol (one) or symbols (a comma-separated list), not both")
    names = parse_query_symbols(symbols) if symbols is not None else (parse_query_symbol("symbol", symbol),)
    interval = parse_bar_interval(values.get("interval"))
    zone_name = values.get("tz")
    zone = parse_zone(zone_name, interval) if zone_name is not None else None
    sort = values.get("sort", "asc")
    if sort not in SORTS:
        raise InvalidQuery(f"sort must be asc (oldest first) or desc (newest first), got {show(sort)}")
    start, end = parse_time_range(values.get("start"), values.get("end"))
    limit = parse_count("limit", values.get("limit"), DEFAULT_BAR_LIMIT, MAX_BAR_LIMIT)
    query = BarsQuery(names, interval, start, end, limit, SORTS[sort], zone, zone_name)
    cursor = values.get("next")
    if cursor is None or cursor == "":
        return query
    position, tag = decode_cursor(cursor)
    query = replace(query, position=position)  # refused if it points outside [start, end)
    if tag != cursor_tag(query, position):
        raise InvalidQuery(NOT_THIS_QUERY)
    return query


def cursor_tag(query: BarsQuery, position: Position) -> bytes:
    text = f"{query.key()}|{position.index}|{position.start_ns}"
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def encode_cursor(query: BarsQuery, position: Position) -> str:
    raw = CURSOR_LAYOUT.pack(CURSOR_VERSION, position.index, position.start_ns, cursor_tag(query, position))
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[Position, bytes]:
    """The position a cursor carries and its tag; InvalidQuery if it is not a cursor at all."""
    if not CURSOR_CHARS.fullmatch(cursor):
        raise InvalidQuery(NOT_A_CURSOR)
    version, index, start, tag = CURSOR_LAYOUT.unpack(base64.urlsafe_b64decode(cursor))
    if version != CURSOR_VERSION:
        raise InvalidQuery(NOT_A_CURSOR)
    return Position(index, start), tag


def next_url(base: str, values: Mapping[str, str], cursor: str) -> str:
    """The URL of the next page: the same parameters, in the order given, with ``next``."""
    kept = [(name, value) for name, value in values.items() if name != "next"] + [("next", cursor)]
    return f"{base}/bars?" + "&".join(f"{quote(name, safe='')}={quote(value, safe=URL_SAFE)}" for name, value in kept)
