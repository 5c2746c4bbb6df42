"""Paid plans (付费会员): buy, renew, refund, expire, and the status segments and journeys read.

A member's terms are locked (advisory lock on the member, then ``FOR UPDATE`` on the rows) before
a purchase or refund reads them, so two renewals at once make two consecutive terms, never two
overlapping ones. The welcome gift comes with a purchase that starts a new run of terms, not with
a renewal; a refund voids the gift's unused coupons and takes back its points still spendable
(what was already used is not charged). Rules and dates: ``loyalty.plans``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.identity.repository import chunks
from memberops.kit.clock import utc_now
from memberops.kit.db import lock_keys
from memberops.kit.errors import Conflict, ValidationFailed
from memberops.loyalty import holdings
from memberops.loyalty.coupon_service import issue_gift, void_locked
from memberops.loyalty.plans import (
    EXPIRING_DAYS,
    PlanRefund,
    PlanStatus,
    next_term,
    plan_status,
    refund_amount,
    refund_rejection_reason,
    renewal_rejection_reason,
)
from memberops.loyalty.points import adjust_points
from memberops.loyalty.programme import Programme
from memberops.models import Coupon, PaidPlanTerm, PointsEntry


class PlanRejected(Conflict):
    """The purchase, renewal or refund is not allowed now."""

    code = "plan_rejected"


@dataclass(frozen=True)
class TermOutcome:
    """A term bought or refunded, whether this call did it, and the member's status afterwards."""

    term: PaidPlanTerm
    created: bool
    status: PlanStatus
    refund: PlanRefund | None = None


def _gift_key(term_id: int) -> str:
    return f"plan:{term_id}:welcome"


def buy_plan(
    session: Session,
    person_id: int,
    plan_code: str,
    *,
    key: str,
    actor: str,
    time_zone: ZoneInfo,
    renewal_only: bool = False,
    payment_ref: str | None = None,
    now: datetime | None = None,
) -> TermOutcome:
    """Buy (or, with ``renewal_only``, renew) ``plan_code`` for the member; replaying ``key`` buys nothing.

    The new term follows the current run when there is one (up to the end of its grace), else
    starts now (``loyalty.plans.next_term``).
    """
    holdings.check_key(key)
    if payment_ref is not None and not 0 < len(payment_ref) <= 64:
        raise ValidationFailed("a payment reference has 1 to 64 characters")
    now = now or utc_now()
    member = holdings.live_person(session, person_id)
    lock_keys(session, [f"plan:person:{member}", f"plan:key:{key}"])
    active = holdings.active(session)
    programme = active.programme
    person_ids = holdings.person_ids_of(session, member)
    previous = session.scalars(select(PaidPlanTerm).where(PaidPlanTerm.idempotency_key == key)).first()
    if previous is not None:
        if previous.plan_code != plan_code or previous.person_id not in person_ids:
            raise Conflict(
                f"idempotency key {key!r} was used for plan term {previous.id}", term_id=previous.id
            )
        return TermOutcome(previous, False, _status(session, person_ids, programme, now, time_zone))
    plan = programme.paid_plan(plan_code)
    rows = holdings.terms_for_update(session, person_ids)
    terms = holdings.as_terms(rows)
    before = plan_status(programme, terms, now, time_zone)
    if renewal_only:
        refused = renewal_rejection_reason(before)
        if refused is not None:
            raise PlanRejected(refused)
    new = next_term(programme, plan.code, terms, now, time_zone)
    term = PaidPlanTerm(
        person_id=member,
        plan_code=plan.code,
        programme_version_id=active.version_id,
        kind=new.kind,
        follows_id=new.follows_term_id,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        price_fen=plan.price_fen,
        paid_at=now,
        payment_ref=payment_ref,
        status="active",
        actor=actor,
        idempotency_key=key,
        refund_fen=None,
        refunded_at=None,
        refund_reason=None,
        refund_key=None,
        expiring_notified_at=None,
        created_at=now,
    )
    session.add(term)
    session.flush()
    gift = plan.welcome_gift
    if new.kind == "purchase" and gift is not None:
        reason = f"welcome gift of paid plan {plan.code}"
        if gift.points:
            holdings.gift_points(
                session,
                member,
                gift.points,
                key=f"{_gift_key(term.id)}:points",
                reason=reason,
                source="paid_plan",
                source_ref=str(term.id),
                actor=actor,
                programme=active,
                now=now,
                time_zone=time_zone,
            )
        issue_gift(
            session,
            member,
            gift,
            key=_gift_key(term.id),
            reason=reason,
            actor=actor,
            source="plan",
            time_zone=time_zone,
            now=now,
            programme=active,
        )
    after = _status(session, person_ids, programme, now, time_zone)
    emit_many(
        session,
        [
            DomainEvent(
                topic="plan.renewed" if new.kind == "renewal" else "plan.purchased",
                payload={
                    "term_id": term.id,
                    "plan": plan.code,
                    "kind": new.kind,
                    "starts_at": term.starts_at.isoformat(),
                    "ends_at": term.ends_at.isoformat(),
                    "price_fen": term.price_fen,
                    "status_before": before.status,
                },
                key=f"plan:bought:{term.id}",
                occurred_at=now,
                person_id=member,
            )
        ],
        now=now,
    )
    return TermOutcome(term, True, after)


