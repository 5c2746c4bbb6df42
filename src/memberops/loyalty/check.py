"""``check``: prove every cache of the ledger equals its entries and no invariant is broken.

Set-based queries, one per invariant, each returning only the rows that break it, so a healthy
ledger of millions of entries costs a few aggregate scans and an empty answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from memberops.loyalty.versions import all_versions
from memberops.models import (
    GrowthEntry,
    MemberTier,
    OrderEarning,
    PointsAccount,
    PointsAllocation,
    PointsEntry,
    PointsLot,
    RefundTakeBack,
)

#: At most this many problems of one kind are listed (the count says how many there were).
LISTED = 20


@dataclass(frozen=True)
class Problem:
    """One broken invariant: which (``balance``, ``lot``…), whose, and what."""

    invariant: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant} {self.subject}: {self.message}"


def check(session: Session) -> list[Problem]:
    """Return every broken invariant of the loyalty ledger (empty when all is well)."""
    problems: list[Problem] = []
    problems += _accounts_equal_entries(session)
    problems += _lots_equal_allocations(session)
    problems += _lots_back_balances(session)
    problems += _negatives_allowed(session)
    problems += _growth_equals_entries(session)
    problems += _take_backs_within_earnings(session)
    return problems


def _accounts_equal_entries(session: Session) -> list[Problem]:
    sums = (
        select(
            PointsEntry.person_id.label("person_id"),
            func.sum(PointsEntry.delta).label("balance"),
            func.sum(PointsEntry.debt_delta).label("debt"),
        )
        .group_by(PointsEntry.person_id)
        .subquery()
    )
    found = [
        Problem(
            "balance",
            f"person {person_id}",
            f"cached balance {balance} and debt {debt}, but the entries add up to {summed} and {owed}",
        )
        for person_id, balance, debt, summed, owed in session.execute(
            select(
                PointsAccount.person_id,
                PointsAccount.balance,
                PointsAccount.debt,
                func.coalesce(sums.c.balance, 0),
                func.coalesce(sums.c.debt, 0),
            )
            .outerjoin(sums, sums.c.person_id == PointsAccount.person_id)
            .where(
                or_(
                    PointsAccount.balance != func.coalesce(sums.c.balance, 0),
                    PointsAccount.debt != func.coalesce(sums.c.debt, 0),
                )
            )
            .limit(LISTED)
        )
    ]
    found += [
        Problem("balance", f"person {person_id}", "has entries but no account")
        for (person_id,) in session.execute(
            select(sums.c.person_id)
            .outerjoin(PointsAccount, PointsAccount.person_id == sums.c.person_id)
            .where(PointsAccount.person_id.is_(None))
            .limit(LISTED)
        )
    ]
    found += [
        Problem("debt", f"person {person_id}", f"a claw-back debt of {debt} below zero")
        for person_id, debt in session.execute(
            select(PointsAccount.person_id, PointsAccount.debt).where(PointsAccount.debt < 0).limit(LISTED)
        )
    ]
    last = (
        select(PointsEntry.person_id.label("person_id"), func.max(PointsEntry.id).label("entry_id"))
        .group_by(PointsEntry.person_id)
        .subquery()
    )
    found += [
        Problem(
            "balance",
            f"person {person_id}",
            f"the last entry says the balance became {after}, the account says {balance}",
        )
        for person_id, after, balance in session.execute(
            select(PointsAccount.person_id, PointsEntry.balance_after, PointsAccount.balance)
            .join(last, last.c.person_id == PointsAccount.person_id)
            .join(PointsEntry, PointsEntry.id == last.c.entry_id)
            .where(PointsEntry.balance_after != PointsAccount.balance)
            .limit(LISTED)
        )
    ]
    return found


def _lots_equal_allocations(session: Session) -> list[Problem]:
    drawn = (
        select(PointsAllocation.lot_id.label("lot_id"), func.sum(PointsAllocation.amount).label("drawn"))
        .group_by(PointsAllocation.lot_id)
        .subquery()
    )
    return [
        Problem(
            "lot",
            f"lot {lot_id}",
            f"amount {amount}, remaining {remaining}, but its allocations drew {taken}",
        )
        for lot_id, amount, remaining, taken in session.execute(
            select(PointsLot.id, PointsLot.amount, PointsLot.remaining, func.coalesce(drawn.c.drawn, 0))
            .outerjoin(drawn, drawn.c.lot_id == PointsLot.id)
            .where(
                or_(
                    PointsLot.remaining != PointsLot.amount - func.coalesce(drawn.c.drawn, 0),
                    PointsLot.remaining < 0,
                    PointsLot.remaining > PointsLot.amount,
                )
            )
            .limit(LISTED)
        )
    ]


def _lots_back_balances(session: Session) -> list[Problem]:
    """The open lots of a member hold exactly their balance (nothing, when it is below zero)."""
    held = (
        select(PointsLot.person_id.label("person_id"), func.sum(PointsLot.remaining).label("held"))
        .group_by(PointsLot.person_id)
        .subquery()
    )
    backed = func.coalesce(held.c.held, 0)
    expected = case((PointsAccount.balance > 0, PointsAccount.balance), else_=0)
    return [
        Problem("lots", f"person {person_id}", f"lots hold {points} points, the balance is {balance}")
        for person_id, points, balance in session.execute(
            select(PointsAccount.person_id, backed, PointsAccount.balance)
            .outerjoin(held, held.c.person_id == PointsAccount.person_id)
            .where(backed != expected)
            .limit(LISTED)
        )
    ]


def _negatives_allowed(session: Session) -> list[Problem]:
    """A balance goes below zero only by a refund under a ``negative_balance`` programme.

    One more movement may leave it there: points restored into a lot that expired meanwhile come
    back and expire again at once (``restore_points``), and when a refund had already taken the
    balance below zero, that ``expire`` ends where the balance stood before the ``restore``: it
    removes only what the restore added, so it opens no new hole.
    """
    allowing = [
        version.version_id
        for version in all_versions(session)
        if version.programme.refunds.shortfall == "negative_balance"
    ]
    allowed = and_(PointsEntry.kind == "refund_take_back", PointsEntry.programme_version_id.in_(allowing))
    previous, earlier = aliased(PointsEntry), aliased(PointsEntry)
    before_it = (
        select(func.max(earlier.id))
        .where(earlier.person_id == PointsEntry.person_id, earlier.id < PointsEntry.id)
        .correlate(PointsEntry)
        .scalar_subquery()
    )
    restored = (
        select(previous.id)
        .where(
            previous.id == before_it,
            previous.kind == "restore",
            PointsEntry.balance_after >= previous.balance_after - previous.delta,
        )
        .exists()
    )
    expired_after_restore = and_(PointsEntry.kind == "expire", restored)
    return [
        Problem(
            "negative",
            f"entry {entry_id}",
            f"{kind} of {delta} took person {person_id}'s balance to {after}, which the policy forbids",
        )
        for entry_id, person_id, kind, delta, after in session.execute(
            select(
                PointsEntry.id,
                PointsEntry.person_id,
                PointsEntry.kind,
                PointsEntry.delta,
                PointsEntry.balance_after,
            )
            .where(PointsEntry.balance_after < 0, PointsEntry.delta < 0, ~allowed, ~expired_after_restore)
            .limit(LISTED)
        )
    ]


def _growth_equals_entries(session: Session) -> list[Problem]:
    sums = (
        select(GrowthEntry.person_id.label("person_id"), func.sum(GrowthEntry.delta).label("growth"))
        .group_by(GrowthEntry.person_id)
        .subquery()
    )
    found = [
        Problem("growth", f"person {person_id}", f"cached growth {cached}, the entries add up to {summed}")
        for person_id, cached, summed in session.execute(
            select(MemberTier.person_id, MemberTier.growth_total, func.coalesce(sums.c.growth, 0))
            .outerjoin(sums, sums.c.person_id == MemberTier.person_id)
            .where(MemberTier.growth_total != func.coalesce(sums.c.growth, 0))
            .limit(LISTED)
        )
    ]
    found += [
        Problem("growth", f"person {person_id}", "has growth entries but no tier row")
        for (person_id,) in session.execute(
            select(sums.c.person_id)
            .outerjoin(MemberTier, MemberTier.person_id == sums.c.person_id)
            .where(MemberTier.person_id.is_(None))
            .limit(LISTED)
        )
    ]
    return found


def _take_backs_within_earnings(session: Session) -> list[Problem]:
    """Refunds never take back more than the order earned, and the order's totals add up."""
    taken = (
        select(
            RefundTakeBack.order_id.label("order_id"),
            func.sum(RefundTakeBack.points).label("points"),
            func.sum(RefundTakeBack.growth).label("growth"),
        )
        .group_by(RefundTakeBack.order_id)
        .subquery()
    )
    return [
        Problem(
            "refund",
            f"order {order_id}",
            f"earned {points} points and {growth} growth; recorded take-backs {back_points} and "
            f"{back_growth}; refunds add up to {sum_points} and {sum_growth}",
        )
        for order_id, points, growth, back_points, back_growth, sum_points, sum_growth in session.execute(
            select(
                OrderEarning.order_id,
                OrderEarning.points,
                OrderEarning.growth,
                OrderEarning.points_taken_back,
                OrderEarning.growth_taken_back,
                func.coalesce(taken.c.points, 0),
                func.coalesce(taken.c.growth, 0),
            )
            .outerjoin(taken, taken.c.order_id == OrderEarning.order_id)
            .where(
                or_(
                    OrderEarning.points_taken_back > OrderEarning.points,
                    OrderEarning.growth_taken_back > OrderEarning.growth,
                    OrderEarning.points_taken_back != func.coalesce(taken.c.points, 0),
                    OrderEarning.growth_taken_back != func.coalesce(taken.c.growth, 0),
                )
            )
            .limit(LISTED)
        )
    ]
