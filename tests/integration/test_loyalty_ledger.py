"""The points ledger over the store, on SQLite and PostgreSQL: exact figures, nothing changed on refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from memberops.kit.clock import parse_instant
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.loyalty import jobs
from memberops.loyalty.ledger import IdempotencyConflict, InsufficientPoints
from memberops.loyalty.points import adjust_points, restore_points, spend_points
from memberops.loyalty.programme import demo_programme
from memberops.models import (
    Coupon,
    OrderEarning,
    OutboxEvent,
    PointsAllocation,
    PointsEntry,
    PointsLot,
    TierChangeRecord,
)
from memberops.wiring import Services
from tests.integration.helpers import counts
from tests.integration.loyalty_support import (
    apply,
    balance,
    buy,
    debt,
    entries,
    member,
    plain_programme,
    problems,
    programme_with,
    refund,
    tier,
)

PHONE = "13800138000"
NOW = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


def spend(services: Services, person_id: int, amount: int, key: str, now: datetime = NOW) -> PointsEntry:
    with unit_of_work(services.sessions) as session:
        return spend_points(
            session, person_id, amount, key=key, reason="a fruit box", source="test", actor="tester", now=now
        )


def restore(services: Services, spend_key: str, key: str, now: datetime = NOW) -> PointsEntry:
    with unit_of_work(services.sessions) as session:
        return restore_points(session, spend_key, key=key, actor="tester", now=now)


def adjust(services: Services, person_id: int, amount: int, key: str, now: datetime = NOW) -> PointsEntry:
    with unit_of_work(services.sessions) as session:
        return adjust_points(
            session,
            person_id,
            amount,
            reason="goodwill",
            actor="operator-1",
            key=key,
            time_zone=services.loyalty.time_zone,
            now=now,
        )


def topics(services: Services) -> list[str]:
    with unit_of_work(services.read_sessions) as session:
        return list(session.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id)))


def lots_of(services: Services, person_id: int) -> list[tuple[int, int, str | None]]:
    """(amount, remaining, expires_at in Shanghai) of the member's lots, oldest first."""
    with unit_of_work(services.read_sessions) as session:
        return [
            (
                amount,
                remaining,
                expires.astimezone(services.loyalty.time_zone).isoformat() if expires else None,
            )
            for amount, remaining, expires in session.execute(
                select(PointsLot.amount, PointsLot.remaining, PointsLot.expires_at)
                .where(PointsLot.person_id == person_id)
                .order_by(PointsLot.id)
            )
        ]


# --- programme ---------------------------------------------------------------------------------------


def test_applying_a_programme_records_its_version_on_every_entry(services: Services) -> None:
    version_id = apply(services)
    again = apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")

    assert again == version_id
    with unit_of_work(services.read_sessions) as session:
        versions = session.execute(text("SELECT id, version, active FROM programme_versions")).all()
        stamped = set(session.scalars(select(PointsEntry.programme_version_id)))
    assert [tuple(row) for row in versions] == [(version_id, "2026.1", True)]
    assert stamped == {version_id}
    assert balance(services, person) == 10


def test_a_new_version_becomes_active_and_a_reused_label_is_refused(services: Services) -> None:
    first = apply(services)
    second = apply(services, plain_programme())
    before = counts(services)

    with pytest.raises(Conflict, match="was applied before with different content"):
        apply(services, programme_with(version="plain", name="something else"))

    assert counts(services) == before
    with unit_of_work(services.read_sessions) as session:
        active = services.loyalty.active_programme(session)
    assert active is not None and active.version_id == second != first
    assert apply(services, demo_programme()) == first  # re-activating an earlier version


# --- earning -----------------------------------------------------------------------------------------