def refund_plan(
    session: Session,
    person_id: int,
    *,
    key: str,
    reason: str,
    actor: str,
    time_zone: ZoneInfo,
    term_id: int | None = None,
    now: datetime | None = None,
) -> TermOutcome:
    """Refund the member's latest term (or ``term_id``): in full or pro rata (``loyalty.plans``)."""
    holdings.check_key(key)
    reason = holdings.check_reason(reason)
    now = now or utc_now()
    member = holdings.live_person(session, person_id)
    lock_keys(session, [f"plan:person:{member}"])
    active = holdings.active(session)
    person_ids = holdings.person_ids_of(session, member)
    rows = holdings.terms_for_update(session, person_ids)
    replay = next((row for row in rows if row.refund_key == key), None)
    if replay is not None:
        return TermOutcome(replay, False, _status(session, person_ids, active.programme, now, time_zone))
    terms = holdings.as_terms(rows)
    live = [term for term in terms if not term.refunded]
    if term_id is None:
        if not live:
            raise PlanRejected("the member has no paid plan term to refund")
        target = max(live, key=lambda term: (term.starts_at, term.term_id))
    else:
        found = [term for term in terms if term.term_id == term_id]
        if not found:
            raise PlanRejected(f"term {term_id} is not one of this member's plan terms")
        target = found[0]
    refused = refund_rejection_reason(target, terms, now)
    if refused is not None:
        raise PlanRejected(refused)
    refund = refund_amount(target, now, time_zone)
    row = next(row for row in rows if row.id == target.term_id)
    row.status, row.refund_fen, row.refunded_at = "refunded", refund.amount_fen, now
    row.refund_reason, row.refund_key = reason, key
    _take_back_welcome_gift(session, row, member, actor=actor, now=now, time_zone=time_zone)
    session.flush()
    emit_many(
        session,
        [
            DomainEvent(
                topic="plan.refunded",
                payload={
                    "term_id": row.id,
                    "plan": row.plan_code,
                    "refund_fen": refund.amount_fen,
                    "rule": refund.rule,
                    "days_left": refund.days_left,
                    "days_total": refund.days_total,
                },
                key=f"plan:refunded:{row.id}",
                occurred_at=now,
                person_id=member,
            )
        ],
        now=now,
    )
    return TermOutcome(row, True, _status(session, person_ids, active.programme, now, time_zone), refund)


def _take_back_welcome_gift(
    session: Session, term: PaidPlanTerm, member: int, *, actor: str, now: datetime, time_zone: ZoneInfo
) -> None:
    prefix = _gift_key(term.id)
    gift_coupons = session.scalars(
        select(Coupon.id).where(
            Coupon.person_id == term.person_id,
            Coupon.source == "plan",
            Coupon.issue_key.startswith(f"{prefix}:", autoescape=True),
        )
    ).all()
    coupons = holdings.coupons_for_update(session, list(gift_coupons))
    void_locked(session, coupons, reason=f"plan term {term.id} refunded", actor=actor, now=now)
    gift = session.scalars(
        select(PointsEntry).where(PointsEntry.idempotency_key == f"{prefix}:points")
    ).first()
    if gift is None:
        return
    take = min(gift.delta, holdings.spendable_points(session, member, now))
    if take > 0:
        adjust_points(
            session,
            member,
            -take,
            reason=f"welcome gift of plan term {term.id} taken back with its refund",
            actor=actor,
            key=f"{prefix}:points:taken_back",
            time_zone=time_zone,
            now=now,
        )


