"""Reading numbers out of text strictly: only ASCII digits are digits, only ASCII white space is space.

Python is generous here: ``str.isdigit()`` is true for ``²``, ``①``, ``١٢٣`` and ``１２``, ``int()`` and
``Decimal()`` accept Arabic-Indic and full-width digits and ``_`` separators, ``\\d`` in a ``str`` pattern
matches any Unicode digit, and ``str.strip()`` removes Unicode spaces. A market-data file or request that
relies on any of that is far more likely a client bug than an intent, and some of those characters make
the conversions raise later; every parser of the pipeline goes through these helpers instead.
"""

from __future__ import annotations

from decimal import Decimal

ASCII_SPACE = " \t\r\n\x0b\x0c"


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the characters 0-9 and nothing else."""
    return text.isascii() and text.isdigit()


def strip_space(text: str) -> str:
    """``text`` without leading and trailing ASCII white space (other spaces are data)."""
    return text.strip(ASCII_SPACE)


def parse_whole_number(raw: str, minimum: int, maximum: int) -> int:
    """A whole number written with ASCII digits only (no sign, ``_`` or spaces inside); ValueError says why."""
    text = strip_space(raw)
    if not ascii_digits(text):
        raise ValueError(f"must be a whole number written with the digits 0-9, got {show(raw)}")
    if len(text) > 18 or not minimum <= int(text) <= maximum:
        raise ValueError(f"must be between {minimum} and {maximum}, got {show(raw)}")
    return int(text)


def show(raw: object, width: int = 40) -> str:
    """A short, unambiguous rendering of a raw value for an error message (a JSON number as written)."""
    text = str(raw) if isinstance(raw, Decimal) else repr(raw)
    return text if len(text) <= width else text[: width - 3] + "..."
