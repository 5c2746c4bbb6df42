"""Benefits handed over by a job: the birthday gift, once a year in the birthday month.

The birthday lives on the member's active membership (``memberships.birthday``, nullable, added by
migration 0004). The job runs daily: every member whose birthday month is this month (brand time
zone) and who has not had this year's gift gets their tier's gift and, while a paid plan is active,
the plan's gift: points through the ledger, coupons and packs through the coupon service, and one
``benefit_grants`` row per gift whose unique key (``birthday:{person}:{year}:{tier|paid_plan}``)
makes a second run, or a run racing it, give nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import extract, select
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.kit.clock import utc_now
from memberops.kit.db import lock_keys
from memberops.kit.errors import NotFound, ValidationFailed
from memberops.loyalty import holdings
from memberops.loyalty.benefits import (
    benefit_sources,
    birthday_gift_rejection_reason,
    birthday_gifts,
    birthday_rejection_reason,
)
from memberops.loyalty.coupon_service import issue_gift
from memberops.models import BenefitGrant, Membership

BIRTHDAY = "birthday"


def set_birthday(
    session: Session, person_id: int, birthday: date, *, time_zone: ZoneInfo, now: datetime | None = None
) -> Membership:
    """Record the member's birthday on their active membership."""
    now = now or utc_now()
    refused = birthday_rejection_reason(birthday, now.astimezone(time_zone).date())
    if refused is not None:
        raise ValidationFailed(refused)
    member = holdings.live_person(session, person_id)
    membership = session.scalars(
        select(Membership)
        .where(Membership.person_id == member, Membership.status == "active")
        .order_by(Membership.joined_at, Membership.id)
    ).first()
    if membership is None:
        raise NotFound(f"person {member} is not a member")
    membership.birthday = birthday
    return membership


def birthday_candidates(session: Session, today: date, *, after: int = 0, limit: int = 500) -> list[int]:
    """Return members (person ids above ``after``, ascending) whose birthday month is ``today``'s."""
    return [
        int(person_id)
        for person_id in session.scalars(
            select(Membership.person_id)
            .where(
                Membership.status == "active",
                Membership.birthday.is_not(None),
                extract("month", Membership.birthday) == today.month,
                Membership.person_id > after,
            )
            .group_by(Membership.person_id)
            .order_by(Membership.person_id)
            .limit(limit)
        )
    ]


@dataclass(frozen=True)
class GiftGiven:
    """One birthday gift given: to whom, from which source, and what."""

    person_id: int
    source: str
    points: int
    coupon_ids: tuple[int, ...]


def grant_birthday_gifts(
    session: Session,
    person_ids: Sequence[int],
    *,
    today: date,
    actor: str,
    time_zone: ZoneInfo,
    now: datetime | None = None,
) -> list[GiftGiven]:
    """Give this year's birthday gifts due to ``person_ids`` on ``today``; return those given now."""
    now = now or utc_now()
    if not person_ids:
        return []
    active = holdings.active(session)
    programme = active.programme
    members = sorted(set(person_ids))
    lock_keys(session, [f"benefit:{BIRTHDAY}:{member}:{today.year}" for member in members])
    birthdays: dict[int, date | None] = dict(
        session.execute(
            select(Membership.person_id, Membership.birthday).where(
                Membership.person_id.in_(members), Membership.status == "active"
            )
        ).all()
    )
    given: list[GiftGiven] = []
    for member in members:
        grants = {
            grant.source.partition(":")[0]
            for grant in session.scalars(
                select(BenefitGrant).where(
                    BenefitGrant.person_id == member,
                    BenefitGrant.benefit == BIRTHDAY,
                    BenefitGrant.period == str(today.year),
                )
            )
        }
        plan = holdings.member_plan_status(session, member, programme, now, time_zone).benefits_plan
        if plan is not None and plan not in {p.code for p in programme.paid_plans}:
            plan = None
        sources = benefit_sources(programme, holdings.member_tier(session, member, programme), plan)
        for kind, gift in birthday_gifts(sources):
            refused = birthday_gift_rejection_reason(
                birthdays.get(member), today, given_this_year=kind in grants
            )
            if refused is not None:
                continue
            source = next(s.key for s in sources if s.kind == kind)
            key = f"{BIRTHDAY}:{member}:{today.year}:{kind}"
            reason = f"birthday gift {today.year} ({source})"
            if gift.points:
                holdings.gift_points(
                    session,
                    member,
                    gift.points,
                    key=f"{key}:points",
                    reason=reason,
                    source="birthday",
                    actor=actor,
                    programme=active,
                    now=now,
                    time_zone=time_zone,
                )
            coupons = issue_gift(
                session,
                member,
                gift,
                key=key,
                reason=reason,
                actor=actor,
                source="birthday",
                time_zone=time_zone,
                now=now,
                programme=active,
            )
            coupon_ids = tuple(coupon.id for coupon in coupons)
            session.add(
                BenefitGrant(
                    person_id=member,
                    benefit=BIRTHDAY,
                    period=str(today.year),
                    source=source,
                    detail={"points": gift.points, "coupon_ids": list(coupon_ids)},
                    idempotency_key=key,
                    granted_at=now,
                    actor=actor,
                )
            )
            given.append(GiftGiven(member, source, gift.points, coupon_ids))
    session.flush()
    emit_many(
        session,
        [
            DomainEvent(
                topic="benefit.birthday_gift",
                payload={"source": gift.source, "points": gift.points, "coupon_ids": list(gift.coupon_ids)},
                key=f"benefit:{BIRTHDAY}:{gift.person_id}:{today.year}:{gift.source.partition(':')[0]}",
                occurred_at=now,
                person_id=gift.person_id,
            )
            for gift in given
        ],
        now=now,
    )
    return given