def test_a_member_order_earns_points_and_growth_with_a_lot_expiring_the_year_after(
    services: Services,
) -> None:
    apply(services)
    person = member(services, PHONE)

    order_id = buy(services, "A1", PHONE, "105.00")

    assert entries(services, person) == [("earn", 10)]
    assert lots_of(services, person) == [(10, 10, "2028-01-01T00:00:00+08:00")]
    with unit_of_work(services.read_sessions) as session:
        earned = session.get_one(OrderEarning, order_id)
        assert (earned.points, earned.growth, earned.business_date) == (10, 105, date(2026, 3, 2))
    assert tier(services, person) == "standard"
    assert topics(services) == ["programme.applied", "points.earned"]
    assert problems(services) == []


def test_guests_non_members_and_purchases_before_joining_earn_nothing(services: Services) -> None:
    apply(services)
    member(services, PHONE, joined="2026-03-10T00:00:00+08:00")

    buy(services, "G1", "13900139000", "100.00")  # a buyer who never joined
    buy(services, "E1", PHONE, "100.00", paid_at="2026-03-09T12:00:00+08:00")  # before joining
    buy(services, "G2", "", "100.00")  # a guest: no identifier at all

    with unit_of_work(services.read_sessions) as session:
        assert session.scalars(select(PointsEntry)).all() == []
        assert session.scalars(select(OrderEarning)).all() == []


def test_member_day_tier_multiplier_and_caps_apply(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)

    buy(services, "D18", PHONE, "105.00", paid_at="2026-03-18T12:00:00+08:00")  # member day: double
    buy(services, "BIG1", PHONE, "30000.00", paid_at="2026-04-02T10:00:00+08:00")  # capped per order
    buy(services, "BIG2", PHONE, "30000.00", paid_at="2026-04-02T11:00:00+08:00")  # gold now: 1.5×, capped
    buy(services, "BIG3", PHONE, "30000.00", paid_at="2026-04-02T12:00:00+08:00")  # the day's cap is 5000

    assert entries(services, person) == [
        ("earn", 21),
        ("earn", 2000),
        ("gift", 100),  # silver's upgrade gift, then gold's: 30,000 growth passes both
        ("gift", 300),
        ("earn", 2000),
        ("earn", 1000),
    ]
    assert tier(services, person) == "gold"
    assert balance(services, person) == 5421
    assert problems(services) == []


def test_a_paid_plan_member_day_counts_when_larger_than_the_tier_one(services: Services) -> None:
    from memberops.loyalty.plan_service import buy_plan

    apply(services)
    person = member(services, PHONE)
    other = member(services, "13900139000")
    with unit_of_work(services.sessions) as session:
        buy_plan(
            session,
            person,
            "half_year",
            key="plan-1",
            actor="test",
            time_zone=services.loyalty.time_zone,
            now=parse_instant("2026-03-01T10:00:00+08:00"),
        )

    buy(services, "P18", PHONE, "105.00", paid_at="2026-03-18T12:00:00+08:00")
    buy(services, "O18", "13900139000", "105.00", paid_at="2026-03-18T12:00:00+08:00")
    buy(services, "P17", PHONE, "105.00", paid_at="2026-03-17T12:00:00+08:00")

    assert entries(services, person) == [("earn", 31), ("earn", 10)]  # 3× on the plan's member day
    assert entries(services, other) == [("earn", 21)]  # the tier's 2×


def test_an_upgrade_happens_at_once_with_its_gift_and_the_next_order_earns_more(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)

    buy(services, "U1", PHONE, "3000.00")
    buy(services, "U2", PHONE, "100.00", paid_at="2026-03-03T12:00:00+08:00")

    assert entries(services, person) == [("earn", 300), ("gift", 100), ("earn", 12)]
    assert tier(services, person) == "silver"
    with unit_of_work(services.read_sessions) as session:
        history = session.execute(
            select(TierChangeRecord.from_tier, TierChangeRecord.to_tier, TierChangeRecord.reason)
        ).all()
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "tier.changed")).one()
    assert [tuple(row) for row in history] == [("standard", "silver", "growth")]
    assert event.payload["gifts"] == [
        {"tier": "silver", "points": 100, "coupons": ["upgrade_silver_20"], "packs": []}
    ]


