"""``/checkout``: what a POS or mini program integrates: quote a cart, settle an order, cancel, refund.

A quote changes nothing. A settlement consumes the chosen coupons and points at once and is tied to
the order's ``(source, external_order_id)``: sent again (same ``Idempotency-Key`` or same order with
the same content) it answers 200 with the first settlement; the same order with other content is
409. Cancelling, or refunds reaching the whole amount, give the coupons and points back; a partial
refund is recorded and gives nothing back until the order is refunded in full (ADR 0007).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from memberops.api.deps import PersonReader, ServicesDep, reading, writing
from memberops.api.offers import Cashier, IdempotencyKey, OfferManager, PersonReference, person_of
from memberops.api.schemas import Instant, RowId, Text, Token, Yuan, error_responses
from memberops.kit.clock import utc_now
from memberops.kit.money import yuan_to_fen
from memberops.loyalty import checkout_service, offer_views
from memberops.loyalty.cart import MAX_LINES, MAX_QUANTITY, Cart, CartLine
from memberops.loyalty.checkout_service import SettleRequest

router = APIRouter(tags=["checkout"], responses=error_responses(401, 403, 422))


class LineIn(BaseModel):
    """One cart line at list price; ``line_no`` defaults to the line's position (from 1)."""

    model_config = ConfigDict(extra="forbid")

    line_no: int | None = Field(default=None, ge=1, le=MAX_LINES)
    sku: Token
    category: Token
    qty: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price: Yuan


def _lines(lines: list[LineIn]) -> tuple[CartLine, ...]:
    return tuple(
        CartLine(line.line_no or number, line.sku, line.category, line.qty, yuan_to_fen(line.unit_price))
        for number, line in enumerate(lines, start=1)
    )


class QuoteBody(BaseModel):
    """A member's cart. ``coupon_ids`` null lets the quote choose the best coupons; [] uses none."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "person": "phone:13800138000",
                    "channel": "pos",
                    "store": "SH001",
                    "lines": [{"sku": "DUR-MST", "category": "榴莲", "qty": 1, "unit_price": "128.00"}],
                    "points": 0,
                }
            ]
        },
    )

    person: PersonReference
    channel: Token
    store: Token | None = None
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    delivery: Yuan = "0"
    at: Instant | None = Field(default=None, description="price as of this instant (default: now)")
    coupon_ids: list[RowId] | None = Field(default=None, max_length=20)
    points: int = Field(default=0, ge=0, le=1_000_000_000)


class QuoteLine(BaseModel):
    line_no: int
    sku: str
    category: str
    quantity: int
    list_price: str
    member_price: str
    member_price_source: str | None = Field(
        description="`tier:gold`, `paid_plan:annual`, or null (list price)"
    )
    coupon: str
    points: str
    payable: str


class CouponOffer(BaseModel):
    """One of the member's coupons: what it takes off alone, what it takes in this quote, or why not."""

    coupon_id: int
    template: str
    name: str
    alone: str
    applied: str
    rejection: str | None


class PointsPart(BaseModel):
    balance: int
    usable: int = Field(description="the most points this order can take (policy cap and balance)")
    used: int
    value: str


class BenefitsPart(BaseModel):
    sources: list[str]
    member_day_multiplier: str | None
    priority_purchase: bool
    exclusive_service: bool


class QuoteView(BaseModel):
    """The priced cart: member prices, coupons, points, delivery and what is left to pay."""

    lines: list[QuoteLine]
    list_price: str
    member_discount: str
    coupon_discount: str
    coupons: list[CouponOffer]
    coupon_ids: list[int]
    coupons_chosen_by: Literal["best", "caller"]
    points: PointsPart
    delivery: str
    delivery_waived: bool
    goods_payable: str
    payable: str
    benefits: BenefitsPart


@router.post(
    "/checkout/quote", response_model=QuoteView, responses=error_responses(404, 409), summary="Quote"
)
def quote(body: QuoteBody, caller: Cashier, services: ServicesDep) -> QuoteView:
    """Price a cart for a member; nothing is written."""
    cart = Cart(
        _lines(body.lines), body.channel, body.at or utc_now(), body.store, yuan_to_fen(body.delivery)
    )
    with reading(services) as session:
        priced = checkout_service.quote_for(
            session,
            person_of(session, services, body.person),
            cart,
            selected=body.coupon_ids,
            points=body.points,
            time_zone=services.loyalty.time_zone,
        )
    return QuoteView.model_validate(offer_views.quote_view(priced))


