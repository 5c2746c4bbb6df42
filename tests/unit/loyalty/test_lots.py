"""Points lots: expiry dates, drawing soonest-expiring first, redemption checks, refund shortfalls."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memberops.loyalty.lots import (
    DebtSettlement,
    LotDraw,
    LotExpiry,
    PointsLot,
    TakeBack,
    draw,
    expired_remainders,
    expiring_between,
    expiry_of,
    plan_take_back,
    redemption_rejection_reason,
    settle_debt,
    spendable_balance,
)
from memberops.loyalty.policies import ExpiryPolicy, ShortfallPolicy

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def lot(
    lot_id: int, remaining: int, expires: str | None, earned: str = "2026-01-05T10:00:00+08:00"
) -> PointsLot:
    return PointsLot(lot_id, remaining, at(earned), at(expires) if expires else None)


# --- Expiry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earned_at", "expires_at"),
    [
        ("2026-03-10T10:00:00+08:00", "2028-01-01T00:00:00+08:00"),
        ("2026-01-01T00:00:00+08:00", "2028-01-01T00:00:00+08:00"),
        # 16:30 UTC on 31 December is already 2027 in Shanghai.
        ("2026-12-31T16:30:00+00:00", "2029-01-01T00:00:00+08:00"),
        ("2026-12-31T15:59:59+00:00", "2028-01-01T00:00:00+08:00"),
    ],
)
def test_points_expire_at_the_end_of_the_year_after_earning_in_brand_time(
    earned_at: str, expires_at: str
) -> None:
    assert expiry_of(at(earned_at), ExpiryPolicy(), SHANGHAI) == at(expires_at)


def test_fixed_days_expire_at_the_end_of_the_last_business_day() -> None:
    policy = ExpiryPolicy(policy="fixed_days", days=30)

    expires = expiry_of(at("2026-03-10T23:30:00+08:00"), policy, SHANGHAI)

    assert expires == at("2026-04-10T00:00:00+08:00")
    assert expires is not None and expires.tzinfo == UTC


def test_never_expiring_points_have_no_expiry() -> None:
    assert expiry_of(NOW, ExpiryPolicy(policy="never"), SHANGHAI) is None


def test_a_naive_earning_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expiry_of(datetime(2026, 1, 1), ExpiryPolicy(), SHANGHAI)


# --- Drawing --------------------------------------------------------------------------------------

LOTS = (
    lot(1, 100, "2028-01-01T00:00:00+08:00"),
    lot(2, 50, "2027-01-01T00:00:00+08:00", earned="2025-06-01T10:00:00+08:00"),
    lot(3, 30, None),
    lot(4, 20, "2027-01-01T00:00:00+08:00", earned="2025-03-01T10:00:00+08:00"),
    lot(5, 10, "2027-01-01T00:00:00+08:00", earned="2025-03-01T10:00:00+08:00"),
    lot(6, 40, "2026-05-01T00:00:00+08:00"),  # already expired at NOW, not yet swept
)


def test_spending_draws_the_soonest_expiring_lots_first_then_the_older_then_the_lower_id() -> None:
    assert draw(LOTS, 95, now=NOW) == (LotDraw(4, 20), LotDraw(5, 10), LotDraw(2, 50), LotDraw(1, 15))


def test_never_expiring_points_are_spent_last() -> None:
    assert draw(LOTS, 210, now=NOW)[-1] == LotDraw(3, 30)


def test_expired_lots_are_never_drawn_and_not_spendable() -> None:
    assert spendable_balance(LOTS, NOW) == 210
    with pytest.raises(ValueError, match="the lots hold 210 spendable points, less than 211"):
        draw(LOTS, 211, now=NOW)


def test_drawing_nothing_draws_on_no_lot() -> None:
    assert draw(LOTS, 0, now=NOW) == ()


@pytest.mark.parametrize(
    ("balance", "amount", "reason"),
    [
        (100, 100, None),
        (100, 101, "the balance is 100 points, less than the 101 points asked for"),
        (-20, 5, "the balance is -20 points, less than the 5 points asked for"),
        (100, 0, "a redemption must be a whole number of points above zero, not 0"),
        (100, -3, "a redemption must be a whole number of points above zero, not -3"),
    ],
)
def test_redemption_rejection_reason(balance: int, amount: int, reason: str | None) -> None:
    assert redemption_rejection_reason(balance, amount) == reason


def test_the_expiry_job_expires_what_is_left_of_lots_past_their_expiry() -> None:
    lots = (*LOTS, lot(7, 0, "2026-02-01T00:00:00+08:00"), lot(8, 5, "2026-06-01T12:00:00+08:00"))

    assert expired_remainders(lots, NOW) == (
        LotExpiry(6, 40, at("2026-05-01T00:00:00+08:00")),
        LotExpiry(8, 5, at("2026-06-01T12:00:00+08:00")),
    )


def test_points_expiring_within_a_window_are_listed_for_notices() -> None:
    found = expiring_between(LOTS, NOW, at("2027-01-01T00:00:00+08:00"))

    assert [(expiry.lot_id, expiry.amount) for expiry in found] == [(2, 50), (4, 20), (5, 10)]


# --- Refund take-backs and shortfalls ------------------------------------------------------------


def test_a_take_back_empties_the_orders_own_lot_first() -> None:
    plan = plan_take_back(LOTS, 40, policy="negative_balance", now=NOW, source_lot_id=1)

    assert plan == TakeBack((LotDraw(1, 40),), 0, "negative_balance")


def test_when_the_orders_points_were_spent_the_other_lots_cover_it() -> None:
    lots = (lot(1, 10, "2028-01-01T00:00:00+08:00"), *LOTS[1:3])

    plan = plan_take_back(lots, 40, policy="negative_balance", now=NOW, source_lot_id=1)

    assert plan.draws == (LotDraw(1, 10), LotDraw(2, 30))
    assert (plan.from_lots, plan.shortfall, plan.negative_balance, plan.claw_back_debt) == (40, 0, 0, 0)


def test_a_shortfall_goes_negative_or_becomes_a_debt_per_policy() -> None:
    lots = (lot(1, 10, "2028-01-01T00:00:00+08:00"), lot(2, 5, None), LOTS[5])

    negative = plan_take_back(lots, 40, policy="negative_balance", now=NOW, source_lot_id=1)
    debt = plan_take_back(lots, 40, policy="claw_back_from_future", now=NOW, source_lot_id=1)

    assert negative.draws == debt.draws == (LotDraw(1, 10), LotDraw(2, 5))
    assert (negative.shortfall, negative.negative_balance, negative.claw_back_debt) == (25, 25, 0)
    assert (debt.shortfall, debt.negative_balance, debt.claw_back_debt) == (25, 0, 25)


def test_points_of_an_expired_source_lot_are_not_taken_back_again() -> None:
    plan = plan_take_back(LOTS, 10, policy="negative_balance", now=NOW, source_lot_id=6)

    assert plan.draws == (LotDraw(4, 10),)


def test_later_earnings_repay_a_shortfall_first() -> None:
    assert settle_debt(100, 25) == DebtSettlement(repaid=25, credited=75)
    assert settle_debt(10, 25) == DebtSettlement(repaid=10, credited=0)
    assert settle_debt(10, 0) == DebtSettlement(repaid=0, credited=10)
    with pytest.raises(ValueError, match="must not be negative"):
        settle_debt(-1, 0)


# --- Properties ------------------------------------------------------------------------------------

BASE = datetime(2026, 1, 1, tzinfo=UTC)
lot_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=500),
        st.one_of(st.none(), st.integers(min_value=-30, max_value=800)),
        st.integers(min_value=0, max_value=400),
    ),
    max_size=12,
).map(
    lambda specs: tuple(
        PointsLot(
            index + 1,
            remaining,
            BASE + timedelta(days=earned),
            None if expires is None else BASE + timedelta(days=expires),
        )
        for index, (remaining, expires, earned) in enumerate(specs)
    )
)


def order_key(item: PointsLot) -> tuple[bool, datetime, datetime, int]:
    return (item.expires_at is None, item.expires_at or item.earned_at, item.earned_at, item.lot_id)


@given(lot_lists, st.integers(min_value=0, max_value=6_000))
def test_draw_never_exceeds_the_balance_and_takes_the_soonest_expiring_first(
    lots: tuple[PointsLot, ...], amount: int
) -> None:
    now = BASE
    balance = spendable_balance(lots, now)
    if amount > balance:
        with pytest.raises(ValueError, match="spendable points, less than"):
            draw(lots, amount, now=now)
        return

    draws = draw(lots, amount, now=now)

    by_id = {item.lot_id: item for item in lots}
    assert sum(entry.amount for entry in draws) == amount
    assert len({entry.lot_id for entry in draws}) == len(draws)
    for entry in draws:
        drawn = by_id[entry.lot_id]
        assert 0 < entry.amount <= drawn.remaining
        assert drawn.expires_at is None or drawn.expires_at > now
    # Any spendable lot that comes before a drawn lot in spending order was emptied.
    taken = {entry.lot_id: entry.amount for entry in draws}
    last_drawn = max((order_key(by_id[lot_id]) for lot_id in taken), default=None)
    spendable = [
        item for item in lots if item.remaining and (item.expires_at is None or item.expires_at > now)
    ]
    for item in spendable:
        if last_drawn is not None and order_key(item) < last_drawn:
            assert taken.get(item.lot_id) == item.remaining


operations = st.lists(
    st.tuples(
        st.sampled_from(["earn", "spend", "take_back", "expire"]),
        st.integers(min_value=0, max_value=300),
        st.integers(min_value=0, max_value=60),
    ),
    max_size=40,
)


@given(operations, st.sampled_from(["negative_balance", "claw_back_from_future"]))
def test_a_ledger_driven_by_these_rules_always_equals_its_lots(
    steps: list[tuple[str, int, int]], policy: str
) -> None:
    """Given any sequence of earn / spend / refund / expire, entries always equal lots minus shortfall."""
    policy_name: ShortfallPolicy = (
        "negative_balance" if policy == "negative_balance" else "claw_back_from_future"
    )
    expiry = ExpiryPolicy(policy="fixed_days", days=45)
    now = BASE
    lots: dict[int, PointsLot] = {}
    entries: list[int] = []
    shortfall = 0
    for kind, amount, days_later in steps:
        now += timedelta(days=days_later)
        if kind == "earn":
            settlement = settle_debt(amount, shortfall)
            shortfall -= settlement.repaid
            entries.append(amount)
            if settlement.credited:
                lot_id = len(lots) + 1
                lots[lot_id] = PointsLot(lot_id, settlement.credited, now, expiry_of(now, expiry, SHANGHAI))
        elif kind == "spend":
            balance = spendable_balance(lots.values(), now) - shortfall
            if redemption_rejection_reason(balance, amount) is None:
                apply(lots, draw(lots.values(), amount, now=now))
                entries.append(-amount)
            else:
                assert amount > balance or amount == 0
        elif kind == "take_back":
            plan = plan_take_back(lots.values(), amount, policy=policy_name, now=now)
            apply(lots, plan.draws)
            shortfall += plan.shortfall
            entries.append(-amount)
        else:
            for expired in expired_remainders(lots.values(), now):
                apply(lots, (LotDraw(expired.lot_id, expired.amount),))
                entries.append(-expired.amount)

        assert all(item.remaining >= 0 for item in lots.values())
        assert sum(entries) == sum(item.remaining for item in lots.values()) - shortfall
        assert shortfall == 0 or spendable_balance(lots.values(), now) == 0


def apply(lots: dict[int, PointsLot], draws: tuple[LotDraw, ...]) -> None:
    for entry in draws:
        item = lots[entry.lot_id]
        lots[entry.lot_id] = PointsLot(
            item.lot_id, item.remaining - entry.amount, item.earned_at, item.expires_at
        )