def coupons_of(services: Services, person_id: int) -> list[tuple[str, str, str, str]]:
    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(
            select(Coupon.template_code, Coupon.source, Coupon.pack_code, Coupon.valid_until)
            .where(Coupon.person_id == person_id)
            .order_by(Coupon.template_code, Coupon.id)
        ).all()
    return [(code, source, pack or "", until.date().isoformat()) for code, source, pack, until in rows]


def test_an_upgrade_issues_its_gift_coupons_and_packs_once(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    order_id = buy(services, "U1", PHONE, "3000.00")  # 3,000 growth: silver
    assert coupons_of(services, person) == [("upgrade_silver_20", "upgrade", "", "2026-04-30")]

    with unit_of_work(services.sessions) as session:  # the same order earns again: nothing new
        [again] = services.loyalty.earn_for_orders(session, [order_id])
    assert again.created is False
    buy(services, "U2", PHONE, "3000.00", paid_at="2026-03-05T12:00:00+08:00")  # 6,000: gold

    assert coupons_of(services, person) == [
        ("durian_15_off", "upgrade", "gold_welcome_pack", "2026-04-03"),
        ("gold_50", "upgrade", "gold_welcome_pack", "2026-06-02"),
        ("gold_50", "upgrade", "gold_welcome_pack", "2026-06-02"),
        ("upgrade_silver_20", "upgrade", "", "2026-04-30"),
    ]
    with unit_of_work(services.read_sessions) as session:
        issued = session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "coupon.issued")).all()
    assert len(issued) == 4
    assert problems(services) == []


def test_a_gift_coupon_whose_campaign_is_over_is_left_out_and_the_upgrade_stands(services: Services) -> None:
    def close_silver_gift(document: dict[str, Any]) -> None:
        for template in document["coupon_templates"]:
            if template["code"] == "upgrade_silver_20":
                template["validity"] = {"starts_on": "2025-01-01", "ends_on": "2025-12-31"}

    apply(services, programme_with(close_silver_gift))
    person = member(services, PHONE)
    buy(services, "U1", PHONE, "3000.00")

    assert tier(services, person) == "silver"
    assert entries(services, person) == [("earn", 300), ("gift", 100)]
    assert coupons_of(services, person) == []


def test_replaying_an_order_changes_nothing(services: Services) -> None:
    apply(services)
    member(services, PHONE)
    order_id = buy(services, "A1", PHONE, "105.00")
    before = counts(services)

    assert buy(services, "A1", PHONE, "105.00") == order_id
    with unit_of_work(services.sessions) as session:
        [again] = services.loyalty.earn_for_orders(session, [order_id])

    assert (again.created, again.points) == (False, 10)
    assert counts(services) == before


def test_a_batch_earns_exactly_what_one_by_one_earns(services: Services) -> None:
    apply(services)
    one, batch = member(services, PHONE), member(services, "13900139000")
    plan = [
        ("2026-03-02T12:00:00+08:00", "2500.00"),
        ("2026-03-02T13:00:00+08:00", "600.00"),  # silver from here
        ("2026-03-18T09:00:00+08:00", "300.00"),  # member day
        ("2026-04-01T09:00:00+08:00", "25000.00"),  # gold, capped
        ("2026-04-01T10:00:00+08:00", "30000.00"),  # capped per order
    ]
    for index, (paid_at, amount) in enumerate(plan):
        buy(services, f"ONE{index}", PHONE, amount, paid_at=paid_at)
    from memberops.ingest.records import parse_order

    with unit_of_work(services.sessions) as session:
        services.ingest.ingest_orders(
            session,
            [
                parse_order(
                    {
                        "source": "pos",
                        "external_id": f"B{i}",
                        "paid_at": p,
                        "amount": a,
                        "phone": "13900139000",
                    }
                )
                for i, (p, a) in enumerate(plan)
            ],
            actor="test",
        )

    assert entries(services, batch) == entries(services, one)
    assert entries(services, one) == [
        ("earn", 250),
        ("earn", 60),
        ("gift", 100),
        ("earn", 72),
        ("earn", 2000),
        ("gift", 300),
        ("earn", 2000),
    ]
    assert tier(services, one) == tier(services, batch) == "gold"
    assert problems(services) == []


