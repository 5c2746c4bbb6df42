"""The programme document: the demo programme, loading, digests and every kind of bad document."""

import copy
import json
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from memberops.kit.errors import NotFound, ValidationFailed
from memberops.loyalty.programme import (
    Problem,
    Programme,
    ProgrammeInvalid,
    demo_programme,
    load_programme,
)

MINIMAL: dict[str, Any] = {
    "version": "t1",
    "name": "Test programme",
    "tiers": [
        {"code": "standard", "name": "Standard", "threshold": 0},
        {"code": "silver", "name": "Silver", "threshold": 3000},
        {"code": "gold", "name": "Gold", "threshold": 6000},
    ],
}


def document(**changes: Any) -> dict[str, Any]:
    """MINIMAL with top-level keys replaced."""
    doc = copy.deepcopy(MINIMAL)
    doc.update(changes)
    return doc


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ProgrammeInvalid) as caught:
        load_programme(json.dumps(doc), "json")
    return [str(problem) for problem in caught.value.problems]


# --- The demo programme ---------------------------------------------------------------------------


def test_the_demo_programme_has_the_domain_defaults() -> None:
    programme = demo_programme()

    assert [(tier.code, tier.threshold) for tier in programme.tiers] == [
        ("standard", 0),
        ("silver", 3000),
        ("gold", 6000),
    ]
    assert programme.growth.per_yuan == Decimal(1)
    assert (programme.earn.base.points, programme.earn.base.per_fen) == (1, 1000)
    assert programme.point_value_fen == 100
    assert programme.expiry.policy == "end_of_year_after_earning"
    member_day = programme.tier("standard").benefits.member_day
    assert member_day is not None
    assert (member_day.day_of_month, member_day.points_multiplier) == (18, Decimal(2))
    assert [(plan.code, plan.months, plan.price_fen) for plan in programme.paid_plans] == [
        ("half_year", 6, 9900),
        ("annual", 12, 16800),
    ]
    assert programme.paid_plan("annual").benefits.member_prices_fen["CHE-J1"] == 4290
    assert programme.coupon_pack("gold_welcome_pack").coupons == {"gold_50": 2, "durian_15_off": 1}


def test_the_demo_document_ships_inside_the_package() -> None:
    text = resources.files("memberops.loyalty").joinpath("demo_programme.toml").read_text("utf-8")

    assert load_programme(text, "toml") == demo_programme()


def test_demo_paid_plan_member_prices_are_30_to_40_per_cent_below_list() -> None:
    list_prices = {"CHE-J1": 6990, "MAN-TN": 2990, "STR-DD": 3990, "DUR-MST": 12800, "BLU-YN": 3490}

    for plan in demo_programme().paid_plans:
        for sku, price in plan.benefits.member_prices_fen.items():
            assert 0.30 <= 1 - price / list_prices[sku] <= 0.40, (plan.code, sku)


# --- Loading, money, digests ----------------------------------------------------------------------


def test_money_is_written_in_yuan_and_held_in_fen() -> None:
    doc = document(
        point_value="0.50",
        paid_plans=[{"code": "annual", "name": "Annual", "months": 12, "price": 168}],
        coupon_templates=[
            {
                "code": "five",
                "name": "Five off",
                "kind": "fixed_amount",
                "amount": "5.5",
                "min_spend": "59.90",
                "validity": {"days": 7},
            }
        ],
    )

    programme = load_programme(json.dumps(doc), "json")

    assert programme.point_value_fen == 50
    assert programme.paid_plan("annual").price_fen == 16800
    template = programme.coupon_template("five")
    assert (template.amount_fen, template.min_spend_fen) == (550, 5990)
    dumped = json.loads(programme.canonical_json())
    assert dumped["coupon_templates"][0]["amount"] == "5.50"
    assert dumped["point_value"] == "0.50"


def test_toml_and_json_of_the_same_content_have_the_same_digest() -> None:
    toml_text = """
name = "Test programme"
version = "t1"
[[tiers]]
code = "standard"
name = "Standard"
threshold = 0
[[tiers]]
threshold = 3000
name = "Silver"
code = "silver"
[[tiers]]
code = "gold"
name = "Gold"
threshold = 6000
"""

    from_toml = load_programme(toml_text, "toml")
    from_json = load_programme(json.dumps(MINIMAL), "json")

    assert from_toml.digest() == from_json.digest()
    assert len(from_toml.digest()) == 64


