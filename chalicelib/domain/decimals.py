"""The one text form of every price, volume and VWAP the API prints.

Plain notation (never an exponent), no trailing zeros in the fraction and no point when nothing follows it:
``414`` (not ``414.0`` or ``4.14E+2``), ``0.00139676``, ``5528.5``, ``0`` for any zero. Only zeros after the last
non-zero digit of the fraction are dropped, so the text reads back as exactly the same value: nothing is rounded,
however many digits the value has (``Decimal.normalize`` would round to the context's 28 digits).
"""

from __future__ import annotations

from decimal import Decimal


def decimal_text(value: Decimal) -> str:
    """``value`` in the API's form (see the module docstring); ValueError for NaN and infinities."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    if not value:
        return "0"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    kept = len(digits)
    while exponent < 0 and kept > 1 and digits[kept - 1] == 0:
        kept -= 1
        exponent += 1
    return format(Decimal((sign, digits[:kept], exponent)), "f")