class SettleBody(BaseModel):
    """An order to settle: the coupons (as quoted) and points the member pays with."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "pos",
                    "external_order_id": "POS-20260310-0001",
                    "person": "phone:13800138000",
                    "store": "SH001",
                    "lines": [{"sku": "DUR-MST", "category": "榴莲", "qty": 1, "unit_price": "128.00"}],
                    "coupon_ids": [12],
                    "points": 20,
                }
            ]
        },
    )

    source: Token
    external_order_id: Token
    person: PersonReference
    store: Token | None = None
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    delivery: Yuan = "0"
    coupon_ids: list[RowId] = Field(default_factory=list, max_length=20)
    points: int = Field(default=0, ge=0, le=1_000_000_000)


class SettlementLine(BaseModel):
    line_no: int
    sku: str
    category: str
    quantity: int
    list_price: str
    member_price: str
    coupon: str
    points: str
    payable: str


class SettlementView(BaseModel):
    """A settled order: what it cost, what coupons and points paid, what was refunded."""

    id: int
    source: str
    external_order_id: str
    person_id: int
    store: str | None
    status: Literal["settled", "cancelled", "refunded"]
    list_price: str
    member_discount: str
    coupon_discount: str
    points_spent: int
    points_value: str
    delivery: str
    payable: str
    refunded: str
    coupon_ids: list[int]
    lines: list[SettlementLine]
    settled_at: str
    cancelled_at: str | None


@router.post(
    "/checkout/settle",
    response_model=SettlementView,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": SettlementView, "description": "a replay"}, **error_responses(404, 409)},
    summary="Settle an order",
)
def settle(
    body: SettleBody, key: IdempotencyKey, caller: Cashier, services: ServicesDep, response: Response
) -> SettlementView:
    """Consume the coupons and points at once; a 409 (``coupon_rejected``, ``insufficient_points``…)
    changes nothing."""
    with writing(services) as session:
        request = SettleRequest(
            source=body.source,
            external_order_id=body.external_order_id,
            person_id=person_of(session, services, body.person),
            lines=_lines(body.lines),
            store=body.store,
            delivery_fen=yuan_to_fen(body.delivery),
            coupon_ids=tuple(body.coupon_ids),
            points=body.points,
        )
        outcome = checkout_service.settle(
            session, request, key=key, actor=caller.name, time_zone=services.loyalty.time_zone
        )
        view = SettlementView.model_validate(offer_views.settlement_view(outcome.settlement))
    response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
    return view


SettlementPath = Annotated[RowId, Path(description="the settlement's id")]


@router.get("/checkout/{settlement_id}", response_model=SettlementView, responses=error_responses(404))
def get_settlement(
    settlement_id: SettlementPath, caller: PersonReader, services: ServicesDep
) -> SettlementView:
    """Return a settlement."""
    with reading(services) as session:
        found = checkout_service.find_settlement(session, settlement_id)
        return SettlementView.model_validate(offer_views.settlement_view(found))


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text


@router.post(
    "/checkout/{settlement_id}/cancel",
    response_model=SettlementView,
    responses=error_responses(404, 409),
    summary="Cancel a settlement",
)
def cancel(
    settlement_id: SettlementPath, body: CancelBody, caller: Cashier, services: ServicesDep
) -> SettlementView:
    """Give the order's coupons and points back; cancelling again changes nothing."""
    with writing(services) as session:
        outcome = checkout_service.cancel_settlement(
            session, settlement_id, reason=body.reason, actor=caller.name
        )
        return SettlementView.model_validate(offer_views.settlement_view(outcome.settlement))


class RefundBody(BaseModel):
    """Money given back; ``amount`` omitted refunds all that is left."""

    model_config = ConfigDict(extra="forbid")

    amount: Yuan | None = None
    reason: Text | None = None


class RefundView(BaseModel):
    id: int
    settlement_id: int
    amount: str
    points_restored: int
    coupons_released: bool
    reason: str | None
    refunded_at: str


class RefundResult(BaseModel):
    """The refund and the settlement after it."""

    refund: RefundView
    settlement: SettlementView
    created: bool


@router.post(
    "/checkout/{settlement_id}/refunds",
    response_model=RefundResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": RefundResult, "description": "a replay"}, **error_responses(404, 409)},
    summary="Refund a settlement",
)
def refund(
    settlement_id: SettlementPath,
    body: RefundBody,
    key: IdempotencyKey,
    caller: OfferManager,
    services: ServicesDep,
    response: Response,
) -> RefundResult:
    """Record a refund; the one that completes the order gives its coupons and points back."""
    with writing(services) as session:
        outcome = checkout_service.refund_settlement(
            session,
            settlement_id,
            key=key,
            amount_fen=yuan_to_fen(body.amount) if body.amount is not None else None,
            reason=body.reason,
            actor=caller.name,
        )
        result = RefundResult(
            refund=RefundView.model_validate(offer_views.refund_view(outcome.refund)),
            settlement=SettlementView.model_validate(offer_views.settlement_view(outcome.settlement)),
            created=outcome.created,
        )
    response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
    return result
