"""The loyalty ledger: programme versions, points entries and lots, growth entries, tiers.

Entries are append-only and are the truth; accounts and tier rows are caches that
``memberops loyalty check`` proves equal to the entries (ADR 0006). Points and growth are whole
numbers; instants are UTC; business dates are in the brand's time zone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base

#: Points entry kinds. ``earn`` (a purchase), ``gift`` (an upgrade gift), ``adjust`` (an operator),
#: ``spend`` (a redemption), ``restore`` (a cancelled spend put back), ``refund_take_back``,
#: ``expire``, ``claw_back`` (a new credit repaying a refund shortfall), and OneID's ``merge`` (0 points:
#: the accounts of two persons became one) and ``split_out`` / ``split_in`` (an order's points following
#: it to the person a split gave it to; they net to zero). See ``loyalty.merging`` and ``splitting``.
POINTS_KINDS = (
    "earn",
    "gift",
    "adjust",
    "spend",
    "restore",
    "refund_take_back",
    "expire",
    "claw_back",
    "merge",
    "split_out",
    "split_in",
)
#: Growth entry kinds: ``earn`` (a purchase), ``task``, ``adjust``, ``refund_take_back``.
GROWTH_KINDS = ("earn", "task", "adjust", "refund_take_back")


class ProgrammeVersion(Base):
    """One applied programme document; exactly one row is ``active`` once a programme is applied.

    ``digest`` names the content (``Programme.digest()``), so applying the same document twice
    stores it once; ``version`` is the brand's own label and names one content only.
    """

    __tablename__ = "programme_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, index=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
    applied_by: Mapped[str] = mapped_column(String(100))


class PointsAccount(Base):
    """A member's points cache and the row every loyalty write of that member locks first.

    ``balance`` is the sum of the member's entries' ``delta`` (negative only after a refund under
    the ``negative_balance`` policy); ``debt`` the sum of ``debt_delta``, points a refund could
    not take back under ``claw_back_from_future``. ``revision`` counts the writes.
    """

    __tablename__ = "points_accounts"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True, autoincrement=False)
    balance: Mapped[int] = mapped_column(BigInteger)
    debt: Mapped[int] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsEntry(Base):
    """One change of a member's points: never updated, never deleted.

    ``source`` and ``source_ref`` say what caused it (``order`` and the order id, ``refund`` and
    the refund id, ``manual``…); ``reverses_entry_id`` links a restore to the spend it undoes.
    ``detail`` keeps the breakdown behind the figure (multipliers, caps, the shortfall).
    """

    __tablename__ = "points_entries"
    __table_args__ = (
        Index("ix_points_entries_person", "person_id", "id"),
        Index("ix_points_entries_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    kind: Mapped[str] = mapped_column(String(24))
    delta: Mapped[int] = mapped_column(BigInteger)
    debt_delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    programme_version_id: Mapped[int | None] = mapped_column(ForeignKey("programme_versions.id"))
    reverses_entry_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"), index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsLot(Base):
    """Points credited by one entry, with their expiry; ``remaining`` = ``amount`` − allocations."""

    __tablename__ = "points_lots"
    __table_args__ = (
        Index("ix_points_lots_person_expires", "person_id", "expires_at"),
        Index("ix_points_lots_expires_remaining", "expires_at", "remaining"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PointsAllocation(Base):
    """Points an entry took from a lot (positive) or put back into it (negative, a restore)."""

    __tablename__ = "points_allocations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("points_lots.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class OrderEarning(Base):
    """What one order earned, kept so its refunds take back exactly the refunded share.

    ``lines`` is ``[[line_no, paid_fen, points, growth], …]``; ``refunded_fen`` and the
    ``*_taken_back`` figures add up the refunds processed so far.
    """

    __tablename__ = "order_earnings"
    __table_args__ = (Index("ix_order_earnings_person_day", "person_id", "business_date"),)

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True, autoincrement=False)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    programme_version_id: Mapped[int] = mapped_column(ForeignKey("programme_versions.id"))
    business_date: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(BigInteger)
    growth: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[list[int]]] = mapped_column(JSON)
    points_entry_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"))
    growth_entry_id: Mapped[int | None] = mapped_column(ForeignKey("growth_entries.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_lots.id"))
    refunded_fen: Mapped[int] = mapped_column(BigInteger)
    points_taken_back: Mapped[int] = mapped_column(BigInteger)
    growth_taken_back: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RefundTakeBack(Base):
    """The points and growth one refund took back (one row per refund, so it happens once)."""

    __tablename__ = "refund_take_backs"

    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id"), primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    growth: Mapped[int] = mapped_column(BigInteger)
    points_entry_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"))
    growth_entry_id: Mapped[int | None] = mapped_column(ForeignKey("growth_entries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GrowthEntry(Base):
    """One change of a member's growth value: append-only, like points entries.

    ``occurred_at`` places it in the rolling window (a purchase's payment time; a refund's
    take-back carries the order's, so it leaves the window together with the order).
    """

    __tablename__ = "growth_entries"
    __table_args__ = (Index("ix_growth_entries_person_occurred", "person_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    kind: Mapped[str] = mapped_column(String(24))
    delta: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    programme_version_id: Mapped[int | None] = mapped_column(ForeignKey("programme_versions.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberTier(Base):
    """A member's current tier, manual floor, lifetime growth cache and upgrade gifts received.

    ``growth_total`` is the sum of the member's growth entries (checked); ``next_evaluation_on``
    is the next business date a downgrade is decided (a warning goes out before it).
    """

    __tablename__ = "member_tiers"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True, autoincrement=False)
    tier: Mapped[str] = mapped_column(String(64), index=True)
    floor: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    growth_total: Mapped[int] = mapped_column(BigInteger)
    gifted_tiers: Mapped[list[str]] = mapped_column(JSON)
    next_evaluation_on: Mapped[date | None] = mapped_column(Date, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TierChangeRecord(Base):
    """One move between tiers: up at once by growth or floor, down by a scheduled evaluation."""

    __tablename__ = "tier_history"
    __table_args__ = (Index("ix_tier_history_person", "person_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    from_tier: Mapped[str | None] = mapped_column(String(64))
    to_tier: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    growth: Mapped[int] = mapped_column(BigInteger)
    programme_version_id: Mapped[int | None] = mapped_column(ForeignKey("programme_versions.id"))
    actor: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
