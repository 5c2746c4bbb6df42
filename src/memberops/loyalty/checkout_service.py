"""Checkout: quote a cart for a member, settle an order (coupons and points at once), cancel, refund.

**Settle is atomic and tied to the order.** One transaction takes an advisory lock on the order's
``(source, external_order_id)`` and on the idempotency key, locks the chosen coupons ``FOR UPDATE``
in id order, prices the cart with the same rules as the quote (at the server's time), marks the
coupons redeemed, spends the points through the ledger (which locks the member's account last)
and stores one settlement. Any refusal (a coupon used meanwhile, points short) raises before the
commit, so nothing is half-consumed. The same order settled again with the same content returns
the first settlement; with different content it is a ``Conflict``.

**Release rule** (ADR 0007). Cancelling a settlement, or refunds that reach its whole payable
amount, release everything: the coupons are usable again (or ``expired`` if their window has
ended meanwhile) and the points go back into the lots they came from (the ledger's restore). A
partial refund gives back its share of the points (spent × refunded / payable, rounded down, into
the lots the spend drew on) and keeps the coupons, since a coupon cannot be split; once the
refunds add up to the whole order, the rest of the points and the coupons are released.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.kit.clock import utc_now
from memberops.kit.db import lock_keys
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.kit.money import fen_to_yuan
from memberops.loyalty import holdings
from memberops.loyalty.cart import Cart, CartLine
from memberops.loyalty.coupon_service import emit_redeemed, mark_redeemed, release_coupons
from memberops.loyalty.coupons import CouponRejected
from memberops.loyalty.points import restore_points, spend_points
from memberops.loyalty.pricing import DEFAULT_POLICY, CheckoutPolicy, Quote, quote
from memberops.loyalty.programme import Programme
from memberops.models import (
    Channel,
    CheckoutRefund,
    CheckoutSettlement,
    Coupon,
    CouponRedemption,
)

SETTLED, CANCELLED, REFUNDED = "settled", "cancelled", "refunded"


class SettlementConflict(Conflict):
    """The order was settled before with different content, or the key names another order."""

    code = "idempotency_conflict"


class SettlementRejected(Conflict):
    """The settlement cannot be cancelled or refunded in its state."""

    code = "settlement_rejected"


@dataclass(frozen=True)
class SettleRequest:
    """An order to settle: which member, which lines, coupons and points (see ``pricing.quote``)."""

    source: str
    external_order_id: str
    person_id: int
    lines: tuple[CartLine, ...]
    store: str | None = None
    delivery_fen: int = 0
    coupon_ids: tuple[int, ...] = ()
    points: int = 0

    def digest(self, person_id: int) -> str:
        """Name the request's content, so a replay with other content is told apart."""
        content = [
            self.source,
            self.external_order_id,
            person_id,
            sorted([[ln.line_no, ln.sku, ln.category, ln.quantity, ln.unit_price_fen] for ln in self.lines]),
            self.store,
            self.delivery_fen,
            sorted(set(self.coupon_ids)),
            self.points,
        ]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class SettlementOutcome:
    """A settlement after a write, and whether this call changed it."""

    settlement: CheckoutSettlement
    created: bool


@dataclass(frozen=True)
class RefundOutcome:
    """A refund on a settlement, the settlement after it, and whether this call made it."""

    refund: CheckoutRefund
    settlement: CheckoutSettlement
    created: bool


def _benefits_plan(
    session: Session, member: int, programme: Programme, at: datetime, tz: ZoneInfo
) -> str | None:
    plan = holdings.member_plan_status(session, member, programme, at, tz).benefits_plan
    if plan is not None and plan not in {known.code for known in programme.paid_plans}:
        return None  # a plan withdrawn from the programme gives no benefits any more
    return plan


def quote_for(
    session: Session,
    person_id: int,
    cart: Cart,
    *,
    selected: Sequence[int] | None,
    points: int,
    time_zone: ZoneInfo,
    policy: CheckoutPolicy = DEFAULT_POLICY,
) -> Quote:
    """Quote ``cart`` for the member as of ``cart.at``: their tier, active plan, coupons and points."""
    member = holdings.live_person(session, person_id)
    programme = holdings.active(session).programme
    coupons = holdings.usable_coupons_of(session, holdings.person_ids_of(session, member), cart.at)
    return quote(
        programme,
        cart,
        tier=holdings.member_tier(session, member, programme),
        paid_plan=_benefits_plan(session, member, programme, cart.at, time_zone),
        coupons=[holdings.held_coupon(session, coupon) for coupon in coupons],
        selected=selected,
        points_balance=holdings.spendable_points(session, member, cart.at),
        points=points,
        policy=policy,
        time_zone=time_zone,
    )


