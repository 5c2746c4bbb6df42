"""The checkout quote: member prices, coupons, points, delivery, with exact values and properties."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memberops.kit.errors import ValidationFailed
from memberops.loyalty.cart import Cart, CartLine
from memberops.loyalty.coupons import CouponRejected, HeldCoupon
from memberops.loyalty.pricing import (
    CheckoutPolicy,
    InsufficientPoints,
    PointsOverLimit,
    Quote,
    points_usable,
    quote,
)
from memberops.loyalty.programme import demo_programme

from .offer_builders import NOW, SHANGHAI, cart, held

PROGRAMME = demo_programme()
DURIAN = held(1, PROGRAMME.coupon_template("durian_15_off"))
REPURCHASE = held(2, PROGRAMME.coupon_template("repurchase_10"))
WELCOME = held(3, PROGRAMME.coupon_template("welcome_5"))
#: Cherries (annual plan price 42.90), durian (annual 79.90), apples (no member price).
BASKET = cart(
    ("CHE-J1", "车厘子", 2, 6990), ("DUR-MST", "榴莲", 1, 12800), ("APL-FJ", "苹果", 3, 999), delivery_fen=800
)


def priced(basket: Cart = BASKET, **fields: object) -> Quote:
    options: dict[str, object] = {
        "tier": "gold",
        "paid_plan": "annual",
        "coupons": [WELCOME, REPURCHASE, DURIAN],
        "selected": None,
        "points_balance": 300,
        "points": 0,
        "time_zone": SHANGHAI,
    }
    options.update(fields)
    return quote(PROGRAMME, basket, **options)  # type: ignore[arg-type]


def test_a_gold_member_with_the_annual_plan() -> None:
    result = priced(points=90)

    assert [(ln.line_no, ln.list_fen, ln.member_fen, ln.member_price_source) for ln in result.lines] == [
        (1, 13980, 8580, "paid_plan:annual"),  # 42.90 × 2 beats gold's 10 % (125.82)
        (2, 12800, 7990, "paid_plan:annual"),
        (3, 2997, 2697, "tier:gold"),  # 10 % of 29.97 = 2.997 → 3.00 off beats the plan's 8 %
    ]
    assert (result.list_fen, result.member_discount_fen) == (29777, 10510)
    # best coupon: 15 % of the durian's 79.90 = 11.985 → 11.99, more than 10 or 5 off
    assert (result.coupon_ids, result.coupon_discount_fen, result.coupons_chosen_by) == ((1,), 1199, "best")
    assert [(o.coupon_id, o.alone_fen, o.applied_fen, o.rejection) for o in result.coupons] == [
        (1, 1199, 1199, None),
        (2, 1000, 0, None),
        (3, 500, 0, None),
    ]
    # points: at most half of 180.68 → 90 points of 1 yuan
    assert (result.points_usable, result.points_used, result.points_value_fen) == (90, 90, 9000)
    assert [(ln.coupon_fen, ln.points_fen, ln.payable_fen) for ln in result.lines] == [
        (0, 4274, 4306),
        (1199, 3383, 3408),
        (0, 1343, 1354),
    ]
    assert (result.delivery_fen, result.delivery_waived) == (0, True)
    assert (result.goods_payable_fen, result.payable_fen) == (9068, 9068)
    assert result.benefit_sources == ("tier:gold", "paid_plan:annual")
    assert (result.priority_purchase, result.exclusive_service, result.member_day_multiplier) == (
        True,
        True,
        None,
    )


def test_the_callers_coupon_is_shared_over_every_line_it_covers() -> None:
    result = priced(selected=[2])

    assert result.coupon_ids == (2,)
    assert [ln.coupon_fen for ln in result.lines] == [445, 415, 140]
    assert result.coupons_chosen_by == "caller"
    assert priced(selected=[]).coupon_discount_fen == 0


def test_a_standard_member_without_a_plan_pays_list_price_and_delivery() -> None:
    result = priced(tier="standard", paid_plan=None, coupons=[], points_balance=0)

    assert result.member_discount_fen == 0
    assert (result.delivery_fen, result.payable_fen) == (800, 29777 + 800)
    assert result.points_usable == 0


def test_the_member_day_multiplier_is_the_better_of_tier_and_plan() -> None:
    day_18 = cart(
        ("APL-FJ", "苹果", 1, 999), at=datetime(2026, 3, 17, 16, 0, tzinfo=UTC)
    )  # 00:00 on the 18th

    assert priced(day_18, coupons=[]).member_day_multiplier == Decimal(3)
    assert priced(day_18, coupons=[], paid_plan=None).member_day_multiplier == Decimal(2)


def test_refusals_name_the_problem() -> None:
    with pytest.raises(CouponRejected, match="coupon 9 is not held by this member"):
        priced(selected=[9])
    with pytest.raises(CouponRejected, match='coupon 2 \\("repurchase_10"\\) cannot be combined'):
        priced(selected=[1, 2])
    with pytest.raises(InsufficientPoints, match="the balance is 300 points, less than the 301"):
        priced(points=301)
    with pytest.raises(PointsOverLimit, match="this order can take at most 90 points, not 91"):
        priced(points=91)
    with pytest.raises(ValidationFailed, match="the cart has no lines"):
        priced(cart())
    with pytest.raises(ValidationFailed, match="line 1 appears twice"):
        priced(Cart((CartLine(1, "A", "x", 1, 1), CartLine(1, "B", "x", 1, 1)), "pos", NOW))


def test_points_usable_follows_the_policy() -> None:
    assert points_usable(18068, 300, 100, CheckoutPolicy()) == 90
    assert points_usable(18068, 300, 100, CheckoutPolicy(points_max_percent=100)) == 180
    assert points_usable(18068, 50, 100, CheckoutPolicy(points_max_percent=100)) == 50
    assert points_usable(18068, -20, 100, CheckoutPolicy()) == 0
    assert points_usable(99, 300, 100, CheckoutPolicy()) == 0


# --- Properties ----------------------------------------------------------------------------------

SKUS = [("CHE-J1", "车厘子"), ("DUR-MST", "榴莲"), ("APL-FJ", "苹果"), ("MAN-TN", "芒果")]
TEMPLATES = [t.code for t in PROGRAMME.coupon_templates if t.validity.days is not None]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Cart, list[HeldCoupon], str, str | None, int, int]:
    lines = []
    for number in range(1, draw(st.integers(1, 5)) + 1):
        sku, category = draw(st.sampled_from(SKUS))
        lines.append(CartLine(number, sku, category, draw(st.integers(1, 5)), draw(st.integers(0, 50_000))))
    coupons = [
        held(coupon_id, PROGRAMME.coupon_template(draw(st.sampled_from(TEMPLATES))))
        for coupon_id in range(1, draw(st.integers(0, 5)) + 1)
    ]
    basket = Cart(tuple(lines), "pos", NOW, delivery_fen=draw(st.integers(0, 1000)))
    tier = draw(st.sampled_from(["standard", "silver", "gold"]))
    plan = draw(st.sampled_from([None, "half_year", "annual"]))
    balance = draw(st.integers(-50, 2000))
    percent = draw(st.integers(0, 100))
    return basket, coupons, tier, plan, balance, percent


@settings(max_examples=200)
@given(scenarios(), st.randoms(use_true_random=False))
def test_a_quote_never_goes_negative_never_over_discounts_and_ignores_the_order_of_coupons(
    scenario: tuple[Cart, list[HeldCoupon], str, str | None, int, int], random: object
) -> None:
    basket, coupons, tier, plan, balance, percent = scenario
    policy = CheckoutPolicy(points_max_percent=percent)
    first = quote(
        PROGRAMME,
        basket,
        tier=tier,
        paid_plan=plan,
        coupons=coupons,
        selected=None,
        points_balance=balance,
        time_zone=SHANGHAI,
        policy=policy,
    )
    usable = first.points_usable
    shuffled = list(coupons)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    reversed_lines = Cart(
        tuple(reversed(basket.lines)), basket.channel, basket.at, delivery_fen=basket.delivery_fen
    )
    result = quote(
        PROGRAMME,
        reversed_lines,
        tier=tier,
        paid_plan=plan,
        coupons=shuffled,
        selected=None,
        points_balance=balance,
        points=usable,
        time_zone=SHANGHAI,
        policy=policy,
    )

    assert result == quote(
        PROGRAMME,
        basket,
        tier=tier,
        paid_plan=plan,
        coupons=coupons,
        selected=None,
        points_balance=balance,
        points=usable,
        time_zone=SHANGHAI,
        policy=policy,
    )
    member_total = sum(line.member_fen for line in result.lines)
    assert result.payable_fen >= 0
    assert all(line.payable_fen >= 0 and line.member_fen <= line.list_fen for line in result.lines)
    assert sum(line.payable_fen for line in result.lines) == result.goods_payable_fen
    assert 0 <= result.coupon_discount_fen <= member_total
    for line in result.lines:
        assert line.coupon_fen + line.points_fen + line.payable_fen == line.member_fen
    assert result.points_value_fen <= (member_total - result.coupon_discount_fen) * percent // 100
    assert result.points_used <= max(balance, 0)
