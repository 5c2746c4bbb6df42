"""Paid plans (付费会员): terms, renewal, grace, status on a date, refunds.

Pure rules (no I/O). Every purchase or renewal is a *term* ``[starts_at, ends_at)``. Decisions
(ADR 0007):

- **Term**: a term bought at an instant ends when the same business day ``months`` later begins in
  the brand's time zone (bought 15 March at 10:00 for 6 months: valid to the end of 14 September),
  clamped to the month's last day. The member gets the rest of the day of purchase for free.
- **Renewal** extends from the later of now and the current end, so paying early loses nothing.
  Within the plan's ``grace_days`` after the end, a renewal still continues from the old end date
  (the term stays unbroken, as ``PaidPlan`` documents). After the grace it is a new purchase
  starting now. A member may renew into another plan; the new term follows the current one.
- **Status** on an instant: ``active`` while a term covers it, ``expiring`` in the last
  ``EXPIRING_DAYS`` days of the continuous run of terms, ``expired`` once the run has ended (with
  ``in_grace`` while a renewal can still continue it), ``none`` for someone who never held one.
  Benefits come with ``active`` and ``expiring`` only.
- **Refund**: only the latest term that is not refunded can be refunded (a renewal before the term
  it follows). A term not yet started, or refunded within ``FULL_REFUND_DAYS`` of being paid, is
  refunded in full; otherwise pro rata to the whole business days left, the day of the refund
  counted as used, rounded down to the fen. A term that has ended gets nothing back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from memberops.loyalty.programme import Programme
from memberops.loyalty.tiers import add_months

PlanStatusName = Literal["active", "expiring", "expired", "none"]
PLAN_STATUSES: tuple[PlanStatusName, ...] = ("active", "expiring", "expired", "none")
TermKind = Literal["purchase", "renewal"]
#: A plan is ``expiring`` (and its holder gets ``plan.expiring``) this many days before it ends.
EXPIRING_DAYS = 7
#: A term refunded within this many days of being paid is refunded in full (七天无理由).
FULL_REFUND_DAYS = 7


@dataclass(frozen=True)
class PlanTerm:
    """One bought term of a plan; ``refunded`` terms no longer count for anything."""

    term_id: int
    plan_code: str
    starts_at: datetime
    ends_at: datetime
    price_fen: int
    paid_at: datetime
    refunded: bool = False


@dataclass(frozen=True)
class NewTerm:
    """The term a purchase or renewal buys: ``renewal`` when it continues the member's current run."""

    kind: TermKind
    starts_at: datetime
    ends_at: datetime
    follows_term_id: int | None


@dataclass(frozen=True)
class PlanStatus:
    """A member's plan on an instant.

    ``plan_code`` is the plan of the term covering the instant (or of the last one, when expired);
    ``ends_at`` the end of the continuous run of terms; ``grace_ends_at`` the last moment a renewal
    continues the run.
    """

    status: PlanStatusName
    plan_code: str | None = None
    ends_at: datetime | None = None
    grace_ends_at: datetime | None = None
    in_grace: bool = False

    @property
    def benefits_plan(self) -> str | None:
        """The plan whose benefits the member holds now (None when expired or never bought)."""
        return self.plan_code if self.status in ("active", "expiring") else None


@dataclass(frozen=True)
class PlanRefund:
    """What a refund of one term pays back, and by which rule."""

    amount_fen: int
    rule: Literal["not_started", "full", "pro_rata"]
    days_total: int
    days_left: int


def term_end(starts_at: datetime, months: int, time_zone: ZoneInfo) -> datetime:
    """Return when a term of ``months`` starting at ``starts_at`` ends (exclusive)."""
    start_day = starts_at.astimezone(time_zone).date()
    return _start_of(add_months(start_day, months), time_zone)


def grace_end(ends_at: datetime, grace_days: int, time_zone: ZoneInfo) -> datetime:
    """Return the end of the grace after a run ending at ``ends_at``: ``grace_days`` business days later."""
    return _start_of(ends_at.astimezone(time_zone).date() + timedelta(days=grace_days), time_zone)


def live_terms(terms: Sequence[PlanTerm]) -> list[PlanTerm]:
    """Return the terms not refunded, by start (then id)."""
    return sorted((term for term in terms if not term.refunded), key=lambda t: (t.starts_at, t.term_id))


