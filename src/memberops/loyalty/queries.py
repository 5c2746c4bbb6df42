"""Read models of the ledger: a member's points, their history, their tier and what it takes to move."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.loyalty.growth import known_tier, lowest_tier, window_growth_of
from memberops.loyalty.tiers import (
    downgrade_warning,
    growth_to_next_tier,
    growth_window,
    next_downgrade_date,
)
from memberops.loyalty.versions import active_programme
from memberops.models import GrowthEntry, MemberTier, PointsAccount, PointsEntry, PointsLot, TierChangeRecord

#: How far ahead "points expiring" looks by default.
EXPIRING_WINDOW = timedelta(days=90)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def points_summary(
    session: Session, person_id: int, *, now: datetime, within: timedelta = EXPIRING_WINDOW
) -> dict[str, Any]:
    """Return a member's balance, what they can spend now, any debt, and lots expiring soon.

    ``expiring`` lists, per expiry instant within ``within``, the points that will expire then.
    """
    account = session.get(PointsAccount, person_id)
    lots = session.execute(
        select(PointsLot.remaining, PointsLot.expires_at).where(
            PointsLot.person_id == person_id, PointsLot.remaining > 0
        )
    ).all()
    balance = account.balance if account else 0
    expired = sum(int(left) for left, expires in lots if expires is not None and expires <= now)
    by_expiry: defaultdict[datetime, int] = defaultdict(int)
    for left, expires in lots:
        if expires is not None and now < expires <= now + within:
            by_expiry[expires] += int(left)
    return {
        "person_id": person_id,
        "balance": balance,
        "spendable": balance - expired,
        "debt": account.debt if account else 0,
        "expiring": [
            {"expires_at": moment.isoformat(), "points": points}
            for moment, points in sorted(by_expiry.items())
        ],
        "expiring_within_days": within.days,
    }


def points_history(
    session: Session, person_id: int, *, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Return a member's entries, newest first (page with ``before_id``)."""
    query = select(PointsEntry).where(PointsEntry.person_id == person_id)
    if before_id is not None:
        query = query.where(PointsEntry.id < before_id)
    return [
        {
            "entry_id": entry.id,
            "kind": entry.kind,
            "delta": entry.delta,
            "balance_after": entry.balance_after,
            "debt_delta": entry.debt_delta,
            "reason": entry.reason,
            "source": entry.source,
            "source_ref": entry.source_ref,
            "actor": entry.actor,
            "idempotency_key": entry.idempotency_key,
            "programme_version_id": entry.programme_version_id,
            "reverses_entry_id": entry.reverses_entry_id,
            "created_at": entry.created_at.isoformat(),
        }
        for entry in session.scalars(query.order_by(PointsEntry.id.desc()).limit(limit))
    ]


def entry_view(entry: PointsEntry) -> dict[str, Any]:
    """Return one entry as the API and CLI show it."""
    return {
        "entry_id": entry.id,
        "person_id": entry.person_id,
        "kind": entry.kind,
        "delta": entry.delta,
        "balance_after": entry.balance_after,
        "reason": entry.reason,
        "source": entry.source,
        "actor": entry.actor,
        "idempotency_key": entry.idempotency_key,
        "programme_version_id": entry.programme_version_id,
        "created_at": entry.created_at.isoformat(),
    }


def tier_summary(session: Session, person_id: int, *, now: datetime, time_zone: ZoneInfo) -> dict[str, Any]:
    """Return a member's tier, growth, "N to next tier" and "will downgrade on D unless N more growth".

    Growth counts within the rolling window ending tomorrow (business date); the warning looks at
    the next downgrade date and the growth already earned that will still be in its window.
    """
    active = active_programme(session)
    row = session.get(MemberTier, person_id)
    total = row.growth_total if row else 0
    history = [
        {
            "from_tier": change.from_tier,
            "to_tier": change.to_tier,
            "direction": change.direction,
            "reason": change.reason,
            "growth": change.growth,
            "changed_at": change.changed_at.isoformat(),
        }
        for change in session.scalars(
            select(TierChangeRecord)
            .where(TierChangeRecord.person_id == person_id)
            .order_by(TierChangeRecord.id.desc())
            .limit(20)
        )
    ]
    if active is None:
        return {
            "person_id": person_id,
            "tier": row.tier if row else None,
            "growth_total": total,
            "programme": None,
            "history": history,
        }
    programme = active.programme
    tier = known_tier(programme, row.tier) if row else lowest_tier(programme)
    floor = row.floor if row else None
    today = now.astimezone(time_zone).date()
    start, end = growth_window(programme.evaluation, today + timedelta(days=1), time_zone)
    growth = window_growth_of(session, [person_id], start, end)[person_id]
    upcoming = growth_to_next_tier(programme, tier, growth)
    warning = None
    next_on = row.next_evaluation_on if row else None
    if programme.rank(tier) > 0 and programme.evaluation.max_tiers_down > 0:
        on = next_on or next_downgrade_date(programme.evaluation, today + timedelta(days=1))
        kept_start, _ = growth_window(programme.evaluation, on, time_zone)
        kept = window_growth_of(session, [person_id], kept_start, end)[person_id]
        found = downgrade_warning(programme, tier, kept, on=on, floor=floor)
        if found is not None:
            warning = {
                "on": found.on.isoformat(),
                "to_tier": found.to_tier,
                "growth_needed": found.growth_needed,
            }
    return {
        "person_id": person_id,
        "tier": tier,
        "tier_name": programme.tier(tier).name,
        "floor": floor,
        "since": _iso(row.since) if row else None,
        "growth_total": total,
        "window_growth": growth,
        "window": {"from": start.isoformat(), "to": end.isoformat()},
        "next_tier": (
            {"tier": upcoming.tier, "growth_needed": upcoming.growth_needed} if upcoming is not None else None
        ),
        "downgrade_warning": warning,
        "next_evaluation_on": next_on.isoformat() if next_on else None,
        "programme": {"version_id": active.version_id, "version": active.version},
        "history": history,
    }


def growth_history(session: Session, person_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """Return a member's growth entries, newest first."""
    return [
        {
            "entry_id": entry.id,
            "kind": entry.kind,
            "delta": entry.delta,
            "reason": entry.reason,
            "source": entry.source,
            "occurred_at": entry.occurred_at.isoformat(),
        }
        for entry in session.scalars(
            select(GrowthEntry)
            .where(GrowthEntry.person_id == person_id)
            .order_by(GrowthEntry.id.desc())
            .limit(limit)
        )
    ]
