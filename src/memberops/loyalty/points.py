"""Spending, restoring and adjusting a member's points: the use cases other services call.

Each one locks the member's account first, is idempotent on its key (a replay returns the first
entry and changes nothing; the key reused for a different change is a ``Conflict``), checks
before it plans, and writes only when every check passed, so a refused request writes nothing.
None of them commits.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.kit.clock import utc_now
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.loyalty import lots as lot_rules
from memberops.loyalty.ledger import (
    REASON_LENGTH,
    AccountState,
    IdempotencyConflict,
    InsufficientPoints,
    LedgerWriter,
    entry_by_key,
    replayed,
)
from memberops.loyalty.versions import active_programme
from memberops.models import PointsAllocation, PointsEntry

#: Longest idempotency key (the column's width).
KEY_LENGTH = 200


def _check_key(key: str) -> None:
    if not key or len(key) > KEY_LENGTH:
        raise ValidationFailed(f"an idempotency key must be 1–{KEY_LENGTH} characters")


def _check_reason(reason: str) -> str:
    text = reason.strip()
    if not text or len(text) > REASON_LENGTH:
        raise ValidationFailed(f"a reason must be 1–{REASON_LENGTH} characters")
    return text


def _spendable(account: AccountState, now: datetime) -> int:
    """Points the member can spend at ``now``: the balance less what has expired but is still in lots."""
    expired = sum(
        item.amount
        for item in lot_rules.expired_remainders((lot.as_rule_lot() for lot in account.open_lots()), now)
    )
    return account.balance - expired


def _stored(session: Session, entry_id: int) -> PointsEntry:
    return session.get_one(PointsEntry, entry_id)


def spend_points(
    session: Session,
    person_id: int,
    amount: int,
    *,
    key: str,
    reason: str,
    source: str,
    actor: str,
    source_ref: str | None = None,
    now: datetime | None = None,
) -> PointsEntry:
    """Spend ``amount`` points of ``person_id``, soonest-expiring lots first; return the entry.

    Raises ``InsufficientPoints`` (a ``Conflict``, code ``insufficient_points``) when the spendable
    balance is short, writing nothing. Lots past their expiry are expired in the same transaction.
    """
    _check_key(key)
    reason = _check_reason(reason)
    if amount <= 0:
        raise ValidationFailed(f"a redemption must be a whole number of points above zero, not {amount}")
    now = now or utc_now()
    writer = LedgerWriter(session, now)
    account = writer.lock([person_id])[person_id]
    previous = replayed(session, key, person_id=person_id, kind="spend", delta=-amount)
    if previous is not None:
        return previous
    writer.load_lots([person_id])
    rejection = lot_rules.redemption_rejection_reason(_spendable(account, now), amount)
    if rejection is not None:
        raise InsufficientPoints(rejection, person_id=person_id, asked=amount)
    active = active_programme(session)
    version_id = active.version_id if active else None
    writer.expire_due(account, programme_version_id=version_id, actor=actor)
    draws = lot_rules.draw((lot.as_rule_lot() for lot in account.open_lots()), amount, now=now)
    index = writer.debit(
        account,
        draws,
        kind="spend",
        key=key,
        reason=reason,
        source=source,
        source_ref=source_ref,
        actor=actor,
        programme_version_id=version_id,
        topic="points.spent",
        payload={"points": amount, "source": source, "source_ref": source_ref},
    )
    return _stored(session, writer.flush()[index])


def restore_points(
    session: Session,
    spend_key: str,
    *,
    key: str,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    points: int | None = None,
) -> PointsEntry:
    """Put back points the spend stored under ``spend_key`` drew, into the very lots they came from.

    ``points`` restores part of the spend (a partial refund of the order it paid for); by default
    all that is not restored yet. Several partial restores of one spend never add up to more than
    it: each lot gets back at most what the spend drew from it, the lots drawn last (the ones that
    expire latest) first, so a member keeps their points as long as the spend allowed.
    Points whose lot has expired since come back and expire again at once (an ``expire`` entry in
    the same transaction): the member ends up with what they would have had without the spend.
    Replaying ``key`` returns the first restore; a spend restored in full is a ``Conflict``.
    """
    _check_key(key)
    now = now or utc_now()
    spend = entry_by_key(session, spend_key)
    if spend is None or spend.kind != "spend":
        raise NotFound(f"no spend is stored under the key {spend_key!r}")
    if points is not None and points <= 0:
        raise ValidationFailed(f"restore a positive number of points, not {points}")
    writer = LedgerWriter(session, now)
    account = writer.lock([spend.person_id])[spend.person_id]
    previous = replayed(session, key, person_id=spend.person_id, kind="restore", delta=points)
    if previous is not None:
        if previous.reverses_entry_id != spend.id:
            raise IdempotencyConflict(
                f"idempotency key {key!r} restored another spend (entry {previous.reverses_entry_id})",
                entry_id=previous.id,
            )
        return previous
    drawn = session.execute(
        select(PointsAllocation.lot_id, PointsAllocation.amount)
        .where(PointsAllocation.entry_id == spend.id)
        .order_by(PointsAllocation.id)
    ).all()
    given_back: dict[int, int] = defaultdict(int)
    for lot_id, amount in session.execute(
        select(PointsAllocation.lot_id, PointsAllocation.amount)
        .join(PointsEntry, PointsEntry.id == PointsAllocation.entry_id)
        .where(PointsEntry.reverses_entry_id == spend.id, PointsEntry.kind == "restore")
    ):
        given_back[lot_id] += -amount  # a restore's allocations are negative draws
    left = -spend.delta - sum(given_back.values())
    if left == 0:
        raise Conflict(f"the spend {spend_key!r} was already restored in full", spend_entry_id=spend.id)
    if points is not None and points > left:
        raise Conflict(
            f"only {left} points of the spend {spend_key!r} are not restored yet, not {points}",
            spend_entry_id=spend.id,
            restorable=left,
        )
    wanted = left if points is None else points
    writer.load_lots([spend.person_id], lot_ids=[lot_id for lot_id, _ in drawn])
    assert account.lots is not None
    active = active_programme(session)
    version_id = active.version_id if active else None
    hole = max(0, -account.balance)
    index = writer.append(
        account,
        kind="restore",
        delta=wanted,
        key=key,
        reason=_check_reason(reason or f"restores spend {spend.id}"),
        source=spend.source,
        source_ref=spend.source_ref,
        actor=actor,
        programme_version_id=version_id,
        reverses_entry_id=spend.id,
        topic="points.restored",
        payload={"points": wanted, "spend_entry_id": spend.id},
    )
    restored = []
    for lot_id, amount in reversed(drawn):
        back = min(amount - given_back[lot_id], wanted)
        given_back[lot_id] += max(back, 0)
        if back <= 0:
            continue
        lot = account.lots[lot_id]
        writer.allocate(index, lot, -back)
        restored.append(lot)
        wanted -= back
        if wanted == 0:
            break
    # Expired points are gone even when they come back, so they cannot fill a refund hole either.
    writer.expire_due(account, programme_version_id=version_id, actor=actor)
    writer.repay(
        account,
        index,
        restored,
        hole=hole,
        key=key,
        source=spend.source,
        actor=actor,
        programme_version_id=version_id,
        source_ref=spend.source_ref,
    )
    return _stored(session, writer.flush()[index])


def adjust_points(
    session: Session,
    person_id: int,
    amount: int,
    *,
    reason: str,
    actor: str,
    key: str,
    time_zone: ZoneInfo,
    now: datetime | None = None,
) -> PointsEntry:
    """Add (``amount`` > 0) or remove points by hand, with a reason and the operator's name.

    Added points are a lot expiring under the active programme's policy as if earned now;
    removed points come out of lots like a spend and never take the balance below zero.
    """
    _check_key(key)
    reason = _check_reason(reason)
    if amount == 0:
        raise ValidationFailed("an adjustment must add or remove at least one point")
    now = now or utc_now()
    writer = LedgerWriter(session, now)
    account = writer.lock([person_id])[person_id]
    previous = replayed(session, key, person_id=person_id, kind="adjust", delta=amount)
    if previous is not None:
        return previous
    active = active_programme(session)
    version_id = active.version_id if active else None
    writer.load_lots([person_id])
    if amount > 0:
        expires_at = lot_rules.expiry_of(now, active.programme.expiry, time_zone) if active else None
        index, _ = writer.credit(
            account,
            amount,
            kind="adjust",
            key=key,
            reason=reason,
            source="manual",
            actor=actor,
            programme_version_id=version_id,
            earned_at=now,
            expires_at=expires_at,
            topic="points.adjusted",
            payload={"points": amount},
        )
        return _stored(session, writer.flush()[index])
    rejection = lot_rules.redemption_rejection_reason(_spendable(account, now), -amount)
    if rejection is not None:
        raise InsufficientPoints(
            f"cannot remove {-amount} points: {rejection}", person_id=person_id, asked=-amount
        )
    writer.expire_due(account, programme_version_id=version_id, actor=actor)
    draws = lot_rules.draw((lot.as_rule_lot() for lot in account.open_lots()), -amount, now=now)
    index = writer.debit(
        account,
        draws,
        kind="adjust",
        key=key,
        reason=reason,
        source="manual",
        actor=actor,
        programme_version_id=version_id,
        topic="points.adjusted",
        payload={"points": amount},
    )
    return _stored(session, writer.flush()[index])
