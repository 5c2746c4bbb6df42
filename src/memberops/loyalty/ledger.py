"""The points ledger over the store: locked accounts, lots, entries and allocations, written in sets.

A ``LedgerWriter`` is one transaction's view of the members it touches. ``lock`` takes their
account rows (``SELECT … FOR UPDATE`` in person-id order on PostgreSQL, so two writers touching
overlapping members cannot deadlock; SQLite's writer lock already serialises); everything after
that reads and changes in-memory state and ``flush`` writes it with a few executemany statements:
entries, new lots, allocations, lot remainders, accounts, events. Single-member use cases and the
batch earning of thousands of orders share it, so they follow exactly the same rules:

- every entry moves ``balance`` by ``delta`` and the claw-back ``debt`` by ``debt_delta``;
- every credit is a lot, every debit names the lots it drew on (allocations), so
  ``lot.remaining == lot.amount - sum(allocations)`` and ``sum(remaining) == max(balance, 0)``;
- a credit first fills a hole a refund left: a negative balance (the same entry draws the hole
  back out of its new lot) and then a claw-back debt (a ``claw_back`` entry draws it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.identity.repository import chunks
from memberops.kit.db import fetch, insert_rows, insert_with_ids, update_rows
from memberops.kit.errors import Conflict
from memberops.loyalty import lots as lot_rules
from memberops.models import PointsAccount, PointsAllocation, PointsEntry, PointsLot, table_of

#: Longest reason an entry keeps (the column's width).
REASON_LENGTH = 200


class InsufficientPoints(Conflict):
    """A spend or a negative adjustment asks for more points than the member can spend."""

    code = "insufficient_points"


class IdempotencyConflict(Conflict):
    """An idempotency key was used before for a different change."""

    code = "idempotency_conflict"


@dataclass
class LotState:
    """A lot as this transaction sees it; ``lot_id`` is negative until the lot is written."""

    lot_id: int
    person_id: int
    amount: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None
    entry_index: int | None = None  # the planned entry that creates it (new lots only)
    changed: bool = False

    def as_rule_lot(self) -> lot_rules.PointsLot:
        return lot_rules.PointsLot(self.lot_id, self.remaining, self.earned_at, self.expires_at)


@dataclass
class AccountState:
    """A member's locked account: the cached figures, and the lots once loaded."""

    person_id: int
    balance: int
    debt: int
    revision: int
    lots: dict[int, LotState] | None = None
    changed: bool = False

    def open_lots(self) -> list[LotState]:
        assert self.lots is not None, "load the lots first"
        return [lot for lot in self.lots.values() if lot.remaining > 0]


@dataclass
class _PlannedEntry:
    row: dict[str, Any]
    topic: str | None = None
    payload: dict[str, Any] | None = None


