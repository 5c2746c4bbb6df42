"""The tag and segment language: what parses into which tree, and the exact error for bad input."""

from __future__ import annotations

from decimal import Decimal

import pytest

from memberops.insight.language import (
    Both,
    Comparison,
    Either,
    ExpressionError,
    Not,
    Subject,
    compare,
    parse,
    tags_named,
    tokenize,
)


def test_the_issue_example_parses_into_its_tree() -> None:
    node = parse('tier in ("gold","silver") and bought(category="榴莲", days=90) >= 2 and not tag("投诉")')

    assert node == Both(
        (
            Comparison(Subject("tier", 0), "in", ("gold", "silver")),
            Comparison(
                Subject("bought", 30, True, {"category": "榴莲", "days": Decimal(90)}), ">=", (Decimal(2),)
            ),
            Not(Comparison(Subject("tag", 74, True, {"name": "投诉"}), "truth")),
        )
    )
    assert tags_named(node) == {"投诉"}


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    loose = parse('member or layer = "koc" and spent(days=180) >= 500')
    grouped = parse('(member or layer = "koc") and spent(days=180) >= 500')

    assert isinstance(loose, Either)
    assert isinstance(loose.items[1], Both)
    assert isinstance(grouped, Both)
    assert isinstance(grouped.items[0], Either)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('rfm = "重要挽留"', ("rfm", "=", ("important_win_back",))),
        ('rfm = "important_win_back"', ("rfm", "=", ("important_win_back",))),
        ('layer = "repurchase"', ("layer", "=", ("repurchase",))),
        ("spent(days=180) >= 500", ("spent", ">=", (Decimal(500),))),
        ("spent(days=180) < 99.5", ("spent", "<", (Decimal("99.5"),))),
        ('join_date >= "2026-03-01"', ("join_date", ">=", ("2026-03-01",))),
        ('stage not in ("churned", "sleeping")', ("stage", "not in", ("churned", "sleeping"))),
        ("shared(days=30)", ("shared", "truth", ())),
        ("tier = 'gold'", ("tier", "=", ("gold",))),
        ('tag("say \\"hi\\"")', ("tag", "truth", ())),
        ('preferred = "榴莲"', ("preferred", "=", ("榴莲",))),
        ('preferred in ("榴莲", "山竹")', ("preferred", "in", ("榴莲", "山竹"))),
        ("preferred != 'mixed'", ("preferred", "!=", ("mixed",))),
    ],
)
def test_good_comparisons(text: str, expected: tuple[str, str, tuple[object, ...]]) -> None:
    node = parse(text)

    assert isinstance(node, Comparison)
    assert (node.subject.name, node.operator, node.values) == expected


def test_an_escaped_quote_stays_in_the_string() -> None:
    assert tokenize('"say \\"hi\\""')[0].value == 'say "hi"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the expression is empty"),
        ('tier in ("gold" and x', 'at column 17: expected ")", found "and"'),
        (
            'layer = "repurchase" or',
            'at column 24: expected a name such as "tier", "bought(…)" or "not", or "(", '
            "found the end of the expression",
        ),
        (
            "tier = ",
            'at column 8: expected a value (a "string", a number, true or false), found the end of the expression',
        ),
        (
            'tier = "gold" tier',
            'at column 15: expected "and", "or" or the end of the expression, found "tier"',
        ),
        ("a @ b", 'at column 3: unexpected character "@"'),
        ('tier = "gold', 'at column 8: the string starting here has no closing "'),
        ("spent(days=180)", "at column 1: spent(…) needs a comparison, e.g. spent(days=180) >= 500"),
        ("tier", 'at column 1: tier needs a comparison, e.g. tier = "…"'),
        ("points", "at column 1: points needs a comparison, e.g. points >= 1"),
        ('tier > "a"', "at column 1: tier can only be compared with =, !=, in or not in"),
        (
            'rfm = "重要"',
            'at column 1: rfm has no value "重要"; it takes general_develop, general_keep, '
            "general_value, general_win_back, important_develop, important_keep, important_value, important_win_back",
        ),
        ("tier = 3", "at column 1: tier takes a string in quotes, not 3"),
        ("preferred = 3", "at column 1: preferred takes a string in quotes, not 3"),
        ('preferred in ("榴莲", 2)', "at column 1: preferred takes a string in quotes, not 2"),
        ("preferred = true", "at column 1: preferred takes a string in quotes, not true"),
        ('preferred >= "榴莲"', "at column 1: preferred can only be compared with =, !=, in or not in"),
        ("preferred", 'at column 1: preferred needs a comparison, e.g. preferred = "…"'),
        (
            'preferred(days=90) = "榴莲"',
            'at column 1: unknown function "preferred"; known: bought, followed, '
            "joined_group, purchase_days, reviewed, shared, spent, tag, visited",
        ),
        ("points >= 1.5", "at column 1: points takes a whole number, not 1.5"),
        ("spent(days=30) >= 1.234", "at column 1: spent(…) takes yuan with at most two decimals, not 1.234"),
        ("bought(days=0) > 1", "at column 1: bought(days=…) must be at least 1"),
        (
            "bought(weeks=2) > 1",
            'at column 1: bought(…) has no argument "weeks"; it takes category, sku, days',
        ),
        ("bought(90) > 1", "at column 1: bought(…) takes named arguments only, like days=90"),
        ("bought(days=9, days=10) > 1", 'at column 16: argument "days" is given twice'),
        ("tag()", 'at column 1: tag(…) needs "name"'),
        ("followed() = 1", "at column 1: followed(…) is true or false: use it alone or with not"),
        ('join_date > "2026-13-01"', 'at column 1: join_date takes a date "YYYY-MM-DD", not "2026-13-01"'),
        (
            "bougth(days=3) > 1",
            'at column 1: unknown function "bougth"; known: bought, followed, joined_group, '
            "purchase_days, reviewed, shared, spent, tag, visited",
        ),
        (
            "spent > 1",
            'at column 1: unknown attribute "spent" (a function needs parentheses); known: '
            "birthday_month, city, days_since_join, days_since_purchase, join_channel, join_date, layer, member, "
            "plan, points, preferred, rfm, stage, status, tier",
        ),
        ("not not (member", 'at column 16: expected ")", found the end of the expression'),
    ],
)
def test_bad_expressions_name_the_column_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        parse(text)

    assert raised.value.message == message
    assert raised.value.code == "invalid_expression"
    assert raised.value.status == 422


def test_errors_carry_the_column_and_the_expected_token() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse('tier in ("gold" and x')

    assert raised.value.details == {"column": 17, "expected": '")"', "found": "and"}


def test_nesting_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="nests deeper than 40 levels"):
        parse("not " * 41 + "member")


@pytest.mark.parametrize(
    ("operator", "values", "zero_satisfies"),
    [
        ("<", (Decimal(100),), True),
        (">=", (Decimal(1),), False),
        ("=", (Decimal(0),), True),
        ("not in", (Decimal(1),), True),
        ("truth", (), False),
    ],
)
def test_compare_knows_whether_zero_satisfies(
    operator: str, values: tuple[Decimal, ...], zero_satisfies: bool
) -> None:
    assert compare(Decimal(0), operator, values) is zero_satisfies