def test_a_changed_rule_changes_the_digest() -> None:
    base = load_programme(json.dumps(MINIMAL), "json")
    changed = load_programme(json.dumps(document(point_value="0.99")), "json")

    assert base.digest() != changed.digest()


def test_writing_a_default_explicitly_keeps_the_digest() -> None:
    implicit = load_programme(json.dumps(MINIMAL), "json")
    explicit = load_programme(json.dumps(document(point_value="1.00", earn={"stacking": "multiply"})), "json")

    assert implicit.digest() == explicit.digest()


def test_the_canonical_json_loads_back_into_an_equal_programme() -> None:
    programme = demo_programme()

    again = load_programme(programme.canonical_json(), "json")

    assert again == programme
    assert again.digest() == programme.digest()


def test_multipliers_have_one_spelling() -> None:
    doc = document(earn={"multipliers": {"channel": {"pos": 1.5, "tmall": "2.00", "douyin": 0}}})

    programme = load_programme(json.dumps(doc), "json")

    assert json.loads(programme.canonical_json())["earn"]["multipliers"]["channel"] == {
        "pos": "1.5",
        "tmall": "2",
        "douyin": "0",
    }


def test_programme_invalid_is_a_validation_failure_with_a_stable_code() -> None:
    with pytest.raises(ProgrammeInvalid) as caught:
        load_programme(json.dumps(document(tiers=[])), "json")

    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert error.code == "invalid_programme"
    assert error.status == 422
    assert error.to_dict() == {
        "code": "invalid_programme",
        "message": "the programme document has 1 problem:\n  tiers: a programme needs at least one tier",
        "details": {"problems": [{"path": "tiers", "message": "a programme needs at least one tier"}]},
    }


def test_constructing_an_inconsistent_programme_directly_is_refused_too() -> None:
    with pytest.raises(ProgrammeInvalid) as caught:
        Programme.model_validate(document(earn={"multipliers": {"tier": {"platinum": 2}}}))

    assert caught.value.problems == (Problem('earn.multipliers.tier["platinum"]', 'unknown tier "platinum"'),)


def test_looking_up_an_unknown_code_is_not_found() -> None:
    programme = demo_programme()

    with pytest.raises(NotFound, match=r'the programme 2026\.1 has no tier "platinum"'):
        programme.tier("platinum")
    with pytest.raises(NotFound, match='has no coupon template "nope"'):
        programme.coupon_template("nope")


def test_an_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown document format 'yaml'"):
        load_programme("{}", "yaml")  # type: ignore[arg-type]


# --- Bad documents: every problem, with its path ----------------------------------------------------


def test_broken_toml_names_the_line() -> None:
    with pytest.raises(ProgrammeInvalid) as caught:
        load_programme('version = "1"\nname = \n', "toml")

    assert [problem.path for problem in caught.value.problems] == ["(document)"]
    assert caught.value.problems[0].message.startswith("not valid TOML: Invalid value (at line 2")


def test_broken_json_is_one_document_problem() -> None:
    assert problems_of_text('{"version": "1"', "json") == ["(document)"]


def problems_of_text(text: str, format: str) -> list[str]:
    with pytest.raises(ProgrammeInvalid) as caught:
        load_programme(text, format)  # type: ignore[arg-type]
    return [problem.path for problem in caught.value.problems]


def test_tier_thresholds_must_start_at_zero_and_increase_and_codes_be_unique() -> None:
    doc = document(
        tiers=[
            {"code": "standard", "name": "Standard", "threshold": 10},
            {"code": "silver", "name": "Silver", "threshold": 3000},
            {"code": "silver", "name": "Silver again", "threshold": 3000},
            {"code": "gold", "name": "Gold", "threshold": 2000},
        ]
    )

    assert problems_of(doc) == [
        'tiers[2].code: duplicate tier code "silver"',
        "tiers[0].threshold: the first tier must start at 0, not 10",
        'tiers[2].threshold: 3000 must be above the threshold of "silver" (3000)',
        'tiers[3].threshold: 2000 must be above the threshold of "silver" (3000)',
    ]