def test_orders_stored_before_a_programme_earn_through_replay(services: Services) -> None:
    person = member(services, PHONE, joined="2024-01-01T00:00:00+08:00")
    buy(services, "H1", PHONE, "3000.00", paid_at="2024-03-02T12:00:00+08:00")
    buy(services, "H2", PHONE, "100.00", paid_at="2025-06-02T12:00:00+08:00")
    refund(services, "H2", "HR2", "100.00", at="2025-06-03T12:00:00+08:00")
    assert entries(services, person) == []

    apply(services)
    report = services.loyalty.replay(services.sessions)

    # H1 makes silver (gift 100); on 2025-03-03 its growth has left the window: back to standard,
    # so H2 earns at 1×; its refund takes those 10 back; points of 2024 expired on 2026-01-01.
    assert entries(services, person) == [
        ("earn", 300),
        ("gift", 100),
        ("earn", 10),
        ("refund_take_back", -10),
        ("expire", -400),
    ]
    assert tier(services, person) == "standard"
    assert (report.orders, report.earned, report.refunds, report.expired_points, report.downgraded) == (
        2,
        2,
        1,
        400,
        1,
    )
    again = services.loyalty.replay(services.sessions)
    assert (again.orders, again.earned) == (0, 0)
    assert problems(services) == []


# --- refunds -----------------------------------------------------------------------------------------


