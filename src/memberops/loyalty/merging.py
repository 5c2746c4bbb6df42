"""Carry loyalty holdings across OneID merges, splits and undone merges, in OneID's own transaction.

OneID calls ``LoyaltyCarrier`` (registered in ``wiring``, so identity never imports loyalty) right
after it re-points its own rows, so a merge and its loyalty move commit or roll back together.

**A merge re-attributes; it does not transfer.** A merge says two person rows were one human all
along, so every loyalty row of the absorbed person gets the survivor's ``person_id`` with its figures
unchanged: points entries, lots (amounts, remainders and expiry dates, so no point gains or loses
life), order earnings (so a later refund of an absorbed order takes back from the survivor, out of
that order's own lot first), growth entries, tier history, coupons, coupon and reward redemptions,
plan terms, benefit grants and checkout settlements. Allocations name lots and entries, not persons,
and stay exact. The entries' ``delta`` is never updated (the ledger stays append-only in what it
says happened; only *who* it happened to is corrected, as OneID corrects an order's person).

Paired transfer entries were the alternative and were rejected: a transfer mints new lots (the
expiry of each moved point would have to be copied lot by lot, or be lost), and every reference
into the absorbed ledger (a reward's spend key, a settlement's spend, an order's lot) would keep
pointing at the absorbed person, so cancellations and refunds would act on an empty account.

The caches are combined: the two ``points_accounts`` rows add up (balance, debt, revision) and the
absorbed one is emptied (balance and debt 0; kept rather than deleted, so a spend that resolved the
absorbed person a moment before the merge and waits on its lock finds an empty account instead of a
vanished row, and ``check`` holds for it: no entries, nothing owed, no lots). Then one ``merge``
entry of delta 0 is appended to the survivor. It records the move (its ``detail`` names the absorbed
person and figures) and carries the combined balance as ``balance_after``, so ``check``'s "account
== sum of entries == last entry's balance_after" holds.
When one side was below zero (a refund under ``negative_balance``) while the other held lots, the
merge entry draws that hole out of the lots, exactly as a credit fills a hole in ``LedgerWriter``;
an outstanding claw-back debt is then repaid from the combined lots by a ``claw_back`` entry. So the
open lots hold ``max(balance, 0)`` again.

Tiers: growth entries move and ``growth_total`` adds up; the higher tier is kept (by rank in the
active programme) with its ``since`` and next evaluation date (on a tie, the later date: neither
record promised less); the higher manual floor is kept; gifted tiers are unioned, so no upgrade gift
is given twice. When the survivor's tier changes, a ``tier_history`` row (reason ``merge``) says so.
A merge never upgrades on the combined growth nor gives gifts: it emits nothing to customers, and
the next purchase (``upgrade_now``) or scheduled evaluation judges the combined growth.

Per-member limits count both persons' history afterwards: two birthday grants of one year both stay
(both were handed over) and block a third; two redemptions of a once-per-member reward both stay and
block a third. Nothing is revoked.

Splits and undone merges are ``loyalty.splitting``'s; ``LoyaltyCarrier`` hands OneID both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from memberops.identity.repository import chunks
from memberops.kit.clock import utc_now
from memberops.kit.db import insert_rows
from memberops.loyalty.growth import known_tier
from memberops.loyalty.ledger import AccountState, LedgerWriter
from memberops.loyalty.programme import Programme
from memberops.loyalty.splitting import OFFERS_OWNED, carry_orders, hand_back
from memberops.loyalty.versions import active_programme
from memberops.models import (
    GrowthEntry,
    MemberTier,
    OrderEarning,
    PointsAccount,
    PointsEntry,
    PointsLot,
    ProgrammeVersion,
    TierChangeRecord,
    table_of,
)
from memberops.models.base import Base

MERGE_KIND = "merge"
#: ``source`` of the entries and tier-history rows a merge writes (and the history row's reason).
MERGE_SOURCE = "merge"

#: Ledger rows that follow a merge and are not handed back by an undo (orders carry theirs back).
LEDGER_OWNED: tuple[type[Base], ...] = (PointsEntry, PointsLot, OrderEarning, GrowthEntry, TierChangeRecord)


@dataclass(frozen=True)
class TierRow:
    """A member's tier row, as a merge reads and combines it."""

    person_id: int
    tier: str
    floor: str | None
    since: datetime
    growth_total: int
    gifted_tiers: list[str]
    next_evaluation_on: date | None


