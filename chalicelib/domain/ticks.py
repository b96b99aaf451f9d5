"""Trade ticks: the Tick value, and validation of one raw record (mapping of field -> raw value) into a Tick.

Validation is hand-written rather than a pydantic model per tick because it must keep prices exact
(``Decimal`` from the text, never via ``float``: pydantic's JSON mode rounds long decimals), read
nanosecond timestamps in several notations, and say precisely what is wrong and where. A fast path
accepts the ordinary well-formed record with a few cheap string checks; anything unusual goes through
the thorough path, which gives the verdict and the reason. Whole payloads go first through
fastpath.py, which applies these same checks column by column. ``TickColumns`` holds ticks that way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from typing import Any, NamedTuple

from .errors import RecordError
from .text import show, strip_space
from .timefmt import MAX_FUTURE_NS, MIN_TIMESTAMP_NS, TimestampError, fast_timestamp, format_ns, parse_timestamp

SYMBOL_RE = re.compile(r"[A-Za-z0-9._\-/:]{1,32}")
TOKEN_RE = re.compile(r"[A-Za-z0-9._\-/: ]{1,64}")
TICK_FIELDS = ("symbol", "price", "volume", "timestamp", "trade_id", "side", "exchange")
REQUIRED_FIELDS = ("symbol", "price", "volume")
_VALID_SYMBOLS: set[str] = set()
_CACHE_LIMIT = 100_000
_MAX_INT_VALUE = 10**18
_MAX_INT_ID = 10**40


class Tick(NamedTuple):
    """One trade. ``ts_ns`` is UTC epoch nanoseconds; ``seq`` is the tick's position in its source."""

    symbol: str
    price: Decimal
    volume: Decimal
    ts_ns: int
    seq: int
    trade_id: str | None = None
    side: str | None = None
    exchange: str | None = None


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Ticks column by column, as the fast path reads them and the queue carries them: equal-length sequences,
    one per Tick field. ``ticks()`` makes Tick values of them; ``of()`` the columns of Tick values."""

    symbols: Sequence[str]
    prices: Sequence[Decimal]
    volumes: Sequence[Decimal]
    ts_ns: Sequence[int]
    seqs: Sequence[int]
    trade_ids: Sequence[str | None]
    sides: Sequence[str | None]
    exchanges: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.ts_ns)

    def ticks(self) -> list[Tick]:
        return list(map(Tick, self.symbols, self.prices, self.volumes, self.ts_ns, self.seqs, self.trade_ids,
                        self.sides, self.exchanges))

    @classmethod
    def of(cls, ticks: Iterable[Tick]) -> TickColumns:
        ticks = list(ticks)
        if not ticks:
            return cls((), (), (), (), (), (), (), ())
        symbols, prices, volumes, ts_ns, seqs, trade_ids, sides, exchanges = zip(*ticks, strict=True)
        return cls(symbols, prices, volumes, ts_ns, seqs, trade_ids, sides, exchanges)


class FieldError(ValueError):
    """Raised by a field parser; turned into a RecordError with the record's location."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


# A decimal as text: ASCII digits, one optional point, an optional exponent. Decimal() itself would also take
# "1_000", Unicode digits and surrounding Unicode spaces.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?([0-9]+))?")
_NON_FINITE = frozenset({"nan", "snan", "inf", "infinity"})
_MAX_SCALE = 18  # decimal places kept exactly
_MAX_INTEGER_DIGITS = 18


