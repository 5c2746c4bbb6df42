"""Earning points and growth for a purchase, and taking them back on refunds."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memberops.kit.errors import NotFound
from memberops.loyalty.earning import (
    AppliedMultiplier,
    Earning,
    Purchase,
    PurchaseLine,
    apportion,
    compute_earning,
    growth_to_take_back,
    points_to_take_back,
)
from memberops.loyalty.programme import Programme, demo_programme, load_programme

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-03-10 10:00 in Shanghai: no member day, no promotion.
PLAIN_DAY = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def programme(**earn: Any) -> Programme:
    """Standard/silver/gold with 1 point per 10 yuan and the given earn rules."""
    doc: dict[str, Any] = {
        "version": "e1",
        "name": "Earn tests",
        "tiers": [
            {"code": "standard", "name": "Standard", "threshold": 0},
            {
                "code": "silver",
                "name": "Silver",
                "threshold": 3000,
                "benefits": {"member_day": {"day_of_month": 18, "points_multiplier": 2}},
            },
            {"code": "gold", "name": "Gold", "threshold": 6000},
        ],
        "paid_plans": [
            {
                "code": "annual",
                "name": "Annual",
                "months": 12,
                "price": "168",
                "benefits": {"member_day": {"day_of_month": 18, "points_multiplier": 3}},
            }
        ],
        "earn": earn,
    }
    return load_programme(json.dumps(doc), "json")


def line(
    line_no: int, amount_fen: int, *, sku: str = "APP-FS", category: str = "苹果", discount_fen: int = 0
) -> PurchaseLine:
    return PurchaseLine(line_no, sku, category, 1, amount_fen, discount_fen)


def purchase(
    *lines: PurchaseLine, paid_at: datetime = PLAIN_DAY, channel: str = "pos", store: str | None = "SH001"
) -> Purchase:
    return Purchase(channel, store, paid_at, tuple(lines))


def earn(rules: Programme, order: Purchase, tier: str = "standard", **options: Any) -> Earning:
    return compute_earning(rules, order, tier=tier, time_zone=SHANGHAI, **options)


# --- Base rate and rounding -----------------------------------------------------------------------


def test_one_point_per_ten_yuan_rounds_down() -> None:
    result = earn(programme(), purchase(line(1, 19_990)))

    assert (result.points, result.uncapped_points, result.growth, result.cap) == (19, 19, 199, None)
    assert result.business_date.isoformat() == "2026-03-10"
    assert result.multipliers == ()


def test_small_lines_are_summed_before_rounding_and_shared_back_exactly() -> None:
    order = purchase(*(line(number, 900) for number in range(1, 6)))

    result = earn(programme(), order)

    assert result.points == 4
    assert [entry.points for entry in result.lines] == [1, 1, 1, 1, 0]
    assert [entry.growth for entry in result.lines] == [9, 9, 9, 9, 9]


def test_the_discounted_part_earns_nothing_by_default() -> None:
    order = purchase(line(1, 8_000, discount_fen=2_000))

    assert earn(programme(), order).points == 8
    with_discount = programme(exclusions={"earn_on_discounted_part": True})
    assert earn(with_discount, order).points == 10
    assert earn(with_discount, order).growth == 80


def test_excluded_categories_and_skus_earn_neither_points_nor_growth() -> None:
    rules = programme(exclusions={"categories": ["paid_plan"], "skus": ["GIFT-CARD"]})
    order = purchase(
        line(1, 5_000),
        line(2, 16_800, sku="PLAN-ANNUAL", category="paid_plan"),
        line(3, 10_000, sku="GIFT-CARD", category="卡券"),
    )

    result = earn(rules, order)

    assert (result.points, result.growth) == (5, 50)
    assert [(entry.line_no, entry.eligible_fen, entry.points, entry.exclusion) for entry in result.lines] == [
        (1, 5_000, 5, None),
        (2, 0, 0, 'category "paid_plan" earns nothing'),
        (3, 0, 0, 'SKU "GIFT-CARD" earns nothing'),
    ]


def test_a_custom_base_rate() -> None:
    rules = programme(base={"points": 3, "per": "2.50"})

    assert earn(rules, purchase(line(1, 1_000))).points == 12


def test_growth_follows_its_own_rate_on_what_was_paid() -> None:
    doc = json.loads(programme().canonical_json())
    doc["growth"]["per_yuan"] = "0.5"
    rules = load_programme(json.dumps(doc), "json")

    assert earn(rules, purchase(line(1, 9_999, discount_fen=5_000))).growth == 49


# --- Multipliers ----------------------------------------------------------------------------------


def test_tier_channel_store_category_and_sku_multipliers_multiply() -> None:
    rules = programme(
        multipliers={
            "tier": {"gold": "1.5"},
            "channel": {"mini_program": 2},
            "store": {"SH001": "1.1"},
            "category": {"礼盒": 2},
            "sku": {"GIF-HS": "1.25"},
        }
    )
    order = purchase(line(1, 10_000), line(2, 10_000, sku="GIF-HS", category="礼盒"), channel="mini_program")

    result = earn(rules, order, tier="gold")

    # line 1: 10 × 1.5 × 2 × 1.1 = 33; line 2: 33 × 2 × 1.25 = 82.5; floor(115.5) = 115
    assert result.points == 115
    assert [entry.points for entry in result.lines] == [33, 82]
    assert result.multipliers == (
        AppliedMultiplier("tier", "gold", Decimal("1.5")),
        AppliedMultiplier("channel", "mini_program", Decimal(2)),
        AppliedMultiplier("store", "SH001", Decimal("1.1")),
    )
    assert result.lines[1].multipliers == (
        AppliedMultiplier("category", "礼盒", Decimal(2)),
        AppliedMultiplier("sku", "GIF-HS", Decimal("1.25")),
    )


def test_highest_stacking_applies_only_the_largest_multiplier() -> None:
    rules = programme(stacking="highest", multipliers={"tier": {"gold": "1.5"}, "channel": {"tmall": "0.5"}})

    assert earn(rules, purchase(line(1, 10_000), channel="tmall"), tier="gold").points == 15
    assert earn(rules, purchase(line(1, 10_000), channel="tmall"), tier="standard").points == 5
    assert earn(rules, purchase(line(1, 10_000)), tier="standard").points == 10


def test_a_zero_channel_multiplier_earns_nothing_there() -> None:
    rules = programme(multipliers={"channel": {"meituan": 0}})

    result = earn(rules, purchase(line(1, 10_000), channel="meituan"))

    assert (result.points, result.growth) == (0, 100)


def test_member_day_is_the_business_date_in_the_brand_time_zone() -> None:
    rules = programme()
    # 2026-03-17 16:30 UTC is 2026-03-18 00:30 in Shanghai: member day there.
    on_member_day = purchase(line(1, 10_000), paid_at=datetime(2026, 3, 17, 16, 30, tzinfo=UTC))
    # 2026-03-18 16:30 UTC is already the 19th in Shanghai.
    after_member_day = purchase(line(1, 10_000), paid_at=datetime(2026, 3, 18, 16, 30, tzinfo=UTC))

    assert earn(rules, on_member_day, tier="silver").points == 20
    assert earn(rules, on_member_day, tier="silver").multipliers == (
        AppliedMultiplier("member_day", "tier:silver", Decimal(2)),
    )
    assert earn(rules, after_member_day, tier="silver").points == 10
    assert earn(rules, on_member_day, tier="standard").points == 10


def test_the_larger_member_day_of_tier_and_paid_plan_applies_without_stacking() -> None:
    order = purchase(line(1, 10_000), paid_at=datetime(2026, 3, 18, 4, 0, tzinfo=UTC))

    result = earn(programme(), order, tier="silver", paid_plan="annual")

    assert result.points == 30
    assert result.multipliers == (AppliedMultiplier("member_day", "paid_plan:annual", Decimal(3)),)


def test_promotion_nodes_apply_on_their_business_dates_inclusive() -> None:
    rules = programme(
        promotions=[
            {
                "code": "618",
                "name": "618",
                "starts_on": "2026-06-01",
                "ends_on": "2026-06-18",
                "multiplier": 2,
            }
        ]
    )
    last_day = datetime(2026, 6, 18, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    day_after = datetime(2026, 6, 18, 16, 0, tzinfo=UTC)  # 00:00 on the 19th

    assert earn(rules, purchase(line(1, 10_000), paid_at=last_day)).points == 20
    assert earn(rules, purchase(line(1, 10_000), paid_at=day_after)).points == 10


def test_demo_gold_member_on_member_day_with_a_gift_box() -> None:
    order = purchase(
        line(1, 6_990, sku="CHE-J1", category="车厘子"),
        line(2, 19_800, sku="GIF-CN", category="礼盒", discount_fen=2_000),
        line(3, 9_900, sku="PLAN-HALF", category="paid_plan"),
        paid_at=datetime(2026, 3, 18, 2, 0, tzinfo=UTC),
    )

    result = earn(demo_programme(), order, tier="gold")

    # 6.99 × 1.5 × 2 = 20.97 and 19.8 × 1.5 × 2 × 2 = 118.8: floor(139.77) = 139
    assert (result.points, result.growth) == (139, 267)
    assert [(entry.points, entry.growth) for entry in result.lines] == [(21, 70), (118, 197), (0, 0)]


# --- Caps ------------------------------------------------------------------------------------------


def test_the_per_order_cap_cuts_and_is_reported() -> None:
    rules = programme(caps={"per_order": 50})

    result = earn(rules, purchase(line(1, 30_000), line(2, 70_000)))

    assert (result.points, result.uncapped_points, result.cap) == (50, 100, "per_order")
    assert [entry.points for entry in result.lines] == [15, 35]
    assert result.growth == 1000


def test_the_daily_cap_counts_what_was_earned_earlier_that_day() -> None:
    rules = programme(caps={"per_order": 50, "per_day": 120})

    assert earn(rules, purchase(line(1, 100_000)), earned_today=100).points == 20
    assert earn(rules, purchase(line(1, 100_000)), earned_today=100).cap == "per_day"
    assert earn(rules, purchase(line(1, 100_000)), earned_today=150).points == 0
    assert earn(rules, purchase(line(1, 100_000)), earned_today=0).cap == "per_order"


# --- Inputs that are bugs -------------------------------------------------------------------------


def test_a_naive_paid_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        earn(programme(), purchase(line(1, 100), paid_at=datetime(2026, 3, 10, 12, 0)))


def test_an_unknown_tier_or_plan_is_not_found() -> None:
    with pytest.raises(NotFound, match='no tier "platinum"'):
        earn(programme(), purchase(line(1, 100)), tier="platinum")
    with pytest.raises(NotFound, match='no paid plan "monthly"'):
        earn(programme(), purchase(line(1, 100)), paid_plan="monthly")


def test_repeated_line_numbers_and_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="line numbers repeat"):
        earn(programme(), purchase(line(1, 100), line(1, 200)))
    with pytest.raises(ValueError, match="negative"):
        earn(programme(), purchase(line(1, -100)))


# --- Refunds ---------------------------------------------------------------------------------------


def test_a_partial_refund_takes_back_the_refunded_share_rounded_down() -> None:
    result = earn(programme(), purchase(line(1, 10_000), line(2, 5_000)))  # 15 points

    assert points_to_take_back(result, 5_000, 0) == 5
    assert points_to_take_back(result, 7_000, 0) == 7
    assert growth_to_take_back(result, 7_000, 0) == 70


def test_partial_refunds_add_up_to_the_whole_earning() -> None:
    result = earn(programme(), purchase(line(1, 10_000)))  # 10 points
    refunds = [3_333, 3_333, 3_334]

    taken: list[int] = []
    refunded = 0
    for amount in refunds:
        refunded += amount
        taken.append(points_to_take_back(result, refunded, sum(taken)))

    assert taken == [3, 3, 4]
    assert sum(taken) == result.points


def test_a_refund_by_line_takes_back_only_what_that_line_earned() -> None:
    rules = programme(exclusions={"categories": ["paid_plan"]})
    result = earn(rules, purchase(line(1, 10_000), line(2, 16_800, sku="PLAN-ANNUAL", category="paid_plan")))

    assert points_to_take_back(result, {2: 16_800}, 0) == 0
    assert points_to_take_back(result, {1: 10_000}, 0) == 10
    # The order-level form shares the refund over everything paid, the excluded line included.
    assert points_to_take_back(result, 16_800, 0) == 6


def test_a_refund_beyond_the_order_takes_back_no_more_than_was_earned() -> None:
    result = earn(programme(), purchase(line(1, 10_000)))

    assert points_to_take_back(result, 50_000, 0) == 10
    assert points_to_take_back(result, {1: 50_000}, 4) == 6
    assert points_to_take_back(result, 10_000, 10) == 0


def test_refunds_of_an_order_nothing_was_paid_for_take_back_everything() -> None:
    rules = programme(exclusions={"earn_on_discounted_part": True})
    result = earn(rules, purchase(line(1, 0, discount_fen=5_000)))

    assert result.points == 5
    assert points_to_take_back(result, 0, 0) == 5
    assert points_to_take_back(result, {1: 0}, 0) == 5


def test_refund_inputs_that_are_bugs_are_refused() -> None:
    result = earn(programme(), purchase(line(1, 10_000)))

    with pytest.raises(ValueError, match="no line 7"):
        points_to_take_back(result, {7: 100}, 0)
    with pytest.raises(ValueError, match="negative"):
        points_to_take_back(result, -1, 0)
    with pytest.raises(ValueError, match="negative"):
        points_to_take_back(result, 100, -1)


# --- Properties ------------------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=2_000_000)
orders = st.lists(
    st.tuples(
        amounts, st.integers(min_value=0, max_value=50_000), st.sampled_from(["苹果", "礼盒", "paid_plan"])
    ),
    min_size=1,
    max_size=6,
)
RULES = programme(
    multipliers={"tier": {"gold": "1.5"}, "category": {"礼盒": "2"}, "channel": {"tmall": "0.35"}},
    caps={"per_order": 3_000, "per_day": 5_000},
    exclusions={"categories": ["paid_plan"]},
)


def build(spec: list[tuple[int, int, str]], channel: str = "pos") -> Purchase:
    return purchase(
        *(
            line(number, amount, category=category, discount_fen=discount)
            for number, (amount, discount, category) in enumerate(spec, 1)
        ),
        channel=channel,
    )


@given(
    orders,
    st.integers(min_value=0, max_value=6_000),
    st.sampled_from(["standard", "gold"]),
    st.sampled_from(["pos", "tmall"]),
)
def test_earning_never_exceeds_the_caps_and_lines_add_up(
    spec: list[tuple[int, int, str]], earned_today: int, tier: str, channel: str
) -> None:
    result = earn(RULES, build(spec, channel), tier=tier, earned_today=earned_today)

    assert 0 <= result.points <= min(result.uncapped_points, 3_000, max(0, 5_000 - earned_today))
    assert sum(entry.points for entry in result.lines) == result.points
    assert sum(entry.growth for entry in result.lines) == result.growth
    assert result.growth == sum(amount for amount, _, category in spec if category != "paid_plan") // 100


@given(orders, st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=8), st.booleans())
def test_any_split_of_a_full_refund_takes_back_exactly_what_was_earned(
    spec: list[tuple[int, int, str]], weights: list[int], by_line: bool
) -> None:
    result = earn(RULES, build(spec), tier="gold")
    paid = sum(entry.paid_fen for entry in result.lines)
    # Split the whole paid amount into len(weights) refunds.
    parts = apportion(paid, weights)
    if not paid:
        parts = [0] * len(parts)

    taken_points: list[int] = []
    taken_growth: list[int] = []
    refunded = 0
    for part in parts:
        refunded += part
        refund: int | dict[int, int] = refunded
        if by_line:
            refund = dict(
                zip(
                    [entry.line_no for entry in result.lines],
                    apportion(refunded, [e.paid_fen for e in result.lines])
                    if paid
                    else [0] * len(result.lines),
                    strict=True,
                )
            )
        taken_points.append(points_to_take_back(result, refund, sum(taken_points)))
        taken_growth.append(growth_to_take_back(result, refund, sum(taken_growth)))
        assert sum(taken_points) <= result.points

    assert all(taken >= 0 for taken in taken_points)
    assert sum(taken_points) == result.points
    assert sum(taken_growth) == result.growth


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=10),
)
def test_apportion_adds_up_and_stays_within_one_of_the_exact_share(total: int, weights: list[int]) -> None:
    parts = apportion(total, weights)

    assert len(parts) == len(weights)
    if sum(weights):
        assert sum(parts) == total
        for part, weight in zip(parts, weights, strict=True):
            exact = weight * total / sum(weights)
            assert exact - 1 < part < exact + 1
    else:
        assert parts == [0] * len(weights)


def test_each_programme_earns_by_its_own_rules_when_several_are_live() -> None:
    """Given the active programme and a new version in one process, neither borrows the other's rules."""
    active = programme(multipliers={"tier": {"gold": "1.5"}})
    next_version = programme(multipliers={"tier": {"gold": 3}})
    order = purchase(line(1, 10_000))

    results = [
        earn(rules, order, tier="gold").points for rules in (active, next_version, active, next_version)
    ]

    assert results == [15, 30, 15, 30]
