"""Money as integer fen (分).

Amounts arrive as yuan strings with at most two decimals; they are parsed with ``Decimal`` so no
binary rounding can ever change a price, and stored as whole fen.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from memberops.kit.errors import ValidationFailed

_FEN_PER_YUAN = 100
#: No single amount reaches ten billion yuan; anything larger is a typo or an attack, and
#: refusing it keeps every sum inside a 64-bit column.
MAX_YUAN = Decimal(10_000_000_000)


class InvalidAmount(ValidationFailed, ValueError):
    """An amount that is not a non-negative yuan value with at most two decimals."""

    code = "invalid_amount"


def yuan_to_fen(value: str | int | Decimal, *, allow_zero: bool = True) -> int:
    """Return the whole number of fen in a yuan amount such as ``"36.80"``.

    Floats are refused on purpose: ``0.1 + 0.2`` must never reach a ledger.
    """
    if isinstance(value, (bool, float)):
        raise InvalidAmount(f"must be a decimal string, not {type(value).__name__}")
    text = str(value).strip()
    if "e" in text.lower():
        raise InvalidAmount(f"{value!r} is not a plain decimal number")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidAmount(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise InvalidAmount(f"{value!r} is not a number")
    if amount < 0:
        raise InvalidAmount(f"{value!r} is negative")
    if amount >= MAX_YUAN:
        raise InvalidAmount(f"{value!r} is too large")
    if not allow_zero and amount == 0:
        raise InvalidAmount("must be greater than zero")
    fen = amount * _FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise InvalidAmount(f"{value!r} has more than two decimals")
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    """Format fen as a yuan string with exactly two decimals (``3680`` -> ``"36.80"``)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), _FEN_PER_YUAN)
    return f"{sign}{whole}.{cents:02d}"
