"""Benefits (member prices, member day, birthday, priority purchase) and the rewards catalogue rules."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from memberops.loyalty.benefits import (
    benefit_sources,
    birthday_gift_rejection_reason,
    birthday_gifts,
    birthday_rejection_reason,
    free_delivery,
    member_day_multiplier,
    member_line_fen,
    member_price,
    priority_purchase,
    priority_purchase_rejection_reason,
)
from memberops.loyalty.cart import CartLine
from memberops.loyalty.programme import demo_programme
from memberops.loyalty.rewards import (
    cancellation_rejection_reason,
    catalogue_item,
    reward_rejection_reason,
    stock_left,
)

from .offer_builders import NOW

PROGRAMME = demo_programme()


def test_member_prices_per_unit_and_member_discounts_per_line() -> None:
    silver = PROGRAMME.tier("silver").benefits  # 5 % off
    annual = PROGRAMME.paid_plan("annual").benefits  # 8 % off, CHE-J1 at 42.90
    cherries = CartLine(1, "CHE-J1", "车厘子", 3, 6990)
    odd = CartLine(2, "X", "x", 1, 1990)

    assert member_line_fen(cherries, annual) == 12870
    assert member_line_fen(cherries, silver) == 20970 - 1049  # 5 % of 209.70 = 10.485 → 10.49
    assert member_line_fen(odd, silver) == 1990 - 100  # 99.5 fen rounds half up to 1.00
    assert member_line_fen(odd, PROGRAMME.tier("standard").benefits) == 1990


def test_the_better_price_applies_and_ties_name_the_tier() -> None:
    sources = benefit_sources(PROGRAMME, "gold", "half_year")
    plain = CartLine(1, "X", "x", 1, 10000)

    assert [source.key for source in sources] == ["tier:gold", "paid_plan:half_year"]
    assert member_price(CartLine(1, "MAN-TN", "芒果", 2, 2990), sources) == (3980, "paid_plan:half_year")
    assert member_price(plain, sources) == (9000, "tier:gold")
    assert member_price(plain, benefit_sources(PROGRAMME, "standard")) == (10000, None)


def test_flags_and_the_member_day() -> None:
    gold = benefit_sources(PROGRAMME, "gold")
    standard = benefit_sources(PROGRAMME, "standard")
    with_plan = benefit_sources(PROGRAMME, "standard", "half_year")

    assert (free_delivery(gold), free_delivery(standard), free_delivery(with_plan)) == (True, False, True)
    assert (priority_purchase(gold), priority_purchase(with_plan)) == (True, False)
    assert member_day_multiplier(standard, date(2026, 3, 18)) == (Decimal(2), "tier:standard")
    assert member_day_multiplier(with_plan, date(2026, 3, 18)) == (Decimal(3), "paid_plan:half_year")
    assert member_day_multiplier(with_plan, date(2026, 3, 17)) is None


def test_priority_purchase_opens_early_for_those_who_have_it() -> None:
    opens, early = NOW, NOW - timedelta(hours=2)

    assert (
        priority_purchase_rejection_reason(
            has_priority=True, at=early, opens_at=opens, priority_opens_at=early
        )
        is None
    )
    assert (
        priority_purchase_rejection_reason(
            has_priority=False, at=early, opens_at=opens, priority_opens_at=early
        )
        == "this opens to members with priority purchase first, and to everyone at 2026-03-10T02:00:00+00:00"
    )
    assert (
        priority_purchase_rejection_reason(
            has_priority=False, at=opens, opens_at=opens, priority_opens_at=early
        )
        is None
    )


def test_birthday_gifts_once_a_year_in_the_birthday_month() -> None:
    march = date(1990, 3, 25)

    assert birthday_gift_rejection_reason(march, date(2026, 3, 1), given_this_year=False) is None
    assert birthday_gift_rejection_reason(march, date(2026, 3, 31), given_this_year=True) == (
        "the birthday gift of 2026 was already given"
    )
    assert birthday_gift_rejection_reason(march, date(2026, 4, 1), given_this_year=False) == (
        "the birthday month is 3, not 4"
    )
    assert (
        birthday_gift_rejection_reason(None, date(2026, 3, 1), given_this_year=False)
        == "no birthday is recorded"
    )
    assert birthday_gift_rejection_reason(date(2000, 2, 29), date(2026, 2, 1), given_this_year=False) is None
    assert [
        (kind, gift.points) for kind, gift in birthday_gifts(benefit_sources(PROGRAMME, "gold", "annual"))
    ] == [("tier", 100)]
    assert (
        birthday_rejection_reason(date(2026, 3, 11), date(2026, 3, 10))
        == "a birthday cannot be in the future"
    )


def test_reward_rejections_in_the_order_a_member_wants_to_hear_them() -> None:
    box = PROGRAMME.reward("durian_gift_box")  # gold only, limit 1, stock 50, 200 points

    def reason(tier: str, mine: int = 0, everyone: int = 0, balance: int | None = None) -> str | None:
        return reward_rejection_reason(
            PROGRAMME, box, tier=tier, redeemed_by_member=mine, redeemed_in_all=everyone, balance=balance
        )

    assert reason("silver", mine=1, everyone=50) == '"金枕榴莲礼盒" is for 金卡 Gold members only'
    assert (
        reason("gold", mine=1, everyone=50)
        == '"金枕榴莲礼盒" can be redeemed once per member, and this member already has'
    )
    assert reason("gold", everyone=50) == '"金枕榴莲礼盒" is out of stock'
    assert (
        reason("gold", everyone=49, balance=199) == '"金枕榴莲礼盒" costs 200 points and the balance is 199'
    )
    assert reason("gold", everyone=49, balance=200) is None
    voucher = PROGRAMME.reward("voucher_20")
    assert (
        reward_rejection_reason(
            PROGRAMME, voucher, tier="standard", redeemed_by_member=5, redeemed_in_all=10**6
        )
        == '"20 元无门槛券" can be redeemed 5 times per member, and this member already has'
    )


def test_stock_and_catalogue_items() -> None:
    assert stock_left(PROGRAMME.reward("fruit_knife"), 499) == 1
    assert stock_left(PROGRAMME.reward("fruit_knife"), 600) == 0
    assert stock_left(PROGRAMME.reward("voucher_5"), 10**6) is None
    item = catalogue_item(
        PROGRAMME,
        PROGRAMME.reward("voucher_5"),
        tier=None,
        redeemed_by_member=0,
        redeemed_in_all=3,
        balance=None,
    )
    assert (item.grants, item.stock_left, item.rejection) == ("coupon:voucher_5", None, None)
    assert (
        cancellation_rejection_reason("cancelled", coupon_status=None)
        == "the redemption is already cancelled"
    )
    assert cancellation_rejection_reason("redeemed", coupon_status="expired") is None