def test_partial_refunds_take_back_exactly_what_the_refunded_part_earned(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")

    refund(services, "A1", "R1", "52.50")
    refund(services, "A1", "R1", "52.50")  # a replay
    refund(services, "A1", "R2", "30.00")
    refund(services, "A1", "R3", "22.50")

    assert entries(services, person) == [
        ("earn", 10),
        ("refund_take_back", -5),
        ("refund_take_back", -2),
        ("refund_take_back", -3),
    ]
    with unit_of_work(services.read_sessions) as session:
        earned = session.scalars(select(OrderEarning)).one()
        assert (earned.points_taken_back, earned.growth_taken_back, earned.refunded_fen) == (10, 105, 10500)
        growth = session.execute(text("SELECT sum(delta) FROM growth_entries")).scalar_one()
    assert growth == 0
    assert problems(services) == []


def test_an_order_ingested_with_its_refund_earns_and_takes_back_in_one_go(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)

    buy(services, "A1", PHONE, "105.00", status="refunded", refund_amount="52.50")
    buy(services, "A2", PHONE, "100.00", status="refunded")

    assert entries(services, person) == [
        ("earn", 10),
        ("refund_take_back", -5),
        ("earn", 10),
        ("refund_take_back", -10),
    ]
    assert problems(services) == []


def test_a_refund_of_spent_points_goes_negative_and_later_earnings_fill_the_hole_first(
    services: Services,
) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")
    spend(services, person, 8, "s1")

    refund(services, "A1", "R1", "105.00")
    assert balance(services, person) == -8
    rejected_before = counts(services)
    with pytest.raises(InsufficientPoints):
        spend(services, person, 1, "s2")
    assert counts(services) == rejected_before

    buy(services, "A2", PHONE, "100.00", paid_at="2026-03-03T12:00:00+08:00")

    assert entries(services, person) == [("earn", 10), ("spend", -8), ("refund_take_back", -10), ("earn", 10)]
    assert balance(services, person) == 2
    assert [lot[:2] for lot in lots_of(services, person)] == [(10, 0), (10, 2)]
    assert problems(services) == []


def test_under_claw_back_the_balance_stays_at_zero_and_the_debt_is_repaid_from_the_next_earnings(
    services: Services,
) -> None:
    apply(
        services,
        programme_with(lambda d: d["refunds"].update(shortfall="claw_back_from_future"), version="cb"),
    )
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")
    spend(services, person, 8, "s1")

    refund(services, "A1", "R1", "105.00")
    assert (balance(services, person), debt(services, person)) == (0, 8)

    buy(services, "A2", PHONE, "50.00", paid_at="2026-03-03T12:00:00+08:00")
    buy(services, "A3", PHONE, "100.00", paid_at="2026-03-04T12:00:00+08:00")

    assert entries(services, person) == [
        ("earn", 10),
        ("spend", -8),
        ("refund_take_back", -2),
        ("earn", 5),
        ("claw_back", -5),
        ("earn", 10),
        ("claw_back", -3),
    ]
    assert (balance(services, person), debt(services, person)) == (7, 0)
    assert problems(services) == []


# --- spending and restoring ----------------------------------------------------------------------------


def test_spending_draws_the_soonest_expiring_lot_first_and_restoring_puts_back_exactly(
    services: Services,
) -> None:
    apply(services)
    person = member(services, PHONE, joined="2025-01-01T00:00:00+08:00")
    buy(services, "NEW", PHONE, "100.00", paid_at="2026-03-02T12:00:00+08:00")
    buy(services, "OLD", PHONE, "50.00", paid_at="2025-03-02T12:00:00+08:00")

    entry = spend(services, person, 8, "s1")
    assert (entry.kind, entry.delta, entry.balance_after) == ("spend", -8, 7)
    assert lots_of(services, person) == [
        (10, 7, "2028-01-01T00:00:00+08:00"),
        (5, 0, "2027-01-01T00:00:00+08:00"),
    ]
    with unit_of_work(services.read_sessions) as session:
        drawn = session.execute(
            select(PointsAllocation.lot_id, PointsAllocation.amount).where(
                PointsAllocation.entry_id == entry.id
            )
        ).all()
    assert [amount for _, amount in drawn] == [5, 3]

    restored = restore(services, "s1", "r1")
    assert (restored.kind, restored.delta, restored.reverses_entry_id) == ("restore", 8, entry.id)
    assert lots_of(services, person) == [
        (10, 10, "2028-01-01T00:00:00+08:00"),
        (5, 5, "2027-01-01T00:00:00+08:00"),
    ]
    before = counts(services)
    assert restore(services, "s1", "r1").id == restored.id  # a replay
    with pytest.raises(Conflict, match="already restored"):
        restore(services, "s1", "r2")
    with pytest.raises(NotFound):
        restore(services, "no-such-spend", "r3")
    assert counts(services) == before
    assert problems(services) == []


def test_restoring_into_a_lot_that_expired_since_expires_that_share_again(services: Services) -> None:
    apply(services)
    person = member(services, PHONE, joined="2025-01-01T00:00:00+08:00")
    buy(services, "OLD", PHONE, "50.00", paid_at="2025-03-02T12:00:00+08:00")  # expires 2027-01-01
    buy(services, "NEW", PHONE, "100.00", paid_at="2026-03-02T12:00:00+08:00")
    spend(services, person, 8, "s1")

    restore(services, "s1", "r1", now=datetime(2027, 2, 1, tzinfo=UTC))

    assert entries(services, person) == [
        ("earn", 5),
        ("earn", 10),
        ("spend", -8),
        ("restore", 8),
        ("expire", -5),
    ]
    assert balance(services, person) == 10
    assert problems(services) == []


def test_several_changes_in_one_transaction_each_see_the_ones_before(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")

    with unit_of_work(services.sessions) as session:
        for key, amount in (("t1", 3), ("t2", 4)):
            spend_points(session, person, amount, key=key, reason="r", source="test", actor="t", now=NOW)
        restore_points(session, "t1", key="t1-back", actor="t", now=NOW)
        spend_points(session, person, 6, key="t3", reason="r", source="test", actor="t", now=NOW)
        with pytest.raises(InsufficientPoints):
            spend_points(session, person, 1, key="t4", reason="r", source="test", actor="t", now=NOW)

    assert entries(services, person) == [
        ("earn", 10),
        ("spend", -3),
        ("spend", -4),
        ("restore", 3),
        ("spend", -6),
    ]
    assert lots_of(services, person) == [(10, 0, "2028-01-01T00:00:00+08:00")]
    assert problems(services) == []


def test_a_redemption_beyond_the_balance_is_refused_and_changes_nothing(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")
    before = counts(services)

    with pytest.raises(InsufficientPoints) as refused:
        spend(services, person, 11, "too-much")
    with pytest.raises(ValidationFailed):
        spend(services, person, 0, "nothing")

    assert refused.value.code == "insufficient_points"
    assert refused.value.message == "the balance is 10 points, less than the 11 points asked for"
    assert counts(services) == before


def test_the_same_key_spends_once_and_a_different_change_under_it_is_refused(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")

    first = spend(services, person, 4, "k1")
    again = spend(services, person, 4, "k1")
    before = counts(services)
    with pytest.raises(IdempotencyConflict):
        spend(services, person, 5, "k1")

    assert again.id == first.id
    assert balance(services, person) == 6
    assert counts(services) == before


def test_manual_adjustments_add_lots_and_remove_points_but_never_below_zero(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)

    added = adjust(services, person, 50, "a1")
    removed = adjust(services, person, -20, "a2")
    before = counts(services)
    with pytest.raises(InsufficientPoints):
        adjust(services, person, -31, "a3")
    with pytest.raises(ValidationFailed):
        adjust(services, person, 0, "a4")

    assert (added.delta, added.actor, added.reason, added.source) == (50, "operator-1", "goodwill", "manual")
    assert (removed.delta, removed.balance_after) == (-20, 30)
    assert lots_of(services, person) == [(50, 30, "2028-01-01T00:00:00+08:00")]
    assert counts(services) == before
    assert adjust(services, person, 50, "a1").id == added.id


# --- expiry ------------------------------------------------------------------------------------------


def test_the_expiry_job_expires_due_remainders_once_and_warns_ahead(services: Services) -> None:
    apply(services)
    person = member(services, PHONE, joined="2025-01-01T00:00:00+08:00")
    buy(services, "OLD", PHONE, "50.00", paid_at="2025-03-02T12:00:00+08:00")
    buy(services, "NEW", PHONE, "100.00", paid_at="2026-03-02T12:00:00+08:00")
    from datetime import timedelta

    with unit_of_work(services.sessions) as session:
        warned = services.loyalty.notify_expiring(session, NOW, within=timedelta(days=90))
    with unit_of_work(services.sessions) as session:
        warned_again = services.loyalty.notify_expiring(session, NOW, within=timedelta(days=90))
    assert (warned, warned_again) == (1, 0)

    new_year = parse_instant("2027-01-01T00:00:00+08:00")
    with unit_of_work(services.sessions) as session:
        first = jobs.expire_due(session, new_year)
    with unit_of_work(services.sessions) as session:
        second = jobs.expire_due(session, new_year)

    assert (first.members, first.points, second.members) == (1, 5, 0)
    assert entries(services, person) == [("earn", 5), ("earn", 10), ("expire", -5)]
    assert topics(services).count("points.expired") == 1
    assert problems(services) == []


# --- tiers -------------------------------------------------------------------------------------------


def evaluate(services: Services, today: date) -> tuple[int, int]:
    downgraded = warned = 0
    while True:
        with unit_of_work(services.sessions) as session:
            report = jobs.evaluate_tiers(session, today, time_zone=services.loyalty.time_zone, now=NOW)
        downgraded, warned = downgraded + report.downgraded, warned + report.warned
        if report.evaluated == 0:
            return downgraded, warned


def test_tiers_go_down_on_schedule_after_a_warning_and_never_below_the_floor(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    floored = member(services, "13900139000")
    buy(services, "U1", PHONE, "3000.00")
    buy(services, "U2", "13900139000", "3000.00")
    with unit_of_work(services.sessions) as session:
        services.loyalty.set_floor(session, floored, "silver", actor="operator-1", reason="VIP")

    assert evaluate(services, date(2027, 1, 31)) == (0, 0)
    assert evaluate(services, date(2027, 2, 1)) == (0, 1)  # evaluation date: warned for 2027-03-03
    with unit_of_work(services.read_sessions) as session:
        warning = session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "tier.will_downgrade")).one()
        summary = services.loyalty.tier_summary(session, person)
    assert warning.payload == {
        "person_id": person,
        "tier": "silver",
        "to_tier": "standard",
        "on": "2027-03-03",
        "growth_needed": 3000,
    }
    assert summary["downgrade_warning"] is None or summary["downgrade_warning"]["to_tier"] == "standard"

    assert evaluate(services, date(2027, 3, 3)) == (1, 0)
    assert (tier(services, person), tier(services, floored)) == ("standard", "silver")
    with unit_of_work(services.read_sessions) as session:
        history = session.execute(
            select(TierChangeRecord.to_tier, TierChangeRecord.reason).where(
                TierChangeRecord.person_id == person
            )
        ).all()
    assert [tuple(row) for row in history] == [("silver", "growth"), ("standard", "evaluation")]


def test_climbing_again_after_a_downgrade_gives_no_second_upgrade_gift(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "U1", PHONE, "3000.00")
    evaluate(services, date(2027, 3, 3))

    buy(services, "U2", PHONE, "3000.00", paid_at="2027-03-05T12:00:00+08:00")

    assert entries(services, person) == [("earn", 300), ("gift", 100), ("earn", 300)]
    assert tier(services, person) == "silver"


def test_the_tier_summary_says_what_it_takes_to_move(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "U1", PHONE, "3500.00", paid_at="2026-10-02T12:00:00+08:00")

    with unit_of_work(services.read_sessions) as session:
        summary = services.loyalty.tier_summary(session, person)

    assert (summary["tier"], summary["window_growth"], summary["growth_total"]) == ("silver", 3500, 3500)
    assert summary["next_tier"] == {"tier": "gold", "growth_needed": 2500}
    assert summary["downgrade_warning"] is None


# --- growth tasks ------------------------------------------------------------------------------------


def test_a_growth_task_is_rewarded_once(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)

    with unit_of_work(services.sessions) as session:
        assert services.loyalty.reward_task(session, person, "first_review", key="rev-1", actor="app") == 30
    with unit_of_work(services.sessions) as session:
        assert services.loyalty.reward_task(session, person, "first_review", key="rev-1", actor="app") == 30
    before = counts(services)
    with (
        pytest.raises(Conflict, match="rewarded once per member"),
        unit_of_work(services.sessions) as session,
    ):
        services.loyalty.reward_task(session, person, "first_review", key="rev-2", actor="app")

    assert counts(services) == before
    assert entries(services, person) == [("gift", 10)]
    assert problems(services) == []


# --- check -------------------------------------------------------------------------------------------


def test_check_finds_a_cache_that_disagrees_with_the_entries(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "A1", PHONE, "105.00")
    assert problems(services) == []

    with unit_of_work(services.sessions) as session:
        session.execute(text("UPDATE points_accounts SET balance = 99"))
        session.execute(text("UPDATE points_lots SET remaining = 7"))
        session.execute(text("UPDATE member_tiers SET growth_total = 1"))

    assert problems(services) == [
        f"balance person {person}: cached balance 99 and debt 0, but the entries add up to 10 and 0",
        f"balance person {person}: the last entry says the balance became 10, the account says 99",
        "lot lot 1: amount 10, remaining 7, but its allocations drew 0",
        f"lots person {person}: lots hold 7 points, the balance is 99",
        f"growth person {person}: cached growth 1, the entries add up to 105",
    ]