def next_term(
    programme: Programme, plan_code: str, terms: Sequence[PlanTerm], now: datetime, time_zone: ZoneInfo
) -> NewTerm:
    """Return the term a purchase of ``plan_code`` at ``now`` buys, given the member's ``terms``."""
    months = programme.paid_plan(plan_code).months
    live = live_terms(terms)
    if live:
        last = max(live, key=lambda t: (t.ends_at, t.term_id))
        if now < grace_end(last.ends_at, _grace_days(programme, last.plan_code), time_zone):
            # Before the end: from the end. In the grace: from the old end too, so the run is unbroken.
            start = last.ends_at
            return NewTerm("renewal", start, term_end(start, months, time_zone), last.term_id)
    return NewTerm("purchase", now, term_end(now, months, time_zone), None)


def plan_status(
    programme: Programme,
    terms: Sequence[PlanTerm],
    at: datetime,
    time_zone: ZoneInfo,
    *,
    expiring_days: int = EXPIRING_DAYS,
) -> PlanStatus:
    """Return the member's plan status at ``at`` (see the module docstring)."""
    live = live_terms(terms)
    covering = [term for term in live if term.starts_at <= at < term.ends_at]
    if covering:
        current = covering[-1]
        end, last = current.ends_at, current
        for term in live:
            if term.starts_at <= end < term.ends_at:
                end, last = term.ends_at, term
        name: PlanStatusName = "expiring" if end - at <= timedelta(days=expiring_days) else "active"
        grace = grace_end(end, _grace_days(programme, last.plan_code), time_zone)
        return PlanStatus(name, current.plan_code, end, grace, in_grace=False)
    ended = [term for term in live if term.ends_at <= at]
    if not ended:
        return PlanStatus("none")
    last = max(ended, key=lambda t: (t.ends_at, t.term_id))
    grace = grace_end(last.ends_at, _grace_days(programme, last.plan_code), time_zone)
    return PlanStatus("expired", last.plan_code, last.ends_at, grace, in_grace=at < grace)


def renewal_rejection_reason(status: PlanStatus) -> str | None:
    """Say why a *renewal* is refused (nothing to renew), or None; buying a plan needs no history."""
    if status.status == "none":
        return "the member has no paid plan to renew: buy one instead"
    return None


def refund_rejection_reason(term: PlanTerm, terms: Sequence[PlanTerm], at: datetime) -> str | None:
    """Say why ``term`` cannot be refunded at ``at``, or None."""
    if term.refunded:
        return f"term {term.term_id} is already refunded"
    if at >= term.ends_at:
        return f"term {term.term_id} ended at {term.ends_at.isoformat()}; there is nothing left to refund"
    live = live_terms(terms)
    later = [other for other in live if (other.starts_at, other.term_id) > (term.starts_at, term.term_id)]
    if later:
        return f"term {later[-1].term_id} follows this one: refund it first"
    return None


def refund_amount(
    term: PlanTerm, at: datetime, time_zone: ZoneInfo, *, full_refund_days: int = FULL_REFUND_DAYS
) -> PlanRefund:
    """Return what refunding ``term`` at ``at`` pays back (the checks are ``refund_rejection_reason``'s)."""
    first_day = term.starts_at.astimezone(time_zone).date()
    end_day = term.ends_at.astimezone(time_zone).date()
    days_total = max(1, (end_day - first_day).days)
    if at < term.starts_at:
        return PlanRefund(term.price_fen, "not_started", days_total, days_total)
    if at < term.paid_at + timedelta(days=full_refund_days):
        return PlanRefund(term.price_fen, "full", days_total, days_total)
    today = at.astimezone(time_zone).date()
    days_left = max(0, min(days_total, (end_day - today).days - 1))
    return PlanRefund(term.price_fen * days_left // days_total, "pro_rata", days_total, days_left)


def expiring_notice_due(status: PlanStatus) -> bool:
    """Return whether the member should get ``plan.expiring`` (their run ends within the window)."""
    return status.status == "expiring"


def _grace_days(programme: Programme, plan_code: str) -> int:
    """The plan's grace days; a plan no longer in the programme keeps none."""
    for plan in programme.paid_plans:
        if plan.code == plan_code:
            return plan.grace_days
    return 0


def _start_of(day: date, time_zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=time_zone).astimezone(UTC)