def test_unknown_references_are_named_with_their_path() -> None:
    doc = document(
        tiers=[
            {"code": "standard", "name": "Standard", "threshold": 0},
            {
                "code": "gold",
                "name": "Gold",
                "threshold": 6000,
                "upgrade_gift": {"points": 100, "coupons": ["gold_50"], "packs": ["gold_pack"]},
                "benefits": {"birthday_gift": {"coupons": ["bday"]}},
            },
        ],
        earn={"multipliers": {"tier": {"platinum": 2, "gold": "1.5"}}},
        coupon_packs=[{"code": "pack", "name": "Pack", "coupons": {"missing": 1}}],
        rewards=[
            {"code": "r1", "name": "R1", "points_price": 10, "coupon": "nope", "tiers": ["gold", "diamond"]},
        ],
        paid_plans=[
            {"code": "p", "name": "P", "months": 6, "price": "99", "welcome_gift": {"packs": ["pack", "x"]}},
        ],
    )

    assert problems_of(doc) == [
        'tiers[1].benefits.birthday_gift.coupons[0]: unknown coupon template "bday"',
        'tiers[1].upgrade_gift.coupons[0]: unknown coupon template "gold_50"',
        'tiers[1].upgrade_gift.packs[0]: unknown coupon pack "gold_pack"',
        'earn.multipliers.tier["platinum"]: unknown tier "platinum"',
        'coupon_packs[0].coupons["missing"]: unknown coupon template "missing"',
        'rewards[0].tiers[1]: unknown tier "diamond"',
        'rewards[0].coupon: unknown coupon template "nope"',
        'paid_plans[0].welcome_gift.packs[1]: unknown coupon pack "x"',
    ]


def test_negative_amounts_and_out_of_range_figures_are_refused() -> None:
    doc = document(
        point_value="-1",
        tiers=[
            {"code": "standard", "name": "Standard", "threshold": -5},
            {"code": "gold", "name": "Gold", "threshold": 6000, "benefits": {"member_discount_percent": 120}},
        ],
        earn={"caps": {"per_order": 0}, "multipliers": {"channel": {"tmall": "-1", "pos": "1.555"}}},
        coupon_templates=[
            {
                "code": "pct",
                "name": "Pct",
                "kind": "percentage",
                "percent_off": 0,
                "min_spend": "1.001",
                "validity": {"days": 7},
            }
        ],
        paid_plans=[{"code": "p", "name": "P", "months": 6, "price": 99.5}],
    )

    assert problems_of(doc) == [
        "point_value: '-1' is negative",
        "tiers[0].threshold: Input should be greater than or equal to 0",
        "tiers[1].benefits.member_discount_percent: Input should be less than or equal to 99",
        "earn.multipliers.channel[\"tmall\"]: '-1' must be zero or more",
        "earn.multipliers.channel[\"pos\"]: '1.555' has more than two decimals",
        "earn.caps.per_order: Input should be greater than or equal to 1",
        "coupon_templates[0].percent_off: Input should be greater than or equal to 1",
        "coupon_templates[0].min_spend: '1.001' has more than two decimals",
        'paid_plans[0].price: must be yuan as a string such as "19.90" or a whole number, not float',
    ]


