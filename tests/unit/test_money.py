from decimal import Decimal

import pytest

from memberops.kit.money import InvalidAmount, fen_to_yuan, yuan_to_fen


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("36.80", 3680),
        ("36.8", 3680),
        ("0", 0),
        ("0.01", 1),
        (" 12 ", 1200),
        ("1000000.99", 100000099),
        (7, 700),
    ],
)
def test_yuan_strings_become_whole_fen(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


def test_decimal_input_is_exact() -> None:
    assert yuan_to_fen(Decimal("0.30")) == 30


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "'abc' is not a number"),
        ("-1.00", "'-1.00' is negative"),
        ("1.005", "'1.005' has more than two decimals"),
        ("NaN", "'NaN' is not a number"),
        (0.1, "must be a decimal string, not float"),
        (True, "must be a decimal string, not bool"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(InvalidAmount, match=message):
        yuan_to_fen(value)  # type: ignore[arg-type]


def test_zero_can_be_refused() -> None:
    with pytest.raises(InvalidAmount, match="greater than zero"):
        yuan_to_fen("0.00", allow_zero=False)


@pytest.mark.parametrize(("fen", "text"), [(3680, "36.80"), (5, "0.05"), (0, "0.00"), (-150, "-1.50")])
def test_fen_format_as_yuan_with_two_decimals(fen: int, text: str) -> None:
    assert fen_to_yuan(fen) == text
