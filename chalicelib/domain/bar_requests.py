"""A page of bars as GET /bars asks for it: one or more symbols, any interval (intervals.py), an optional time
zone, a direction, a limit and the position to continue after; and the bars it gets back.

Symbols come one after the other in the order asked, each with its bars in the direction asked; ``limit``
counts bars over all of them. A position is the symbol's index in the query and the start of the last bar
returned, so the next page continues exactly after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from .bars import Bar
from .errors import InvalidQuery
from .intervals import Interval, Windows, windows_of
from .queries import DEFAULT_BAR_LIMIT, parse_query_symbol
from .text import show

MAX_SYMBOLS = 100


@dataclass(frozen=True)
class Position:
    """Where a page ended: the index of its symbol in the query and the start of its last bar."""

    index: int
    start_ns: int


@dataclass(frozen=True)
class BarsQuery:
    """Bars starting in [start_ns, end_ns) of each symbol, oldest first (newest first when ``descending``), at
    most ``limit`` over all symbols, after ``position``. ``zone``: local days and weeks (``zone_name`` as asked)."""

    symbols: tuple[str, ...]
    interval: Interval
    start_ns: int
    end_ns: int
    limit: int = DEFAULT_BAR_LIMIT
    descending: bool = False
    zone: tzinfo | None = None
    zone_name: str | None = None
    position: Position | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.symbols) <= MAX_SYMBOLS:
            raise InvalidQuery(f"symbols must name 1 to {MAX_SYMBOLS} symbols, got {len(self.symbols)}")
        if self.position is not None:
            if not 0 <= self.position.index < len(self.symbols):
                raise InvalidQuery("next is not a cursor of this query (it names another symbol list); pass back "
                                   'the "next" of a response to the same query')
            if not self.start_ns <= self.position.start_ns < self.end_ns:
                raise InvalidQuery("next is not a cursor of this query: it points outside [start, end); pass it "
                                   "back with the same start and end")

    @property
    def windows(self) -> Windows:
        return windows_of(self.interval, self.zone)

    def key(self) -> str:
        """What makes two queries the same for their cursors: everything but the limit and the position."""
        return "|".join((",".join(self.symbols), self.interval.text, self.zone_name or "",
                         "desc" if self.descending else "asc", str(self.start_ns), str(self.end_ns)))


@dataclass(frozen=True)
class BarsPage:
    """Each symbol's bars (with revisions) on this page, in the order asked, and where the next page starts
    (None: nothing follows)."""

    bars: dict[str, list[tuple[Bar, int]]]
    position: Position | None


def parse_query_symbols(raw: str) -> tuple[str, ...]:
    """``symbols=A,B,C``: 1 to 100 distinct symbols, each checked as ``symbol`` is."""
    names = raw.split(",")
    if len(names) > MAX_SYMBOLS:
        raise InvalidQuery(f"symbols must name 1 to {MAX_SYMBOLS} symbols, got {len(names)}")
    seen: set[str] = set()
    out = []
    for number, name in enumerate(names, 1):
        if not name:
            raise InvalidQuery(f"symbols has an empty name at position {number} (a comma too many?), "
                               "e.g. symbols=AAPL,MSFT")
        symbol = parse_query_symbol(f"symbols (position {number})", name)
        if symbol in seen:
            raise InvalidQuery(f"symbols names {show(symbol)} twice")
        seen.add(symbol)
        out.append(symbol)
    return tuple(out)

