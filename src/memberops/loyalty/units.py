"""The value types a programme document is written in: codes, yuan amounts, multipliers.

Money in the document is written the way every other input of memberops is (ADR 0003): yuan, as a
decimal string with at most two decimals (``"19.90"``) or a whole number (``20``). It is held as
integer fen in fields named ``*_fen`` and written back as yuan strings, so a dumped programme loads
again unchanged. Floats are refused for money. Multipliers and rates are exact ``Decimal`` values
with at most two decimals; there a TOML float such as ``1.5`` is accepted, read through its shortest
decimal spelling, because a multiplier never reaches a ledger without an explicit floor.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from memberops.kit.money import fen_to_yuan, yuan_to_fen

_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def _check_code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError(f'"{value}" is not a code: use 1–64 lower-case letters, digits, _ or -')
    return value


#: Codes of tiers, coupon templates, packs, rewards, plans, tasks and promotions: what an operator
#: types in a CLI and what a ledger row records, so short, lower-case and free of spaces.
Code = Annotated[str, AfterValidator(_check_code)]
#: Names shown to people: anything non-blank.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
#: Codes of the brand's catalogue and stores (``DUR-MST``, ``SH001``, ``榴莲``) as the orders carry them.
Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: Whole points or growth value: never negative in a document.
Count = Annotated[int, Field(ge=0, le=1_000_000_000)]
#: A per-cent figure such as a discount: 1–99, because 0 % and 100 % off are not discounts.
Percent = Annotated[int, Field(ge=1, le=99)]

_MAX_MULTIPLIER = Decimal(100)


def _yuan_to_fen(value: object) -> int:
    if isinstance(value, (str, int, Decimal)):
        return yuan_to_fen(value)  # refuses bool, negatives and more than two decimals
    raise ValueError(
        f'must be yuan as a string such as "19.90" or a whole number, not {type(value).__name__}'
    )


def _to_multiplier(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f'must be a number such as "1.5", not {type(value).__name__}')
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{value!r} must be zero or more")
    if number > _MAX_MULTIPLIER:
        raise ValueError(f"{value!r} is larger than {_MAX_MULTIPLIER}")
    hundredths = number.quantize(Decimal("0.01"))
    if number != hundredths:
        raise ValueError(f"{value!r} has more than two decimals")
    # One spelling per value ("2", "1.5"), so equal programmes have equal digests.
    return Decimal(format(hundredths, "f").rstrip("0").rstrip("."))


#: Integer fen, written in the document as yuan (see the module docstring).
Fen = Annotated[int, BeforeValidator(_yuan_to_fen), PlainSerializer(fen_to_yuan, return_type=str)]
#: An exact factor such as ``2`` or ``"1.5"`` (0–100, at most two decimals).
Multiplier = Annotated[Decimal, BeforeValidator(_to_multiplier), PlainSerializer(str, return_type=str)]


class DocumentModel(BaseModel):
    """A part of the programme document: immutable, and strict about unknown keys (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
