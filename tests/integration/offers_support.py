"""Builders for the coupon, reward, plan and checkout integration tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memberops.ingest.records import parse_event
from memberops.kit.db import unit_of_work
from memberops.loyalty.points import adjust_points
from memberops.loyalty.programme import demo_programme
from memberops.models import (
    BenefitGrant,
    CheckoutRefund,
    CheckoutSettlement,
    Coupon,
    CouponRedemption,
    Membership,
    OutboxEvent,
    PaidPlanTerm,
    PointsAccount,
    PointsEntry,
    RewardRedemption,
    RewardStock,
)
from memberops.wiring import Services

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-03-10 10:00 Shanghai: a plain Tuesday (no member day, no promotion).
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
T = TypeVar("T")

#: Every table an offer write can touch: the "nothing changed" check of rejected actions.
OFFER_TABLES = {
    "coupons": Coupon,
    "coupon_redemptions": CouponRedemption,
    "reward_stock": RewardStock,
    "reward_redemptions": RewardRedemption,
    "plan_terms": PaidPlanTerm,
    "benefit_grants": BenefitGrant,
    "settlements": CheckoutSettlement,
    "checkout_refunds": CheckoutRefund,
    "points_entries": PointsEntry,
    "outbox": OutboxEvent,
}


def write(services: Services, action: Callable[[Session], T]) -> T:
    """Run ``action`` in one committed transaction."""
    with unit_of_work(services.sessions) as session:
        return action(session)


def read(services: Services, action: Callable[[Session], T]) -> T:
    with unit_of_work(services.read_sessions) as session:
        return action(session)


def setup_programme(services: Services) -> int:
    """Apply the demo programme; return its version id."""
    return write(
        services, lambda s: services.loyalty.apply_programme(s, demo_programme(), actor="test")[0].version_id
    )


def member(services: Services, phone: str, *, birthday: str | None = None) -> int:
    """Register a member by phone (joined 1 Jan 2026); return the person id."""
    event = {
        "type": "register",
        "occurred_at": "2026-01-01T00:00:00+08:00",
        "field": "pos",
        "phone": phone,
        "external_id": f"reg-{phone}",
    }

    def register(session: Session) -> int:
        [outcome] = services.ingest.ingest_events(session, [parse_event(event)], actor="test")
        assert outcome.person_id is not None
        if birthday is not None:
            membership = session.scalars(
                select(Membership).where(Membership.person_id == outcome.person_id)
            ).one()
            membership.birthday = datetime.fromisoformat(birthday).date()
        return outcome.person_id

    return write(services, register)


def give_points(services: Services, person_id: int, points: int, *, at: datetime = NOW) -> None:
    write(
        services,
        lambda s: adjust_points(
            s,
            person_id,
            points,
            reason="test",
            actor="test",
            key=f"give:{person_id}:{points}:{at}",
            time_zone=SHANGHAI,
            now=at,
        ),
    )


def set_tier(services: Services, person_id: int, tier: str) -> None:
    write(services, lambda s: services.loyalty.set_floor(s, person_id, tier, actor="test", reason="test"))


def balance(services: Services, person_id: int) -> int:
    return read(
        services,
        lambda s: int(
            s.scalar(select(PointsAccount.balance).where(PointsAccount.person_id == person_id)) or 0
        ),
    )


def counts(services: Services) -> dict[str, int]:
    def count(session: Session) -> dict[str, int]:
        return {
            name: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in OFFER_TABLES.items()
        }

    return read(services, count)


def coupon_states(services: Services) -> list[tuple[int, str, str]]:
    """Every coupon as (id, template, status), by id."""
    return read(
        services,
        lambda s: [(c.id, c.template_code, c.status) for c in s.scalars(select(Coupon).order_by(Coupon.id))],
    )


def topics(services: Services) -> list[str]:
    return read(services, lambda s: list(s.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id))))


def snapshot(services: Services) -> tuple[Any, ...]:
    """Counts, coupon states and balances: what a refused action must leave exactly as it was."""
    balances = read(
        services,
        lambda s: sorted(
            tuple(row) for row in s.execute(select(PointsAccount.person_id, PointsAccount.balance))
        ),
    )
    stock = read(
        services,
        lambda s: sorted(
            tuple(row) for row in s.execute(select(RewardStock.reward_code, RewardStock.redeemed))
        ),
    )
    return counts(services), coupon_states(services), balances, stock
