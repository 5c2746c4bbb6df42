"""Read models of coupons, rewards, plans and checkout: JSON-ready dicts for the API and the CLI.

Money is a yuan string (``"36.80"``), instants ISO 8601 in UTC, codes of ours in groups of four.
The API validates these dicts into its response models; the CLI prints them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.kit.errors import ValidationFailed
from memberops.kit.money import fen_to_yuan
from memberops.loyalty import holdings
from memberops.loyalty.coupons import COUPON_STATUSES, format_code
from memberops.loyalty.plans import PlanRefund, PlanStatus
from memberops.loyalty.pricing import Quote
from memberops.loyalty.rewards import CatalogueItem
from memberops.models import CheckoutRefund, CheckoutSettlement, Coupon, PaidPlanTerm, RewardRedemption


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def coupon_view(coupon: Coupon) -> dict[str, Any]:
    """One coupon."""
    return {
        "id": coupon.id,
        "code": format_code(coupon.code),
        "template": coupon.template_code,
        "person_id": coupon.person_id,
        "status": coupon.status,
        "valid_from": _iso(coupon.valid_from),
        "valid_until": _iso(coupon.valid_until),
        "source": coupon.source,
        "pack": coupon.pack_code,
        "external": coupon.external,
        "reason": coupon.reason,
        "issued_at": _iso(coupon.issued_at),
        "issued_by": coupon.issued_by,
        "redeemed_at": _iso(coupon.redeemed_at),
        "programme_version_id": coupon.programme_version_id,
    }


def coupons_of(
    session: Session, person_id: int, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Return a member's coupons, newest first (optionally of one status)."""
    if status is not None and status not in COUPON_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(COUPON_STATUSES)}")
    member = holdings.live_person(session, person_id)
    query = select(Coupon).where(Coupon.person_id.in_(holdings.person_ids_of(session, member)))
    if status is not None:
        query = query.where(Coupon.status == status)
    return [coupon_view(c) for c in session.scalars(query.order_by(Coupon.id.desc()).limit(limit))]


def quote_view(quote: Quote) -> dict[str, Any]:
    """A checkout quote."""
    return {
        "lines": [
            {
                "line_no": line.line_no,
                "sku": line.sku,
                "category": line.category,
                "quantity": line.quantity,
                "list_price": fen_to_yuan(line.list_fen),
                "member_price": fen_to_yuan(line.member_fen),
                "member_price_source": line.member_price_source,
                "coupon": fen_to_yuan(line.coupon_fen),
                "points": fen_to_yuan(line.points_fen),
                "payable": fen_to_yuan(line.payable_fen),
            }
            for line in quote.lines
        ],
        "list_price": fen_to_yuan(quote.list_fen),
        "member_discount": fen_to_yuan(quote.member_discount_fen),
        "coupon_discount": fen_to_yuan(quote.coupon_discount_fen),
        "coupons": [
            {
                "coupon_id": offer.coupon_id,
                "template": offer.template_code,
                "name": offer.name,
                "alone": fen_to_yuan(offer.alone_fen),
                "applied": fen_to_yuan(offer.applied_fen),
                "rejection": offer.rejection,
            }
            for offer in quote.coupons
        ],
        "coupon_ids": list(quote.coupon_ids),
        "coupons_chosen_by": quote.coupons_chosen_by,
        "points": {
            "balance": quote.points_balance,
            "usable": quote.points_usable,
            "used": quote.points_used,
            "value": fen_to_yuan(quote.points_value_fen),
        },
        "delivery": fen_to_yuan(quote.delivery_fen),
        "delivery_waived": quote.delivery_waived,
        "goods_payable": fen_to_yuan(quote.goods_payable_fen),
        "payable": fen_to_yuan(quote.payable_fen),
        "benefits": {
            "sources": list(quote.benefit_sources),
            "member_day_multiplier": (
                str(quote.member_day_multiplier) if quote.member_day_multiplier is not None else None
            ),
            "priority_purchase": quote.priority_purchase,
            "exclusive_service": quote.exclusive_service,
        },
    }


_LINE_FIELDS = (
    "line_no",
    "sku",
    "category",
    "quantity",
    "list_price",
    "member_price",
    "coupon",
    "points",
    "payable",
)