@dataclass(frozen=True)
class LoyaltyCarrier:
    """The loyalty side of OneID's merges and splits (``IdentityService``'s holdings carrier)."""

    time_zone: ZoneInfo

    def carry_merged(
        self, session: Session, survivor_of: Mapping[int, int], *, actor: str
    ) -> dict[int, dict[str, Any]]:
        """Carry every loyalty holding of absorbed persons to their survivors; see ``carry_merged``."""
        return carry_merged(session, survivor_of, actor=actor)

    def carry_split(
        self,
        session: Session,
        *,
        source: int,
        target: int,
        order_ids: Sequence[int],
        handed_back: Mapping[str, Any] | None,
        actor: str,
    ) -> None:
        """Hand back what an undone merge lists, then move the moved orders' points and growth."""
        if handed_back:
            hand_back(session, handed_back, holder=source, restored=target)
        carry_orders(session, order_ids, source=source, target=target, actor=actor, time_zone=self.time_zone)


# --- Merge -------------------------------------------------------------------------------------------


def carry_merged(
    session: Session, survivor_of: Mapping[int, int], *, actor: str, now: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """Re-attribute the loyalty rows of absorbed persons (``absorbed -> survivor``) and combine caches.

    Set-based: one executemany per table for the whole batch, whatever its size; the per-member work
    (adding up two account rows and two tier rows) runs in memory. ``survivor_of`` must name final
    survivors (not persons absorbed in the same batch). Returns, per absorbed person that had any
    loyalty rows, what moved (for the merge record). A replay finds nothing left to move and changes
    nothing. Writes no outbox event.
    """
    if not survivor_of or not _has_loyalty(session):
        return {}
    now = now or utc_now()
    pairs = sorted(survivor_of.items())
    persons = sorted({*survivor_of, *survivor_of.values()})
    accounts = _lock_accounts(session, persons)
    offers = _offer_ids(session, [absorbed for absorbed, _ in pairs])
    tiers = _tier_rows(session, persons)
    holding = _holding_entries(session, [absorbed for absorbed, _ in pairs])
    _repoint(session, pairs)
    active = active_programme(session)
    version_id = active.version_id if active is not None else None
    points = _combine_accounts(session, pairs, accounts, holding, actor=actor, now=now, version_id=version_id)
    moved_tiers = _combine_tiers(
        session,
        pairs,
        tiers,
        programme=active.programme if active is not None else None,
        version_id=version_id,
        actor=actor,
        now=now,
    )
    detail: dict[int, dict[str, Any]] = {}
    for absorbed, _ in pairs:
        found: dict[str, Any] = dict(offers.get(absorbed, {}))
        if absorbed in points:
            found["points"] = points[absorbed]
        if absorbed in moved_tiers:
            found["tier"] = moved_tiers[absorbed]
        if found:
            detail[absorbed] = found
    return detail


def _has_loyalty(session: Session) -> bool:
    """Whether any loyalty row can exist: a programme was applied, or points were added without one.

    Saves a bulk import of a brand without a programme the re-pointing statements.
    """
    if session.execute(select(ProgrammeVersion.id).limit(1)).first() is not None:
        return True
    return session.execute(select(PointsAccount.person_id).limit(1)).first() is not None


def _lock_accounts(session: Session, persons: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """Lock the existing accounts of ``persons`` in person-id order (the ledger's one lock)."""
    table = table_of(PointsAccount)
    found: dict[int, tuple[int, int, int]] = {}
    for part in chunks(persons):
        rows = session.execute(
            select(table.c.person_id, table.c.balance, table.c.debt, table.c.revision)
            .where(table.c.person_id.in_(part))
            .order_by(table.c.person_id)
            .with_for_update()
        )
        found.update((int(p), (int(b), int(d), int(r))) for p, b, d, r in rows)
    return found


def _holding_entries(session: Session, absorbed: Sequence[int]) -> set[int]:
    """The absorbed persons that hold points entries (an index seek each)."""
    found: set[int] = set()
    for part in chunks(absorbed):
        found.update(
            int(person_id)
            for (person_id,) in session.execute(
                select(PointsEntry.person_id).where(PointsEntry.person_id.in_(part)).distinct()
            )
        )
    return found


def _offer_ids(session: Session, absorbed: Sequence[int]) -> dict[int, dict[str, list[int]]]:
    """The ids of the offer rows each absorbed person holds, by ``OFFERS_OWNED`` name."""
    found: dict[int, dict[str, list[int]]] = {}
    for name, model in OFFERS_OWNED.items():
        table = table_of(model)
        for part in chunks(absorbed):
            for row_id, person_id in session.execute(
                select(table.c.id, table.c.person_id).where(table.c.person_id.in_(part)).order_by(table.c.id)
            ):
                found.setdefault(int(person_id), {}).setdefault(name, []).append(int(row_id))
    return found


def _tier_rows(session: Session, persons: Sequence[int]) -> dict[int, TierRow]:
    table = table_of(MemberTier)
    found: dict[int, TierRow] = {}
    for part in chunks(persons):
        for person_id, tier, floor, since, total, gifted, next_on in session.execute(
            select(
                table.c.person_id,
                table.c.tier,
                table.c.floor,
                table.c.since,
                table.c.growth_total,
                table.c.gifted_tiers,
                table.c.next_evaluation_on,
            ).where(table.c.person_id.in_(part))
        ):
            found[int(person_id)] = TierRow(
                int(person_id), tier, floor, since, int(total), list(gifted), next_on
            )
    return found


def _repoint(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    """One UPDATE per table, executed for all pairs at once (as ``repoint_persons`` does)."""
    params = [{"absorbed": absorbed, "survivor": survivor} for absorbed, survivor in pairs]
    absorbed_id: Any = bindparam("absorbed")
    survivor_id: Any = bindparam("survivor")
    connection = session.connection()
    for model in (*LEDGER_OWNED, *OFFERS_OWNED.values()):
        table = table_of(model)
        connection.execute(
            table.update().where(table.c.person_id == absorbed_id).values(person_id=survivor_id), params
        )


def _combine_accounts(
    session: Session,
    pairs: Sequence[tuple[int, int]],
    accounts: Mapping[int, tuple[int, int, int]],
    holding: set[int],
    *,
    actor: str,
    now: datetime,
    version_id: int | None,
) -> dict[int, dict[str, int]]:
    """Add absorbed accounts into their survivors' and append each survivor's ``merge`` entries.

    An absorbed account moves when it holds entries (``holding``, read before re-pointing) or a
    balance or debt; one emptied by an earlier merge has neither, so a replay writes nothing.
    """
    moving = {
        absorbed: accounts[absorbed]
        for absorbed, _ in pairs
        if absorbed in accounts and (absorbed in holding or accounts[absorbed][:2] != (0, 0))
    }
    if not moving:
        return {}
    table = table_of(PointsAccount)
    connection = session.connection()
    # Emptied, not deleted: a writer that resolved the absorbed person just before this merge and
    # waits on its account lock then finds an empty account (a spend is refused) instead of a row
    # that vanished under it; the revision stays so keys derived from it never repeat.
    connection.execute(
        table.update()
        .where(table.c.person_id == bindparam("gone"))
        .values(balance=0, debt=0, updated_at=bindparam("at")),
        [{"gone": absorbed, "at": now} for absorbed in sorted(moving)],
    )
    written = [(a, s) for a, s in pairs if a in moving]
    missing = sorted({survivor for _, survivor in written if survivor not in accounts})
    insert_rows(
        session,
        table,
        [{"person_id": p, "balance": 0, "debt": 0, "revision": 0, "updated_at": now} for p in missing],
    )
    writer = LedgerWriter(session, now, emit_events=False)
    moved: dict[int, dict[str, int]] = {}
    for absorbed, survivor in written:
        balance, debt, revision = moving[absorbed]
        if survivor not in writer.accounts:
            writer.accounts[survivor] = AccountState(survivor, *accounts.get(survivor, (0, 0, 0)))
        account = writer.accounts[survivor]
        # By check's invariant each side's open lots hold max(balance, 0) before the merge.
        held = max(account.balance, 0) + max(balance, 0)
        survivor_balance = account.balance
        account.balance += balance
        account.debt += debt
        account.revision += revision
        key = f"merge:{absorbed}:into:{survivor}:r{account.revision + 1}"
        index = writer.append(
            account,
            kind=MERGE_KIND,
            delta=0,
            key=key,
            reason=f"person {absorbed} merged into person {survivor}",
            source=MERGE_SOURCE,
            source_ref=str(absorbed),
            actor=actor,
            programme_version_id=version_id,
            detail={
                "absorbed_person_id": absorbed,
                "absorbed_balance": balance,
                "absorbed_debt": debt,
                "survivor_balance": survivor_balance,
            },
        )
        hole = held - max(account.balance, 0)
        if hole > 0 or account.debt > 0:
            writer.load_lots([survivor])
            writer.repay(
                account,
                index,
                account.open_lots(),
                hole=hole,
                key=key,
                source=MERGE_SOURCE,
                actor=actor,
                programme_version_id=version_id,
                source_ref=str(absorbed),
            )
        moved[absorbed] = {"balance": balance, "debt": debt}
    writer.flush()
    return moved


def _combine_tiers(
    session: Session,
    pairs: Sequence[tuple[int, int]],
    rows: Mapping[int, TierRow],
    *,
    programme: Programme | None,
    version_id: int | None,
    actor: str,
    now: datetime,
) -> dict[int, dict[str, Any]]:
    """Fold absorbed tier rows into their survivors' (see the module docstring for the rules)."""
    moving = [(absorbed, survivor) for absorbed, survivor in pairs if absorbed in rows]
    if not moving:
        return {}

    def rank(code: str) -> int:
        return programme.rank(known_tier(programme, code)) if programme is not None else 0

    combined: dict[int, TierRow] = {}
    history: list[dict[str, Any]] = []
    moved: dict[int, dict[str, Any]] = {}
    for absorbed, survivor in moving:
        other = rows[absorbed]
        moved[absorbed] = {
            "tier": other.tier,
            "floor": other.floor,
            "gifted_tiers": list(other.gifted_tiers),
            "growth_total": other.growth_total,
            "next_evaluation_on": other.next_evaluation_on.isoformat() if other.next_evaluation_on else None,
        }
        current = combined.get(survivor, rows.get(survivor))
        if current is None:
            combined[survivor] = replace(other, person_id=survivor)
            continue
        merged = combine_tier_rows(current, other, rank)
        if merged.tier != current.tier:
            history.append(
                {
                    "person_id": survivor,
                    "from_tier": current.tier,
                    "to_tier": merged.tier,
                    "direction": "up",
                    "reason": MERGE_SOURCE,
                    "growth": merged.growth_total,
                    "programme_version_id": version_id,
                    "actor": actor,
                    "idempotency_key": f"merge:{absorbed}:into:{survivor}:tier",
                    "note": f"person {absorbed} merged in with tier {other.tier}",
                    "changed_at": now,
                }
            )
        combined[survivor] = merged
    table = table_of(MemberTier)
    connection = session.connection()
    connection.execute(
        table.delete().where(table.c.person_id == bindparam("gone")),
        [{"gone": absorbed} for absorbed, _ in moving],
    )
    fresh = [row for person, row in sorted(combined.items()) if person not in rows]
    stored = [row for person, row in sorted(combined.items()) if person in rows]
    insert_rows(session, table, [{**_tier_values(row, now), "person_id": row.person_id} for row in fresh])
    if stored:
        connection.execute(
            table.update()
            .where(table.c.person_id == bindparam("member"))
            .values({name: bindparam(f"new_{name}") for name in _tier_values(stored[0], now)}),
            [
                {"member": row.person_id, **{f"new_{k}": v for k, v in _tier_values(row, now).items()}}
                for row in stored
            ],
        )
    insert_rows(session, table_of(TierChangeRecord), history)
    return moved


def _tier_values(row: TierRow, now: datetime) -> dict[str, Any]:
    return {
        "tier": row.tier,
        "floor": row.floor,
        "since": row.since,
        "growth_total": row.growth_total,
        "gifted_tiers": row.gifted_tiers,
        "next_evaluation_on": row.next_evaluation_on,
        "updated_at": now,
    }


def combine_tier_rows(survivor: TierRow, absorbed: TierRow, rank: Callable[[str], int]) -> TierRow:
    """Return the survivor's tier row after ``absorbed`` joins it (pure; ``rank(code) -> int``).

    The higher tier wins with its ``since`` and next evaluation date; on a tie the survivor's tier
    and ``since`` stay and the later evaluation date is kept. The higher floor wins; growth adds up;
    gifted tiers are unioned in the survivor's order, then the absorbed person's.
    """
    survivor_rank, absorbed_rank = rank(survivor.tier), rank(absorbed.tier)
    kept = absorbed if absorbed_rank > survivor_rank else survivor
    if absorbed_rank == survivor_rank:
        dates = [d for d in (survivor.next_evaluation_on, absorbed.next_evaluation_on) if d is not None]
        next_on = max(dates) if dates else None
    else:
        next_on = kept.next_evaluation_on
    floors = [f for f in (survivor.floor, absorbed.floor) if f is not None]
    floor = max(floors, key=rank) if floors else None
    gifted = [*survivor.gifted_tiers, *(t for t in absorbed.gifted_tiers if t not in survivor.gifted_tiers)]
    return TierRow(
        survivor.person_id,
        kept.tier,
        floor,
        kept.since,
        survivor.growth_total + absorbed.growth_total,
        gifted,
        next_on,
    )