@dataclass
class LedgerWriter:
    """Plans points changes for locked members and writes them in sets (see the module docstring)."""

    session: Session
    now: datetime
    emit_events: bool = True
    accounts: dict[int, AccountState] = field(default_factory=dict)
    entries: list[_PlannedEntry] = field(default_factory=list)
    new_lots: list[LotState] = field(default_factory=list)
    allocations: list[tuple[int, LotState, int]] = field(default_factory=list)
    extra_events: list[DomainEvent] = field(default_factory=list)
    _next_lot_ref: int = -1

    # ------------------------------------------------------------------ locking and loading

    def lock(self, person_ids: Iterable[int]) -> dict[int, AccountState]:
        """Lock the accounts of ``person_ids`` (creating missing ones) and return their state.

        The accounts that exist are read ``FOR UPDATE`` in person order; only those not found are
        then created (in person order, ``ON CONFLICT DO NOTHING`` for one a concurrent writer has
        just created) and read the same way. Existing rows are thus locked in one order, and new
        rows are inserted in one order, by every writer, so two cannot wait for each other in a
        cycle; a replay, which mostly touches members it has seen before, sends no upsert for
        them. (On SQLite a writer holds the only write lock from ``BEGIN IMMEDIATE`` anyway.)
        """
        wanted = sorted(set(person_ids) - set(self.accounts))
        if not wanted:
            return self.accounts
        table = table_of(PointsAccount)
        self._read_locked(table, wanted)
        missing = [person_id for person_id in wanted if person_id not in self.accounts]
        if missing:
            self._create(table, missing)
            self._read_locked(table, missing)
        return self.accounts

    def _create(self, table: Table, person_ids: list[int]) -> None:
        insert = postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert
        for part in chunks(person_ids):
            self.session.connection().execute(
                insert(table).on_conflict_do_nothing(index_elements=[table.c.person_id]),
                [
                    {"person_id": person_id, "balance": 0, "debt": 0, "revision": 0, "updated_at": self.now}
                    for person_id in part
                ],
            )

    def _read_locked(self, table: Table, person_ids: list[int]) -> None:
        for part in chunks(person_ids):
            rows = fetch(
                self.session,
                select(table.c.person_id, table.c.balance, table.c.debt, table.c.revision)
                .where(table.c.person_id.in_(part))
                .order_by(table.c.person_id)
                .with_for_update(),
            )
            for person_id, balance, debt, revision in rows:
                self.accounts[person_id] = AccountState(person_id, int(balance), int(debt), int(revision))

    def account(self, person_id: int) -> AccountState:
        """Return the locked account of ``person_id`` (lock it first)."""
        return self.accounts[person_id]

    def load_lots(self, person_ids: Iterable[int], *, lot_ids: Sequence[int] = ()) -> None:
        """Load the open lots of locked members, and ``lot_ids`` (for a restore) even if empty."""
        missing = sorted(p for p in set(person_ids) if self.accounts[p].lots is None)
        for person_id in missing:
            self.accounts[person_id].lots = {}
        # Columns, not ORM objects: lots change through Core updates, and the session's identity
        # map would hand an earlier writer's stale copies to a later one in the same transaction.
        columns = (
            PointsLot.id,
            PointsLot.person_id,
            PointsLot.amount,
            PointsLot.remaining,
            PointsLot.earned_at,
            PointsLot.expires_at,
        )
        rows: list[Any] = []
        for part in chunks(missing):
            rows += fetch(
                self.session, select(*columns).where(PointsLot.person_id.in_(part), PointsLot.remaining > 0)
            ).all()
        known = {lot_id for account in self.accounts.values() for lot_id in (account.lots or {})}
        wanted = sorted(set(lot_ids) - known)
        for part in chunks(wanted):
            rows += fetch(self.session, select(*columns).where(PointsLot.id.in_(part))).all()
        for lot_id, person_id, amount, remaining, earned_at, expires_at in rows:
            account = self.accounts[person_id]
            if account.lots is None:
                account.lots = {}
            account.lots.setdefault(
                lot_id, LotState(lot_id, person_id, int(amount), int(remaining), earned_at, expires_at)
            )

    # ------------------------------------------------------------------ planning

    def append(
        self,
        account: AccountState,
        *,
        kind: str,
        delta: int,
        key: str,
        reason: str,
        source: str,
        actor: str,
        programme_version_id: int | None,
        source_ref: str | None = None,
        debt_delta: int = 0,
        reverses_entry_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
        topic: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Plan one entry for a locked account; return its index in this writer."""
        account.balance += delta
        account.debt += debt_delta
        account.revision += 1
        account.changed = True
        self.entries.append(
            _PlannedEntry(
                {
                    "person_id": account.person_id,
                    "kind": kind,
                    "delta": delta,
                    "debt_delta": debt_delta,
                    "balance_after": account.balance,
                    "reason": reason[:REASON_LENGTH],
                    "source": source,
                    "source_ref": source_ref,
                    "actor": actor,
                    "idempotency_key": key,
                    "programme_version_id": programme_version_id,
                    "reverses_entry_id": reverses_entry_id,
                    "detail": dict(detail) if detail is not None else None,
                    "created_at": self.now,
                },
                topic,
                dict(payload) if payload is not None else None,
            )
        )
        return len(self.entries) - 1

    def allocate(self, entry_index: int, lot: LotState, amount: int) -> None:
        """Record that entry ``entry_index`` takes ``amount`` from ``lot`` (negative: puts back)."""
        if amount == 0:
            return
        lot.remaining -= amount
        lot.changed = True
        self.allocations.append((entry_index, lot, amount))

    def credit(
        self,
        account: AccountState,
        amount: int,
        *,
        kind: str,
        key: str,
        reason: str,
        source: str,
        actor: str,
        programme_version_id: int | None,
        earned_at: datetime,
        expires_at: datetime | None,
        source_ref: str | None = None,
        detail: Mapping[str, Any] | None = None,
        topic: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> tuple[int, LotState]:
        """Plan a credit of ``amount`` points as a new lot, repaying any refund hole first.

        Returns the entry index and the lot. A negative balance is filled by the entry itself
        (its allocation on the new lot); a claw-back debt by a ``claw_back`` entry after it.
        """
        hole = max(0, -account.balance)
        index = self.append(
            account,
            kind=kind,
            delta=amount,
            key=key,
            reason=reason,
            source=source,
            actor=actor,
            programme_version_id=programme_version_id,
            source_ref=source_ref,
            detail=detail,
            topic=topic,
            payload=payload,
        )
        lot = LotState(self._next_lot_ref, account.person_id, amount, amount, earned_at, expires_at, index)
        self._next_lot_ref -= 1
        self.new_lots.append(lot)
        if account.lots is not None:
            account.lots[lot.lot_id] = lot
        self.repay(
            account,
            index,
            [lot],
            hole=hole,
            key=key,
            source=source,
            actor=actor,
            programme_version_id=programme_version_id,
            source_ref=source_ref,
        )
        return index, lot

    def repay(
        self,
        account: AccountState,
        entry_index: int,
        lots: Sequence[LotState],
        *,
        hole: int,
        key: str,
        source: str,
        actor: str,
        programme_version_id: int | None,
        source_ref: str | None = None,
    ) -> None:
        """Let points just credited into ``lots`` fill a refund hole, soonest-expiring first.

        ``hole`` is how far below zero the balance was before the credit: the crediting entry
        draws that much back out (its delta already filled it). What is left repays a claw-back
        debt through a ``claw_back`` entry.
        """
        ordered = sorted(
            lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or lot.earned_at, lot.lot_id)
        )
        draws, _ = _take(ordered, hole)
        for lot, amount in draws:
            self.allocate(entry_index, lot, amount)
        if account.debt <= 0:
            return
        draws, _ = _take(ordered, account.debt)
        repaid = sum(amount for _, amount in draws)
        if repaid == 0:
            return
        claw = self.append(
            account,
            kind="claw_back",
            delta=-repaid,
            debt_delta=-repaid,
            key=f"{key}:claw_back",
            reason=f"repays {repaid} points a refund could not take back",
            source=source,
            actor=actor,
            programme_version_id=programme_version_id,
            source_ref=source_ref,
        )
        for lot, amount in draws:
            self.allocate(claw, lot, amount)

    def debit(
        self,
        account: AccountState,
        draws: Sequence[lot_rules.LotDraw],
        *,
        kind: str,
        key: str,
        reason: str,
        source: str,
        actor: str,
        programme_version_id: int | None,
        extra: int = 0,
        debt_delta: int = 0,
        source_ref: str | None = None,
        detail: Mapping[str, Any] | None = None,
        topic: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Plan a debit of the ``draws`` (plus ``extra`` points no lot backs: a negative balance)."""
        assert account.lots is not None
        total = sum(draw.amount for draw in draws) + extra
        index = self.append(
            account,
            kind=kind,
            delta=-total,
            debt_delta=debt_delta,
            key=key,
            reason=reason,
            source=source,
            actor=actor,
            programme_version_id=programme_version_id,
            source_ref=source_ref,
            detail=detail,
            topic=topic,
            payload=payload,
        )
        for draw in draws:
            self.allocate(index, account.lots[draw.lot_id], draw.amount)
        return index

    def expire_due(
        self, account: AccountState, *, programme_version_id: int | None, actor: str
    ) -> int | None:
        """Plan one ``expire`` entry for the member's lots whose expiry passed; None when none did."""
        expiring = lot_rules.expired_remainders((lot.as_rule_lot() for lot in account.open_lots()), self.now)
        if not expiring:
            return None
        total = sum(item.amount for item in expiring)
        return self.debit(
            account,
            [lot_rules.LotDraw(item.lot_id, item.amount) for item in expiring],
            kind="expire",
            key=f"expire:{account.person_id}:r{account.revision + 1}",
            reason=f"{total} points reached their expiry",
            source="expiry",
            actor=actor,
            programme_version_id=programme_version_id,
            topic="points.expired",
            payload={
                "points": total,
                "lots": [
                    {"lot_id": item.lot_id, "points": item.amount, "expired_at": item.expires_at.isoformat()}
                    for item in expiring
                ],
            },
        )

    # ------------------------------------------------------------------ writing

    def flush(self) -> list[int]:
        """Write everything planned; return the new entry ids in planning order (then start afresh)."""
        entry_ids = insert_with_ids(self.session, table_of(PointsEntry), [e.row for e in self.entries])
        if self.new_lots:
            lot_rows = [
                {
                    "person_id": lot.person_id,
                    "entry_id": entry_ids[lot.entry_index] if lot.entry_index is not None else None,
                    "amount": lot.amount,
                    "remaining": lot.remaining,
                    "earned_at": lot.earned_at,
                    "expires_at": lot.expires_at,
                }
                for lot in self.new_lots
            ]
            lot_ids = insert_with_ids(self.session, table_of(PointsLot), lot_rows)
            for lot, lot_id in zip(self.new_lots, lot_ids, strict=True):
                account = self.accounts[lot.person_id]
                if account.lots is not None:
                    account.lots.pop(lot.lot_id, None)
                    account.lots[lot_id] = lot
                lot.lot_id, lot.changed = lot_id, False
        insert_rows(
            self.session,
            table_of(PointsAllocation),
            [
                {"entry_id": entry_ids[index], "lot_id": lot.lot_id, "amount": amount}
                for index, lot, amount in self.allocations
            ],
        )
        changed_lots = {
            lot.lot_id: lot
            for account in self.accounts.values()
            for lot in (account.lots or {}).values()
            if lot.changed
        }
        changed_lots.update({lot.lot_id: lot for _, lot, _ in self.allocations if lot.changed})
        if changed_lots:
            update_rows(
                self.session,
                table_of(PointsLot),
                "id",
                [{"id": lot_id, "remaining": lot.remaining} for lot_id, lot in sorted(changed_lots.items())],
            )
            for lot in changed_lots.values():
                lot.changed = False
        changed_accounts = [account for account in self.accounts.values() if account.changed]
        if changed_accounts:
            update_rows(
                self.session,
                table_of(PointsAccount),
                "person_id",
                [
                    {
                        "person_id": account.person_id,
                        "balance": account.balance,
                        "debt": account.debt,
                        "revision": account.revision,
                        "updated_at": self.now,
                    }
                    for account in sorted(changed_accounts, key=lambda a: a.person_id)
                ],
            )
            for account in changed_accounts:
                account.changed = False
        events = [
            DomainEvent(
                topic=planned.topic,
                payload={
                    "entry_id": entry_id,
                    "person_id": planned.row["person_id"],
                    "kind": planned.row["kind"],
                    "delta": planned.row["delta"],
                    "balance": planned.row["balance_after"],
                    **(planned.payload or {}),
                },
                key=f"points:entry:{entry_id}",
                occurred_at=self.now,
                person_id=planned.row["person_id"],
            )
            for planned, entry_id in zip(self.entries, entry_ids, strict=True)
            if planned.topic is not None
        ]
        events += self.extra_events
        if events and self.emit_events:
            emit_many(self.session, events, now=self.now)
        self.entries, self.new_lots, self.allocations, self.extra_events = [], [], [], []
        return entry_ids


def _take(lots: Sequence[LotState], amount: int) -> tuple[list[tuple[LotState, int]], int]:
    """Take up to ``amount`` from ``lots`` in order; return (lot, points) pairs and what is left."""
    taken: list[tuple[LotState, int]] = []
    left = amount
    for lot in lots:
        if left <= 0:
            break
        share = min(lot.remaining, left)
        if share > 0:
            taken.append((lot, share))
            left -= share
    return taken, left


def entry_by_key(session: Session, key: str) -> PointsEntry | None:
    """Return the entry stored under an idempotency key, if any."""
    return session.scalars(select(PointsEntry).where(PointsEntry.idempotency_key == key)).first()


def replayed(
    session: Session, key: str, *, person_id: int, kind: str, delta: int | None = None
) -> PointsEntry | None:
    """Return the entry a replay of ``key`` refers to, or None; raise if the key meant something else."""
    entry = entry_by_key(session, key)
    if entry is None:
        return None
    if entry.person_id != person_id or entry.kind != kind or (delta is not None and entry.delta != delta):
        raise IdempotencyConflict(
            f"idempotency key {key!r} was used for a different change "
            f"({entry.kind} of {entry.delta} points for person {entry.person_id})",
            entry_id=entry.id,
        )
    return entry
