"""Coupons, rewards, paid plans, benefit grants and checkout settlements (ADR 0007).

Money is integer fen, instants UTC. Every row a write creates carries a unique idempotency key, so
replaying the write finds the row instead of making another one. Rows that a concurrent writer
could change (a coupon, a reward's stock, a settlement) are locked with ``FOR UPDATE`` in id order
before they are read for a decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base


class Coupon(Base):
    """One issued coupon (a single-use entitlement) held by a person.

    ``status``: ``issued`` (usable in its window), ``redeemed``, ``expired`` (the expiry job saw its
    window end) or ``void`` (withdrawn by an operator or with a refunded plan). ``external`` marks
    a code imported from a marketplace voucher rather than generated here. ``source`` says what
    issued it (``manual``, ``bulk``, ``pack``, ``reward``, ``birthday``, ``plan``, ``import``).
    """

    __tablename__ = "coupons"
    __table_args__ = (
        Index("ix_coupons_person_status", "person_id", "status"),
        Index("ix_coupons_status_valid_until", "status", "valid_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    external: Mapped[bool] = mapped_column(Boolean)
    template_code: Mapped[str] = mapped_column(String(64))
    programme_version_id: Mapped[int] = mapped_column(ForeignKey("programme_versions.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    status: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(32))
    pack_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    issued_by: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    #: The key of the issue request that made it (one request issues many coupons).
    issue_key: Mapped[str] = mapped_column(String(200), index=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    void_reason: Mapped[str | None] = mapped_column(String(200))
    expiry_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CouponRedemption(Base):
    """One use of a coupon: on a checkout settlement, or redeemed directly (a voucher at the till).

    ``released_at`` is set when the use is undone (the settlement cancelled or fully refunded), and
    the coupon is usable again if its window is still open. A coupon has at most one unreleased use.
    """

    __tablename__ = "coupon_redemptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    settlement_id: Mapped[int | None] = mapped_column(ForeignKey("checkout_settlements.id"), index=True)
    discount_fen: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str | None] = mapped_column(String(32))
    store: Mapped[str | None] = mapped_column(String(32))
    order_ref: Mapped[str | None] = mapped_column(String(64))
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    release_reason: Mapped[str | None] = mapped_column(String(200))


class RewardStock(Base):
    """How many of a reward are redeemed and not cancelled: the row redemptions lock.

    The stock itself is the programme's (``Reward.stock``), so a new programme version can raise
    or lower it; what is left is that figure minus ``redeemed``.
    """

    __tablename__ = "reward_stock"

    reward_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    redeemed: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RewardRedemption(Base):
    """Points spent on a reward of the catalogue; cancelling puts the points and the stock back.

    ``points_spend_key`` is the idempotency key of the ledger's spend entry, which the restore on
    cancellation names. ``coupon_id`` is the coupon a coupon reward granted.
    """

    __tablename__ = "reward_redemptions"
    __table_args__ = (Index("ix_reward_redemptions_person_reward", "person_id", "reward_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    reward_code: Mapped[str] = mapped_column(String(64))
    programme_version_id: Mapped[int] = mapped_column(ForeignKey("programme_versions.id"))
    points_price: Mapped[int] = mapped_column(BigInteger)
    points_spend_key: Mapped[str] = mapped_column(String(200))
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    status: Mapped[str] = mapped_column(String(16))
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(100))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))


class PaidPlanTerm(Base):
    """One bought term of a paid plan (付费会员): a purchase, or a renewal continuing the previous term.

    ``status`` is ``active`` (paid, not known to be over), ``expired`` (the expiry job saw the run of
    terms end) or ``refunded``. The status a member *has* on a date (``active | expiring | expired``)
    is computed from the terms by ``loyalty.plans.plan_status``.
    """

    __tablename__ = "paid_plan_subscriptions"
    __table_args__ = (
        Index("ix_paid_plan_subscriptions_person_ends", "person_id", "ends_at"),
        Index("ix_paid_plan_subscriptions_status_ends", "status", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    plan_code: Mapped[str] = mapped_column(String(64))
    programme_version_id: Mapped[int] = mapped_column(ForeignKey("programme_versions.id"))
    kind: Mapped[str] = mapped_column(String(16))
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("paid_plan_subscriptions.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    price_fen: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payment_ref: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    refund_fen: Mapped[int | None] = mapped_column(BigInteger)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refund_reason: Mapped[str | None] = mapped_column(String(200))
    refund_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    expiring_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BenefitGrant(Base):
    """A benefit handed over once per period (a birthday gift per year): what was given, and why."""

    __tablename__ = "benefit_grants"
    __table_args__ = (Index("ix_benefit_grants_person", "person_id", "benefit"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    benefit: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(100))


class CheckoutSettlement(Base):
    """An order's use of coupons and points, settled at once and tied to ``(source, external_order_id)``.

    ``status``: ``settled``, ``cancelled`` (everything released) or ``refunded`` (refunded in full;
    a partial refund leaves it ``settled`` with ``refunded_fen`` above zero). ``lines`` keeps the
    quote line by line (``[line_no, sku, category, quantity, list, member, coupon, points,
    payable]``) so refunds can be checked against it. ``request_digest`` names the request, so a
    replay with different content is told apart from a true replay.
    """

    __tablename__ = "checkout_settlements"
    __table_args__ = (UniqueConstraint("source", "external_order_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    external_order_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    store: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    programme_version_id: Mapped[int] = mapped_column(ForeignKey("programme_versions.id"))
    list_fen: Mapped[int] = mapped_column(BigInteger)
    member_discount_fen: Mapped[int] = mapped_column(BigInteger)
    coupon_discount_fen: Mapped[int] = mapped_column(BigInteger)
    points_spent: Mapped[int] = mapped_column(BigInteger)
    points_value_fen: Mapped[int] = mapped_column(BigInteger)
    delivery_fen: Mapped[int] = mapped_column(BigInteger)
    payable_fen: Mapped[int] = mapped_column(BigInteger)
    coupon_ids: Mapped[list[int]] = mapped_column(JSON)
    lines: Mapped[list[list[Any]]] = mapped_column(JSON)
    points_spend_key: Mapped[str | None] = mapped_column(String(200))
    points_restored: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger)
    request_digest: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    actor: Mapped[str] = mapped_column(String(100))
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CheckoutRefund(Base):
    """Money given back on a settlement, and the points (and, once whole, coupons) it released."""

    __tablename__ = "checkout_refunds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    settlement_id: Mapped[int] = mapped_column(ForeignKey("checkout_settlements.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    points_restored: Mapped[int] = mapped_column(Integer)
    coupons_released: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    actor: Mapped[str] = mapped_column(String(100))
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime())
