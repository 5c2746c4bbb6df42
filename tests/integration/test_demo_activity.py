"""The demo brand's programme comes alive: its history replayed with members buying plans, using
coupons and spending points, each at its own instant, through the real services."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from memberops.demo.generator import generate_demo
from memberops.demo.programme_run import ProgrammeRun, run_programme
from memberops.ingest.bulk import import_file
from memberops.kit.db import unit_of_work
from memberops.loyalty import jobs
from memberops.loyalty.plan_service import plan_statuses
from memberops.loyalty.programme import demo_programme
from memberops.loyalty.reports import coupon_report, points_economics
from memberops.models import (
    Coupon,
    CouponRedemption,
    OrderEarning,
    OrderLine,
    PaidPlanTerm,
    PointsAllocation,
    PointsEntry,
    PointsLot,
    RewardRedemption,
)
from memberops.wiring import Services
from tests.integration.loyalty_support import apply, buy, member

END = date(2026, 10, 31)
#: The brand loads its history some weeks after its last day, when a plan run is in its last week.
NOW = datetime(2026, 12, 10, 4, tzinfo=UTC)
YEAR = (date(2025, 12, 10), date(2026, 12, 9))


def load_and_run(services: Services, directory: Path) -> ProgrammeRun:
    manifest = generate_demo(directory, members=300, seed=7, end_date=END)
    for item in manifest.files:
        import_file(services, item.path, item.kind, profile=item.profile or "canonical")
    with unit_of_work(services.sessions) as session:
        services.loyalty.apply_programme(session, demo_programme(), actor="test")
    return run_programme(services, seed=7, now=NOW)


@pytest.mark.slow
def test_the_demo_history_replays_with_plans_coupons_and_points_spent(
    services: Services, tmp_path: Path
) -> None:
    run = load_and_run(services, tmp_path / "demo")

    activity = run.activity.as_dict()
    with unit_of_work(services.read_sessions) as session:
        problems = services.loyalty.check(session)
        economics = points_economics(session, start=YEAR[0], end=YEAR[1], time_zone="Asia/Shanghai")
        coupons = coupon_report(session, start=YEAR[0], end=YEAR[1], time_zone="Asia/Shanghai").total
        holders = session.scalars(select(PaidPlanTerm.person_id).distinct()).all()
        statuses = Counter(
            status.status
            for status in plan_statuses(
                session, holders, time_zone=services.loyalty.time_zone, at=NOW
            ).values()
        )
        # Every point spent came from a lot earned before the spend (none from later in its batch).
        spent_from_later_lots = session.scalar(
            select(func.count())
            .select_from(PointsAllocation)
            .join(PointsEntry, PointsEntry.id == PointsAllocation.entry_id)
            .join(PointsLot, PointsLot.id == PointsAllocation.lot_id)
            .where(PointsEntry.kind == "spend", PointsLot.earned_at >= PointsEntry.created_at)
        )
        # Every coupon used was used after it was issued, inside its window.
        outside_window = session.scalar(
            select(func.count())
            .select_from(CouponRedemption)
            .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
            .where(
                (CouponRedemption.redeemed_at < Coupon.issued_at)
                | (CouponRedemption.redeemed_at < Coupon.valid_from)
                | (CouponRedemption.redeemed_at >= Coupon.valid_until)
            )
        )
        cancelled = session.scalar(
            select(func.count()).select_from(RewardRedemption).where(RewardRedemption.status == "cancelled")
        )
        plan_orders = session.scalar(
            select(func.count()).select_from(OrderLine).where(OrderLine.category == "paid_plan")
        )

    assert problems == []
    assert spent_from_later_lots == 0
    assert outside_window == 0
    assert activity == {
        "birthdays_recorded": 21,
        "plan_terms": 22,
        "plan_renewals": 5,
        "plan_orders_unmatched": 0,
        "coupons_issued": 1300,
        "birthday_gifts": 27,
        "coupon_uses": 86,
        "coupon_discount_fen": 56500,
        "coupon_uses_without_coupon": 296,
        "points_uses": 90,
        "points_used": 3495,
        "rewards_redeemed": 15,
        "reward_points": 195,
        "rewards_cancelled": 1,
        "rewards_refused": 0,
        "coupons_expired": 1326,
        "plans_expired": 10,
    }
    assert plan_orders == activity["plan_terms"]
    assert cancelled == activity["rewards_cancelled"]
    figures = economics.as_dict()
    assert {key: figures[key] for key in ("issued", "burned", "expired", "outstanding_points")} == {
        "issued": 7721,
        "burned": 2133,
        "expired": 1990,
        "outstanding_points": 9148,
    }
    assert (coupons.issued, coupons.redeemed, coupons.expired) == (756, 37, 737)
    assert statuses == {"active": 6, "expiring": 1, "expired": 6}


def test_the_replay_hook_runs_after_each_batch_and_checkpoint_with_history_up_to_its_clock(
    services: Services,
) -> None:
    phone = "13800138000"
    member(services, phone, joined="2026-01-01T00:00:00+08:00")
    for external_id, paid_at in (("H1", "2026-01-10"), ("H2", "2026-01-20"), ("H3", "2026-02-10")):
        buy(services, external_id, phone, "100.00", paid_at=f"{paid_at}T12:00:00+08:00")
    apply(services)
    seen: list[tuple[datetime, int]] = []

    def hook(clock: datetime) -> None:
        with unit_of_work(services.read_sessions) as session:
            earned = session.scalar(select(func.count()).select_from(OrderEarning))
        seen.append((clock, int(earned or 0)))

    now = datetime(2026, 3, 5, tzinfo=UTC)
    jobs.replay(
        services.sessions, time_zone=services.loyalty.time_zone, now=now, batch_size=1, between_batches=hook
    )

    shanghai = services.loyalty.time_zone
    assert seen == [
        (datetime(2026, 1, 10, 12, tzinfo=shanghai), 1),
        (datetime(2026, 1, 20, 12, tzinfo=shanghai), 2),
        (datetime(2026, 1, 31, tzinfo=shanghai), 2),  # a downgrade date: expiry and tiers ran then
        (datetime(2026, 2, 10, 12, tzinfo=shanghai), 3),
        (datetime(2026, 3, 3, tzinfo=shanghai), 3),
        (now, 3),
    ]