def _status(
    session: Session, person_ids: Sequence[int], programme: Programme, now: datetime, time_zone: ZoneInfo
) -> PlanStatus:
    return plan_status(programme, holdings.as_terms(holdings.terms_of(session, person_ids)), now, time_zone)


def plan_status_of(
    session: Session, person_id: int, *, time_zone: ZoneInfo, at: datetime | None = None
) -> PlanStatus:
    """Return the member's plan status at ``at`` (default now)."""
    member = holdings.live_person(session, person_id)
    programme = holdings.active(session).programme
    return holdings.member_plan_status(session, member, programme, at or utc_now(), time_zone)


def plan_statuses(
    session: Session, person_ids: Sequence[int], *, time_zone: ZoneInfo, at: datetime | None = None
) -> dict[int, PlanStatus]:
    """Return the plan status of many persons at once (for segments and journeys); ``none`` for most."""
    at = at or utc_now()
    programme = holdings.active(session).programme
    by_person: dict[int, list[PaidPlanTerm]] = {}
    for part in chunks(sorted(set(person_ids))):
        for row in session.scalars(select(PaidPlanTerm).where(PaidPlanTerm.person_id.in_(part))):
            by_person.setdefault(row.person_id, []).append(row)
    return {
        person_id: plan_status(programme, holdings.as_terms(by_person.get(person_id, [])), at, time_zone)
        for person_id in sorted(set(person_ids))
    }


@dataclass(frozen=True)
class PlanExpiryReport:
    """What one call of the plan job did: members looked at (the last one's id, to go on after it),
    ``plan.expiring`` notices and ``plan.expired`` events."""

    notified: int
    expired: int
    members: int = 0
    last_person_id: int = 0


def expire_plans(
    session: Session, *, time_zone: ZoneInfo, now: datetime | None = None, after: int = 0, limit: int = 200
) -> PlanExpiryReport:
    """Send ``plan.expiring`` once per run of terms ending within ``EXPIRING_DAYS`` days, and mark
    ended runs ``expired`` with ``plan.expired`` (a term ending inside a continuing run is marked
    quietly). Run it daily: call it with ``after`` = the last ``last_person_id`` until ``members``
    is 0; each call looks at up to ``limit`` members (one lock each)."""
    now = now or utc_now()
    programme = holdings.active(session).programme
    members = session.scalars(
        select(PaidPlanTerm.person_id)
        .where(
            PaidPlanTerm.status == "active",
            PaidPlanTerm.ends_at <= now + timedelta(days=EXPIRING_DAYS),
            PaidPlanTerm.person_id > after,
        )
        .group_by(PaidPlanTerm.person_id)
        .order_by(PaidPlanTerm.person_id)
        .limit(limit)
    ).all()
    if members:
        lock_keys(session, [f"plan:person:{member}" for member in members])
    events: list[DomainEvent] = []
    notified = expired = 0
    for member in members:
        rows = holdings.terms_for_update(session, [member])
        status = plan_status(programme, holdings.as_terms(rows), now, time_zone)
        live = [row for row in rows if row.status != "refunded"]
        if status.status == "expiring" and status.ends_at is not None:
            last = max((row for row in live if row.ends_at == status.ends_at), key=lambda row: row.id)
            if last.expiring_notified_at is None:
                last.expiring_notified_at = now
                notified += 1
                events.append(_plan_event("plan.expiring", member, status, now))
        for row in live:
            if row.status == "active" and row.ends_at <= now:
                row.status = "expired"
        if status.status == "expired":
            expired += 1
            events.append(_plan_event("plan.expired", member, status, now))
    emit_many(session, events, now=now)
    return PlanExpiryReport(notified, expired, len(members), members[-1] if members else after)


def _plan_event(topic: str, member: int, status: PlanStatus, now: datetime) -> DomainEvent:
    assert status.ends_at is not None
    return DomainEvent(
        topic=topic,
        payload={
            "plan": status.plan_code,
            "status": status.status,
            "ends_at": status.ends_at.isoformat(),
            "grace_ends_at": status.grace_ends_at.isoformat() if status.grace_ends_at else None,
        },
        key=f"{topic}:{member}:{status.ends_at.isoformat()}",
        occurred_at=now,
        person_id=member,
    )