def test_coupon_templates_are_checked_by_kind() -> None:
    doc = document(
        coupon_templates=[
            {
                "code": "a",
                "name": "A",
                "kind": "fixed_amount",
                "amount": "20",
                "min_spend": "10",
                "validity": {"days": 7},
            },
            {"code": "b", "name": "B", "kind": "percentage", "amount": "5", "validity": {"days": 7}},
            {"code": "c", "name": "C", "kind": "no_threshold", "min_spend": "50", "validity": {}},
            {
                "code": "d",
                "name": "D",
                "kind": "no_threshold",
                "amount": "5",
                "stacking_group": "g",
                "validity": {"starts_on": "2026-06-18", "ends_on": "2026-06-01"},
            },
            {
                "code": "a",
                "name": "A again",
                "kind": "no_threshold",
                "amount": "5",
                "validity": {"ends_on": "2026-01-01"},
            },
        ]
    )

    assert problems_of(doc) == [
        'coupon_templates[4].code: duplicate coupon template code "a"',
        "coupon_templates[0].min_spend: a fixed_amount coupon needs a minimum spend of at least its amount (else no_threshold)",
        "coupon_templates[1].percent_off: a percentage coupon needs percent_off",
        "coupon_templates[1].amount: a percentage coupon takes percent_off, not an amount",
        "coupon_templates[2].amount: a no_threshold coupon needs an amount of more than zero",
        "coupon_templates[2].min_spend: a no_threshold coupon has no minimum spend",
        "coupon_templates[2].validity: give either starts_on and ends_on, or days",
        "coupon_templates[3].stacking_group: only a stackable coupon belongs to a stacking group",
        "coupon_templates[3].validity.ends_on: 2026-06-01 is before 2026-06-18",
        "coupon_templates[4].validity: an absolute validity needs both starts_on and ends_on",
    ]


def test_structure_problems_are_listed_together() -> None:
    doc = document(
        colour="blue",
        earn={"stacking": "add", "base": {"points": 1, "per": "0"}},
        expiry={"policy": "monthly"},
        refunds={"shortfall": "forgive"},
        evaluation={"every_months": 5, "day_of_month": 31},
        tiers=[{"code": "Standard", "name": " ", "threshold": 0}],
    )

    assert problems_of(doc) == [
        'tiers[0].code: "Standard" is not a code: use 1–64 lower-case letters, digits, _ or -',
        "tiers[0].name: String should have at least 1 character",
        "evaluation.every_months: Input should be 1, 2, 3, 4, 6 or 12",
        "evaluation.day_of_month: Input should be less than or equal to 28",
        "earn.stacking: Input should be 'multiply' or 'highest'",
        "expiry.policy: Input should be 'end_of_year_after_earning', 'fixed_days' or 'never'",
        "refunds.shortfall: Input should be 'negative_balance' or 'claw_back_from_future'",
        "colour: Extra inputs are not permitted",
    ]


def test_cross_checks_of_earn_expiry_tasks_rewards_and_plans() -> None:
    doc = document(
        growth={
            "tasks": [
                {"code": "profile", "name": "Profile", "growth": 50},
                {"code": "profile", "name": "Profile again", "growth": 0, "points": 0},
            ]
        },
        earn={
            "base": {"per": "0"},
            "promotions": [
                {
                    "code": "618",
                    "name": "618",
                    "starts_on": "2026-06-18",
                    "ends_on": "2026-06-01",
                    "multiplier": 2,
                }
            ],
        },
        expiry={"policy": "never", "days": 30},
        rewards=[{"code": "r", "name": "R", "points_price": 5}],
        paid_plans=[
            {
                "code": "p",
                "name": "P",
                "months": 12,
                "price": "0",
                "benefits": {"member_prices": {"CHE-J1": "0"}},
            }
        ],
    )

    assert problems_of(doc) == [
        'growth.tasks[1].code: duplicate growth task code "profile"',
        "growth.tasks[1]: a growth task must award growth, points or both",
        "earn.base.per: the base rate needs an amount of more than zero",
        "earn.promotions[0].ends_on: 2026-06-01 is before 2026-06-18",
        "expiry.days: days only applies to the fixed_days policy, not never",
        "rewards[0]: a reward grants either a coupon or goods (exactly one of the two)",
        "paid_plans[0].price: a paid plan must cost more than zero",
        'paid_plans[0].benefits.member_prices["CHE-J1"]: a member price must be more than zero',
    ]


def test_fixed_days_expiry_needs_days() -> None:
    assert problems_of(document(expiry={"policy": "fixed_days"})) == [
        "expiry.days: the fixed_days policy needs a number of days"
    ]


def test_a_programme_object_is_immutable() -> None:
    programme = demo_programme()

    with pytest.raises(ValueError, match="frozen"):
        programme.version = "2"  # type: ignore[misc]