def parse_decimal(field: str, raw: Any, *, allow_zero: bool) -> Decimal:
    if isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, bool) or raw is None:
        raise FieldError(field, f"must be a number, got {show(raw)}")
    elif isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, str):
        value = _decimal_from_text(field, raw)
    elif isinstance(raw, float):
        # Only reachable from callers that parsed JSON themselves; repr is the shortest exact round-trip.
        value = Decimal(repr(raw))
    else:
        raise FieldError(field, f"must be a number, got {type(raw).__name__}")
    if not value.is_finite():
        raise FieldError(field, f"must be finite, got {show(raw)}")
    if value < 0 or (value == 0 and not allow_zero):
        raise FieldError(field, f"must be {'>= 0' if allow_zero else '> 0'}, got {show(raw)}")
    if value == 0:
        return Decimal(0)  # no "-0" or "0E-8" in stored values
    if value.adjusted() >= _MAX_INTEGER_DIGITS:
        raise FieldError(field, f"is out of range (at most 18 digits before the point): {show(raw)}")
    sign, digits, exponent = value.as_tuple()
    if isinstance(exponent, int) and exponent < -_MAX_SCALE:
        # Trailing zeros do not change the value ("1.000000000000000000000" is 1): drop them, exactly (no
        # Decimal context, whose 28 digits would round "1.0000000000000000000000000000001" to 1).
        zeros = _trailing_zeros(digits)
        kept = min(zeros, -exponent)
        if exponent + kept < -_MAX_SCALE:
            raise FieldError(
                field, f"has more than 18 decimal places (trailing zeros aside), more than can be kept exactly: "
                f"{show(raw)}"
            )
        value = Decimal((sign, digits[: len(digits) - kept] or (0,), exponent + kept))
    return value


def _trailing_zeros(digits: tuple[int, ...]) -> int:
    count = 0
    for digit in reversed(digits):
        if digit:
            break
        count += 1
    return count


def _decimal_from_text(field: str, raw: str) -> Decimal:
    text = strip_space(raw)
    if not text:
        raise FieldError(field, "is empty")
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        if text.lower().lstrip("+-") in _NON_FINITE:
            raise FieldError(field, f"must be finite, got {show(raw)}")
        foreign = [c for c in text if not c.isascii()]
        if "_" in text:
            detail = " (digit separators '_' are not allowed)"
        elif any(c.isdigit() or c.isnumeric() for c in foreign):
            detail = " (only the digits 0-9 are digits)"
        elif foreign:
            detail = f" (contains the character {foreign[0]!r})"
        else:
            detail = ""
        raise FieldError(field, f"is not a number: {show(raw)}{detail}")
    exponent = match.group(1)
    if exponent is not None and len(exponent.lstrip("0")) > 6:
        raise FieldError(field, f"is out of range: {show(raw)}")
    return Decimal(text)


def parse_symbol(raw: Any) -> str:
    if not isinstance(raw, str):
        raise FieldError("symbol", f"must be a string, got {show(raw)}")
    text = strip_space(raw)
    if not SYMBOL_RE.fullmatch(text):
        raise FieldError(
            "symbol", f"must be 1-32 letters, digits or . - _ / :, got {show(raw)}"
        )
    return text