def settle(
    session: Session,
    request: SettleRequest,
    *,
    key: str,
    actor: str,
    time_zone: ZoneInfo,
    policy: CheckoutPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> SettlementOutcome:
    """Consume the order's coupons and points at once and record the settlement (see the module doc)."""
    holdings.check_key(key)
    if not 0 < len(request.external_order_id) <= 64 or not request.external_order_id.isprintable():
        raise ValidationFailed("external_order_id has 1 to 64 printable characters")
    now = now or utc_now()
    member = holdings.live_person(session, request.person_id)
    if session.get(Channel, request.source) is None:
        raise ValidationFailed(f"source {request.source!r} is not a known channel")
    lock_keys(session, [f"checkout:{request.source}:{request.external_order_id}", f"checkout:key:{key}"])
    digest = request.digest(member)
    existing = _existing(session, request, key)
    if existing is not None:
        if (existing.source, existing.external_order_id) != (request.source, request.external_order_id):
            raise SettlementConflict(
                f"idempotency key {key!r} was used for order {existing.source}/{existing.external_order_id}",
                settlement_id=existing.id,
            )
        if existing.request_digest != digest:
            raise SettlementConflict(
                f"order {existing.source}/{existing.external_order_id} was settled with different content "
                f"(settlement {existing.id})",
                settlement_id=existing.id,
            )
        return SettlementOutcome(existing, False)

    active = holdings.active(session)
    programme = active.programme
    person_ids = holdings.person_ids_of(session, member)
    coupons = holdings.coupons_for_update(session, request.coupon_ids)
    missing = sorted(set(request.coupon_ids) - {coupon.id for coupon in coupons})
    if missing:
        raise CouponRejected(f"coupon {missing[0]} does not exist", coupon_id=missing[0])
    for coupon in coupons:
        if coupon.person_id not in person_ids:
            raise CouponRejected(f"coupon {coupon.id} is not held by this member", coupon_id=coupon.id)
    cart = Cart(request.lines, request.source, now, request.store, request.delivery_fen)
    priced = quote(
        programme,
        cart,
        tier=holdings.member_tier(session, member, programme),
        paid_plan=_benefits_plan(session, member, programme, now, time_zone),
        coupons=[holdings.held_coupon(session, coupon) for coupon in coupons],
        selected=list(request.coupon_ids),
        points_balance=holdings.spendable_points(session, member, now),
        points=request.points,
        policy=policy,
        time_zone=time_zone,
    )
    spend_key = f"checkout:{request.source}:{request.external_order_id}:points" if request.points else None
    settlement = CheckoutSettlement(
        source=request.source,
        external_order_id=request.external_order_id,
        person_id=member,
        store=request.store,
        status=SETTLED,
        programme_version_id=active.version_id,
        list_fen=priced.list_fen,
        member_discount_fen=priced.member_discount_fen,
        coupon_discount_fen=priced.coupon_discount_fen,
        points_spent=priced.points_used,
        points_value_fen=priced.points_value_fen,
        delivery_fen=priced.delivery_fen,
        payable_fen=priced.payable_fen,
        coupon_ids=list(priced.coupon_ids),
        lines=[
            [
                line.line_no,
                line.sku,
                line.category,
                line.quantity,
                line.list_fen,
                line.member_fen,
                line.coupon_fen,
                line.points_fen,
                line.payable_fen,
            ]
            for line in priced.lines
        ],
        points_spend_key=spend_key,
        points_restored=0,
        refunded_fen=0,
        request_digest=digest,
        idempotency_key=key,
        actor=actor,
        settled_at=now,
        cancelled_at=None,
    )
    session.add(settlement)
    session.flush()
    discounts = {offer.coupon_id: offer.applied_fen for offer in priced.coupons}
    redemptions = [
        CouponRedemption(
            coupon_id=coupon.id,
            person_id=coupon.person_id,
            settlement_id=settlement.id,
            discount_fen=discounts[coupon.id],
            channel=request.source,
            store=request.store,
            order_ref=request.external_order_id,
            redeemed_at=now,
            actor=actor,
            idempotency_key=f"checkout:{settlement.id}:coupon:{coupon.id}",
            released_at=None,
            release_reason=None,
        )
        for coupon in coupons
    ]
    session.add_all(redemptions)
    mark_redeemed(session, coupons, now)
    if spend_key is not None:
        spend_points(
            session,
            member,
            request.points,
            key=spend_key,
            reason=f"checkout of order {request.source}/{request.external_order_id}",
            source="checkout",
            source_ref=str(settlement.id),
            actor=actor,
            now=now,
        )
    session.flush()
    emit_redeemed(session, list(zip(coupons, redemptions, strict=True)), now)
    _emit(session, "checkout.settled", settlement, now, {"payable_fen": settlement.payable_fen})
    return SettlementOutcome(settlement, True)


def _existing(session: Session, request: SettleRequest, key: str) -> CheckoutSettlement | None:
    by_order = session.scalars(
        select(CheckoutSettlement).where(
            CheckoutSettlement.source == request.source,
            CheckoutSettlement.external_order_id == request.external_order_id,
        )
    ).first()
    if by_order is not None:
        return by_order
    return session.scalars(
        select(CheckoutSettlement).where(CheckoutSettlement.idempotency_key == key)
    ).first()


def find_settlement(
    session: Session,
    settlement_id: int | None = None,
    *,
    source: str | None = None,
    external_order_id: str | None = None,
    lock: bool = False,
) -> CheckoutSettlement:
    """Return a settlement by id or by its order's ``(source, external_order_id)``."""
    query = select(CheckoutSettlement)
    if settlement_id is not None:
        query = query.where(CheckoutSettlement.id == settlement_id)
    elif source is not None and external_order_id is not None:
        query = query.where(
            CheckoutSettlement.source == source, CheckoutSettlement.external_order_id == external_order_id
        )
    else:
        raise ValidationFailed("name a settlement by id or by source and external order id")
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalars(query).first()
    if found is None:
        raise NotFound("no such checkout settlement")
    return found


def cancel_settlement(
    session: Session, settlement_id: int, *, reason: str, actor: str, now: datetime | None = None
) -> SettlementOutcome:
    """Cancel an unrefunded settlement: its coupons and points come back. Cancelling twice changes nothing."""
    reason = holdings.check_reason(reason)
    now = now or utc_now()
    settlement = find_settlement(session, settlement_id, lock=True)
    if settlement.status == CANCELLED:
        return SettlementOutcome(settlement, False)
    if settlement.status == REFUNDED:
        raise SettlementRejected(f"settlement {settlement.id} is refunded; there is nothing left to cancel")
    if settlement.refunded_fen:
        raise SettlementRejected(
            f"settlement {settlement.id} is partly refunded: refund the rest instead of cancelling"
        )
    _release(session, settlement, reason=f"order cancelled: {reason}", actor=actor, now=now)
    settlement.status, settlement.cancelled_at = CANCELLED, now
    _emit(session, "checkout.cancelled", settlement, now, {"reason": reason})
    return SettlementOutcome(settlement, True)


def refund_settlement(
    session: Session,
    settlement_id: int,
    *,
    key: str,
    amount_fen: int | None,
    reason: str | None,
    actor: str,
    now: datetime | None = None,
) -> RefundOutcome:
    """Record money given back on a settlement (``amount_fen`` None: all that is left).

    A partial refund gives back the same share of the points the order was paid with (rounded
    down, so the points given back never run ahead of the money); once the refunds add up to the
    whole payable amount the rest of the points and the coupons are released and the settlement
    is ``refunded`` (see the module docstring).
    """
    holdings.check_key(key)
    if reason is not None:
        reason = holdings.check_reason(reason)
    now = now or utc_now()
    settlement = find_settlement(session, settlement_id, lock=True)
    previous = session.scalars(select(CheckoutRefund).where(CheckoutRefund.idempotency_key == key)).first()
    if previous is not None:
        if previous.settlement_id != settlement.id or (
            amount_fen is not None and previous.amount_fen != amount_fen
        ):
            raise SettlementConflict(
                f"idempotency key {key!r} was used for refund {previous.id} "
                f"of settlement {previous.settlement_id}",
                refund_id=previous.id,
            )
        return RefundOutcome(previous, settlement, False)
    if settlement.status != SETTLED:
        raise SettlementRejected(f"settlement {settlement.id} is {settlement.status}; it cannot be refunded")
    left = settlement.payable_fen - settlement.refunded_fen
    amount = left if amount_fen is None else amount_fen
    if amount < 0 or amount > left or (amount == 0 and left > 0):
        raise ValidationFailed(
            f"a refund of settlement {settlement.id} is 0.01 to {fen_to_yuan(left)} yuan, "
            f"not {fen_to_yuan(amount)}",
            refundable_fen=left,
        )
    settlement.refunded_fen += amount
    whole = settlement.refunded_fen == settlement.payable_fen
    refund = CheckoutRefund(
        settlement_id=settlement.id,
        amount_fen=amount,
        points_restored=0,
        coupons_released=whole and bool(settlement.coupon_ids),
        reason=reason,
        idempotency_key=key,
        actor=actor,
        refunded_at=now,
    )
    session.add(refund)
    session.flush()
    restored_before = settlement.points_restored
    if whole:
        _release(session, settlement, reason="order refunded in full", actor=actor, now=now)
        settlement.status = REFUNDED
    else:
        _release_share(session, settlement, refund_id=refund.id, actor=actor, now=now)
    refund.points_restored = settlement.points_restored - restored_before
    session.flush()
    _emit(
        session,
        "checkout.refunded",
        settlement,
        now,
        {
            "refund_id": refund.id,
            "amount_fen": amount,
            "refunded_fen": settlement.refunded_fen,
            "points_restored": refund.points_restored,
            "whole": whole,
        },
        key=f"checkout.refunded:{refund.id}",
    )
    return RefundOutcome(refund, settlement, True)


def _release(
    session: Session, settlement: CheckoutSettlement, *, reason: str, actor: str, now: datetime
) -> None:
    """Give back a settlement's coupons and points (once: the restore key is the settlement's)."""
    coupons = {coupon.id: coupon for coupon in holdings.coupons_for_update(session, settlement.coupon_ids)}
    redemptions = session.scalars(
        select(CouponRedemption)
        .where(CouponRedemption.settlement_id == settlement.id, CouponRedemption.released_at.is_(None))
        .order_by(CouponRedemption.coupon_id)
    ).all()
    release_coupons(session, [(coupons[r.coupon_id], r) for r in redemptions], reason=reason, now=now)
    if settlement.points_spend_key is not None and settlement.points_restored < settlement.points_spent:
        restore_points(
            session,
            settlement.points_spend_key,
            key=f"checkout:{settlement.id}:release:points",
            actor=actor,
            reason=f"{reason} (order {settlement.source}/{settlement.external_order_id})",
            now=now,
        )
        settlement.points_restored = settlement.points_spent


def _release_share(
    session: Session, settlement: CheckoutSettlement, *, refund_id: int, actor: str, now: datetime
) -> None:
    """Give back the points share of a partial refund: spent × refunded / payable, less what came back."""
    if settlement.points_spend_key is None or settlement.payable_fen <= 0:
        return
    due = points_share(settlement.points_spent, settlement.refunded_fen, settlement.payable_fen)
    if due <= settlement.points_restored:
        return
    restore_points(
        session,
        settlement.points_spend_key,
        key=f"checkout:{settlement.id}:refund:{refund_id}:points",
        actor=actor,
        reason=f"partial refund of order {settlement.source}/{settlement.external_order_id}",
        now=now,
        points=due - settlement.points_restored,
    )
    settlement.points_restored = due


def points_share(points_spent: int, refunded_fen: int, payable_fen: int) -> int:
    """The points a settlement has given back once ``refunded_fen`` of ``payable_fen`` is refunded.

    Rounded down until the refund is whole, so partial refunds never return more than their share
    and the last one returns the rest exactly.
    """
    if refunded_fen >= payable_fen:
        return points_spent
    return points_spent * refunded_fen // payable_fen


def _emit(
    session: Session,
    topic: str,
    settlement: CheckoutSettlement,
    now: datetime,
    extra: dict[str, Any],
    *,
    key: str | None = None,
) -> None:
    emit_many(
        session,
        [
            DomainEvent(
                topic=topic,
                payload={
                    "settlement_id": settlement.id,
                    "source": settlement.source,
                    "external_order_id": settlement.external_order_id,
                    "coupon_ids": list(settlement.coupon_ids),
                    "points": settlement.points_spent,
                    "status": settlement.status,
                    **extra,
                },
                key=key or f"{topic}:{settlement.id}",
                occurred_at=now,
                person_id=settlement.person_id,
            )
        ],
        now=now,
    )


def settlements_of(session: Session, person_id: int, *, limit: int = 50) -> list[CheckoutSettlement]:
    """Return a member's settlements, newest first."""
    member = holdings.live_person(session, person_id)
    return list(
        session.scalars(
            select(CheckoutSettlement)
            .where(CheckoutSettlement.person_id.in_(holdings.person_ids_of(session, member)))
            .order_by(CheckoutSettlement.id.desc())
            .limit(limit)
        )
    )


def coupons_of(session: Session, settlement: CheckoutSettlement) -> list[Coupon]:
    """Return the coupons a settlement used."""
    if not settlement.coupon_ids:
        return []
    return list(
        session.scalars(select(Coupon).where(Coupon.id.in_(settlement.coupon_ids)).order_by(Coupon.id))
    )
