"""Replay the demo's history through its programme with the members' planned activity woven in.

``run_programme`` reads the imported members and orders, plans their activity
(``memberops.demo.programme_activity``), records the planned birthdays, then replays the history
with an ``ActivityRunner`` (``memberops.demo.activity_runner``) as the replay's ``between_batches``
hook, so each planned action happens at its own instant against the ledger as it was then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from memberops.demo.activity_runner import ActivityReport, ActivityRunner, expire_plans
from memberops.demo.catalogue import PAID_PLAN_CATEGORY
from memberops.demo.programme_activity import (
    ActivityParameters,
    ActivityPlan,
    MemberFact,
    OrderFact,
    plan_activity,
)
from memberops.identity.repository import chunks
from memberops.kit.clock import utc_now
from memberops.kit.db import unit_of_work
from memberops.loyalty import benefit_service, coupon_service, jobs
from memberops.loyalty.jobs import ReplayReport
from memberops.loyalty.versions import require_programme
from memberops.models import Membership, Order, OrderLine
from memberops.wiring import Services


def read_members(session: Session) -> list[MemberFact]:
    """Every person with a membership: first joined, and left (when no spell is active any more)."""
    spells: dict[int, tuple[datetime, datetime | None, bool]] = {}
    for person_id, joined_at, status, cancelled_at in session.execute(
        select(Membership.person_id, Membership.joined_at, Membership.status, Membership.cancelled_at)
        .where(Membership.status.in_(("active", "cancelled")))
        .order_by(Membership.person_id, Membership.joined_at, Membership.id)
    ):
        first, left, active = spells.get(int(person_id), (joined_at, None, False))
        if status == "active":
            active = True
        elif cancelled_at is not None and (left is None or cancelled_at > left):
            left = cancelled_at
        spells[int(person_id)] = (min(first, joined_at), left, active)
    return [
        MemberFact(person_id, joined_at, None if active else left)
        for person_id, (joined_at, left, active) in sorted(spells.items())
    ]


def read_orders(session: Session) -> list[OrderFact]:
    """Every order of a member (whenever paid), with its paid-plan line (SKU and unit price) if any."""
    plan_lines: dict[int, tuple[str, int]] = {}
    for order_id, sku, amount_fen, quantity in session.execute(
        select(OrderLine.order_id, OrderLine.sku, OrderLine.amount_fen, OrderLine.quantity).where(
            OrderLine.category == PAID_PLAN_CATEGORY
        )
    ):
        plan_lines[int(order_id)] = (str(sku), int(amount_fen) // max(int(quantity), 1))
    found: list[OrderFact] = []
    for order_id, person_id, paid_at, amount_fen, source, external_id in session.execute(
        select(Order.id, Order.person_id, Order.paid_at, Order.amount_fen, Order.source, Order.external_id)
        .where(Order.person_id.in_(select(Membership.person_id)))
        .order_by(Order.paid_at, Order.id)
    ):
        if person_id is None:
            continue
        line = plan_lines.get(int(order_id))
        found.append(
            OrderFact(
                int(order_id),
                int(person_id),
                paid_at,
                int(amount_fen),
                str(source),
                str(external_id),
                line[0] if line else None,
                line[1] if line else None,
            )
        )
    return found


def record_birthdays(
    sessions: sessionmaker[Session], plan: ActivityPlan, *, time_zone: ZoneInfo, now: datetime
) -> int:
    """Record the planned birthdays on the members' memberships (a profile fact, not history)."""
    recorded = 0
    for part in chunks(list(plan.birthdays), 5000):
        with unit_of_work(sessions) as session:
            for person_id, birthday in part:
                benefit_service.set_birthday(session, person_id, birthday, time_zone=time_zone, now=now)
                recorded += 1
    return recorded


@dataclass(frozen=True)
class ProgrammeRun:
    """A replay of the history with the members' activity woven in."""

    replay: ReplayReport
    activity: ActivityReport
    plan: ActivityPlan


def run_programme(
    svc: Services,
    *,
    seed: int,
    now: datetime | None = None,
    parameters: ActivityParameters | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProgrammeRun:
    """Plan the members' activity, record their birthdays, and replay the history with it woven in.

    The active programme must be applied first. ``now`` (default: the current time) is where the
    replay's clock stops; the plan and coupon jobs then run once more as of ``now``, with today's
    notices (``plan.expiring``, ``coupon.expiring``).
    """
    now = now or utc_now()
    time_zone = svc.loyalty.time_zone
    with unit_of_work(svc.read_sessions) as session:
        programme = require_programme(session).programme
        members = read_members(session)
        orders = read_orders(session)
    start = min([member.joined_at for member in members] + [order.paid_at for order in orders], default=now)
    plan = plan_activity(
        members,
        orders,
        programme,
        seed=seed,
        start=start,
        end=now,
        time_zone=time_zone,
        parameters=parameters,
    )
    runner = ActivityRunner(
        svc.sessions, plan, time_zone=time_zone, programme=programme, parameters=parameters
    )
    runner.report.birthdays_recorded = record_birthdays(svc.sessions, plan, time_zone=time_zone, now=now)
    replay = jobs.replay(
        svc.sessions, time_zone=time_zone, now=now, progress=progress, between_batches=runner
    )
    with unit_of_work(svc.sessions) as session:
        runner.report.plans_expired += expire_plans(session, time_zone=time_zone, now=now)
    while True:  # today's coupon notices, which the replayed history kept quiet
        with unit_of_work(svc.sessions) as session:
            notices = coupon_service.expire_coupons(session, now=now)
        if notices.expired == 0 and notices.notified == 0:
            break
    return ProgrammeRun(replay, runner.report, plan)