def parse_token(field: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise FieldError(field, f"must be a string, got {show(raw)}")
    text = strip_space(str(raw))
    if not text:
        return None
    if not TOKEN_RE.fullmatch(text):
        raise FieldError(field, f"must be 1-64 printable characters, got {show(raw)}")
    return text


def _fast_tick(
    record: Mapping[str, Any], seq: int, received_ns: int, default_symbol: str | None,
    timestamp_unit: str | None,
) -> Tick | None:
    """The tick of an ordinary, well-formed record; None leaves the verdict to the thorough path.

    Written inline (no helper calls per field): it runs for every tick of every ingestion.
    """
    get: Any = record.get
    symbol = get("symbol")
    if symbol is None or symbol == "":
        symbol = default_symbol
    if type(symbol) is not str:
        return None
    if symbol not in _VALID_SYMBOLS:
        if not SYMBOL_RE.fullmatch(symbol):
            return None
        if len(_VALID_SYMBOLS) < _CACHE_LIMIT:
            _VALID_SYMBOLS.add(symbol)
    price = plain_decimal(get("price"))
    volume = plain_decimal(get("volume"))
    if price is None or volume is None or not price:
        return None
    raw_ts = get("timestamp")
    if raw_ts is None or raw_ts == "":
        ts_ns = received_ns
    else:
        found = fast_timestamp(raw_ts, timestamp_unit)
        if found is None or found < MIN_TIMESTAMP_NS or found > received_ns + MAX_FUTURE_NS:
            return None
        ts_ns = found
    trade_id = get("trade_id")
    if trade_id is not None:
        if type(trade_id) is int and 0 <= trade_id < _MAX_INT_ID:
            trade_id = str(trade_id)
        elif type(trade_id) is not str or not clean_token(trade_id):
            return None
    side = get("side")
    if side is not None:
        if type(side) is not str or not clean_token(side):
            return None
        side = side.lower()
    exchange = get("exchange")
    if exchange is not None and (type(exchange) is not str or not clean_token(exchange)):
        return None
    return Tick(symbol, price, volume, ts_ns, seq, trade_id, side, exchange)


def plain_decimal(raw: Any) -> Decimal | None:
    """A decimal written plainly: digits with at most one point, at most 18 digits each side; else None.

    That shape is finite, not negative and in range by construction, so no Decimal checks are needed.
    """
    kind = type(raw)
    if kind is str:
        text = raw
    elif kind is Decimal:
        text = str(raw)
    elif kind is int:
        return Decimal(raw) if 0 <= raw < _MAX_INT_VALUE else None
    else:
        return None
    # isascii() first: isdigit() alone is true for "²", "١" and "１", which Decimal() then refuses or misreads.
    if not text.isascii():
        return None
    point = text.find(".")
    if point < 0:
        if not (0 < len(text) <= 18 and text.isdigit()):
            return None
    elif not (0 < point <= 18 and len(text) - point <= 19 and text[:point].isdigit()
              and (point + 1 == len(text) or text[point + 1:].isdigit())):
        return None
    return raw if kind is Decimal else Decimal(text)


def clean_token(text: str) -> bool:
    return bool(text) and text[0] != " " and text[-1] != " " and TOKEN_RE.fullmatch(text) is not None


def tick_from_record(
    record: Mapping[str, Any],
    *,
    location: str,
    seq: int,
    received_ns: int,
    default_symbol: str | None = None,
    timestamp_unit: str | None = None,
    zone: tzinfo | None = None,
    timestamp_format: str | None = None,
) -> tuple[Tick | None, list[RecordError]]:
    """Validate one record. Returns the tick, or None and every problem found in the record. ``zone`` and
    ``timestamp_format`` say how to read text times (see timefmt.parse_timestamp)."""
    if zone is None and timestamp_format is None:
        tick = _fast_tick(record, seq, received_ns, default_symbol, timestamp_unit)
        if tick is not None:
            return tick, []
    errors: list[RecordError] = []
    symbol = price = volume = None
    ts_ns = received_ns
    trade_id = side = exchange = None
    raw_symbol = record.get("symbol")
    if raw_symbol is None or raw_symbol == "":
        raw_symbol = default_symbol
    try:
        if raw_symbol is None:
            raise FieldError("symbol", "is required")
        symbol = parse_symbol(raw_symbol)
    except FieldError as exc:
        errors.append(RecordError(location, exc.field, exc.reason))
    for field, allow_zero in (("price", False), ("volume", True)):
        raw = record.get(field)
        try:
            if raw is None:
                raise FieldError(field, "is required")
            value = parse_decimal(field, raw, allow_zero=allow_zero)
            if field == "price":
                price = value
            else:
                volume = value
        except FieldError as exc:
            errors.append(RecordError(location, exc.field, exc.reason))
    raw_ts = record.get("timestamp")
    if raw_ts is not None and raw_ts != "":
        try:
            ts_ns = parse_timestamp(raw_ts, unit=timestamp_unit, zone=zone, fmt=timestamp_format)
            if ts_ns < MIN_TIMESTAMP_NS or ts_ns > received_ns + MAX_FUTURE_NS:
                raise TimestampError(
                    f"{format_ns(ts_ns)} is outside the accepted range "
                    f"({format_ns(MIN_TIMESTAMP_NS)} to one day after receipt)"
                )
        except TimestampError as exc:
            errors.append(RecordError(location, "timestamp", str(exc)))
    for field in ("trade_id", "side", "exchange"):
        try:
            value_s = parse_token(field, record.get(field))
        except FieldError as exc:
            errors.append(RecordError(location, exc.field, exc.reason))
            continue
        if field == "trade_id":
            trade_id = value_s
        elif field == "side":
            side = value_s.lower() if value_s else None
        else:
            exchange = value_s
    if errors or symbol is None or price is None or volume is None:
        return None, errors
    return Tick(symbol, price, volume, ts_ns, seq, trade_id, side, exchange), errors
