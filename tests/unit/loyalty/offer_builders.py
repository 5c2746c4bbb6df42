"""Builders shared by the unit tests of coupons, benefits, plans and the checkout quote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from memberops.loyalty.cart import Cart, CartLine, PricedLine
from memberops.loyalty.coupons import CouponStatus, HeldCoupon
from memberops.loyalty.offers import CouponTemplate

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-03-10 10:00 in Shanghai: a Tuesday, no member day.
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def template(code: str = "t", kind: str = "fixed_amount", **fields: Any) -> CouponTemplate:
    """A coupon template; fixed 10 off 59 valid 30 days unless ``fields`` say otherwise."""
    body: dict[str, Any] = {"code": code, "name": code, "kind": kind, "validity": {"days": 30}}
    if kind == "percentage":
        body["percent_off"] = 10
    else:
        body["amount"] = "10"
    if kind == "fixed_amount":
        body["min_spend"] = "59"
    body.update(fields)
    return CouponTemplate.model_validate(body)


def held(
    coupon_id: int,
    coupon_template: CouponTemplate,
    status: CouponStatus = "issued",
    *,
    valid_from: datetime = NOW - timedelta(days=1),
    valid_until: datetime = NOW + timedelta(days=10),
) -> HeldCoupon:
    return HeldCoupon(coupon_id, coupon_template, status, valid_from, valid_until)


def priced(*amounts: int, category: str = "fruit") -> list[PricedLine]:
    """Lines 1, 2, … of ``amounts`` fen, SKUs S1, S2, …"""
    return [PricedLine(n, f"S{n}", category, amount) for n, amount in enumerate(amounts, start=1)]


def cart(*lines: tuple[str, str, int, int], channel: str = "pos", at: datetime = NOW, **fields: Any) -> Cart:
    """A cart of ``(sku, category, quantity, unit fen)`` lines numbered from 1."""
    return Cart(
        lines=tuple(CartLine(n, *line) for n, line in enumerate(lines, start=1)),
        channel=channel,
        at=at,
        **fields,
    )