def settlement_view(settlement: CheckoutSettlement) -> dict[str, Any]:
    """A checkout settlement."""
    return {
        "id": settlement.id,
        "source": settlement.source,
        "external_order_id": settlement.external_order_id,
        "person_id": settlement.person_id,
        "store": settlement.store,
        "status": settlement.status,
        "list_price": fen_to_yuan(settlement.list_fen),
        "member_discount": fen_to_yuan(settlement.member_discount_fen),
        "coupon_discount": fen_to_yuan(settlement.coupon_discount_fen),
        "points_spent": settlement.points_spent,
        "points_value": fen_to_yuan(settlement.points_value_fen),
        "delivery": fen_to_yuan(settlement.delivery_fen),
        "payable": fen_to_yuan(settlement.payable_fen),
        "refunded": fen_to_yuan(settlement.refunded_fen),
        "coupon_ids": list(settlement.coupon_ids),
        "lines": [
            {
                name: (fen_to_yuan(value) if index >= 4 else value)
                for index, (name, value) in enumerate(zip(_LINE_FIELDS, line, strict=True))
            }
            for line in settlement.lines
        ],
        "settled_at": _iso(settlement.settled_at),
        "cancelled_at": _iso(settlement.cancelled_at),
    }


def refund_view(refund: CheckoutRefund) -> dict[str, Any]:
    """A refund recorded on a settlement."""
    return {
        "id": refund.id,
        "settlement_id": refund.settlement_id,
        "amount": fen_to_yuan(refund.amount_fen),
        "points_restored": refund.points_restored,
        "coupons_released": refund.coupons_released,
        "reason": refund.reason,
        "refunded_at": _iso(refund.refunded_at),
    }


def term_view(term: PaidPlanTerm) -> dict[str, Any]:
    """One bought term of a paid plan."""
    return {
        "id": term.id,
        "plan": term.plan_code,
        "kind": term.kind,
        "starts_at": _iso(term.starts_at),
        "ends_at": _iso(term.ends_at),
        "price": fen_to_yuan(term.price_fen),
        "status": term.status,
        "paid_at": _iso(term.paid_at),
        "payment_ref": term.payment_ref,
        "refund": fen_to_yuan(term.refund_fen) if term.refund_fen is not None else None,
        "refunded_at": _iso(term.refunded_at),
    }


def status_view(status: PlanStatus) -> dict[str, Any]:
    """A member's plan status on an instant."""
    return {
        "status": status.status,
        "plan": status.plan_code,
        "ends_at": _iso(status.ends_at),
        "grace_ends_at": _iso(status.grace_ends_at),
        "in_grace": status.in_grace,
    }


def plan_refund_view(refund: PlanRefund | None) -> dict[str, Any] | None:
    """What a plan refund paid back and by which rule."""
    if refund is None:
        return None
    return {
        "amount": fen_to_yuan(refund.amount_fen),
        "rule": refund.rule,
        "days_total": refund.days_total,
        "days_left": refund.days_left,
    }


def plan_of(session: Session, person_id: int, status: PlanStatus) -> dict[str, Any]:
    """A member's plan status and every term they bought, newest first."""
    member = holdings.live_person(session, person_id)
    terms = holdings.terms_of(session, holdings.person_ids_of(session, member))
    return {
        "person_id": member,
        **status_view(status),
        "terms": [term_view(term) for term in sorted(terms, key=lambda t: t.id, reverse=True)],
    }


def catalogue_view(item: CatalogueItem) -> dict[str, Any]:
    """A reward of the catalogue."""
    return {
        "code": item.code,
        "name": item.name,
        "points_price": item.points_price,
        "stock_left": item.stock_left,
        "limit_per_member": item.limit_per_member,
        "redeemed_by_member": item.redeemed_by_member,
        "grants": item.grants,
        "rejection": item.rejection,
    }


def redemption_view(redemption: RewardRedemption, coupon: Coupon | None = None) -> dict[str, Any]:
    """A reward redemption (with the coupon it granted, if any)."""
    return {
        "id": redemption.id,
        "person_id": redemption.person_id,
        "reward": redemption.reward_code,
        "points": redemption.points_price,
        "status": redemption.status,
        "coupon": coupon_view(coupon) if coupon is not None else None,
        "redeemed_at": _iso(redemption.redeemed_at),
        "cancelled_at": _iso(redemption.cancelled_at),
        "cancel_reason": redemption.cancel_reason,
    }
