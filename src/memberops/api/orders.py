"""``POST /orders`` and ``POST /refunds``: sales from any channel, idempotent on their natural key.

An order goes through ``records.parse_order`` and ``IngestService.ingest_orders``, the path the
bulk importer takes, so a row gets the same verdict whichever door it came in by. A replay of
``(source, external_id)`` answers 200 with what was stored the first time and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from memberops.api.deps import Ingestor, IntakeDep, ServicesDep, writing
from memberops.api.schemas import (
    IdentifierFields,
    Instant,
    Text,
    Token,
    Yuan,
    error_responses,
    iso,
    safe_text,
)
from memberops.ingest.records import RefundIn, parse_order
from memberops.kit.money import fen_to_yuan, yuan_to_fen

router = APIRouter(tags=["ingest"], responses=error_responses(401, 403, 422))

_ORDER_EXAMPLE: dict[str, JsonValue] = {
    "source": "pos",
    "external_id": "POS-20260301-0001",
    "paid_at": "2026-03-01T12:30:00+08:00",
    "amount": "36.80",
    "store": "SH001",
    "phone": "+86 138 0013 8000",
    "items": [{"sku": "LATTE-M", "category": "coffee", "qty": 2, "amount": "36.80"}],
}


class OrderItem(BaseModel):
    """One order line; ``amount`` is the line total."""

    model_config = ConfigDict(extra="forbid")

    sku: Token
    # The column is 64 characters wide (records.parse_order checks it too; the schema says it).
    category: Annotated[str, StringConstraints(max_length=64), AfterValidator(safe_text)] = ""
    qty: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    amount: Yuan


class OrderRequest(IdentifierFields):
    """A canonical order (docs/import-formats.md, "Orders"): who paid what, where and when."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_ORDER_EXAMPLE]})

    source: Token = Field(description="the channel the order came from: `pos`, `mini_program`, `tmall`, …")
    external_id: Token = Field(description="the order id in that channel; `(source, external_id)` is unique")
    paid_at: Instant
    amount: Yuan
    store: Token | None = Field(default=None, description="a known store code")
    status: Literal["paid", "refunded"] = "paid"
    refund_amount: Yuan | None = Field(default=None, description="a partial refund, in yuan")
    refunded_at: Instant | None = None
    items: Annotated[list[OrderItem], Field(max_length=500)] | None = None
    share_id: Token | None = Field(default=None, description="the share that led to this order")

    def raw(self) -> dict[str, Any]:
        """Return the canonical row ``parse_order`` reads (instants as ISO 8601 in UTC)."""
        row = super().raw()
        for name in ("paid_at", "refunded_at"):
            if isinstance(row.get(name), datetime):
                row[name] = iso(row[name])
        return row


class OrderStored(BaseModel):
    """The order as stored (on a replay: as stored the first time)."""

    order_id: int
    person_id: int | None = Field(description="the person it was attributed to; null for a guest order")
    created: bool = Field(description="false when the order was already there (nothing changed)")
    source: str
    external_id: str
    paid_at: datetime
    amount: str = Field(examples=["36.80"])


class RefundRequest(BaseModel):
    """Money given back on a stored order, whole or in part."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "pos",
                    "external_id": "RF-0001",
                    "order_external_id": "POS-20260301-0001",
                    "amount": "18.40",
                    "refunded_at": "2026-03-02T10:00:00+08:00",
                    "reason": "one cup spilled",
                }
            ]
        },
    )

    source: Token = Field(description="the channel of the order")
    external_id: Token = Field(description="the refund's id in that channel; a replay changes nothing")
    order_external_id: Token
    amount: Yuan
    refunded_at: Instant
    reason: Text | None = None


class RefundStored(BaseModel):
    """The refund as stored (on a replay: the first one)."""

    refund_id: int
    order_id: int
    created: bool
    source: str
    external_id: str
    amount: str = Field(examples=["18.40"])
    refunded_at: datetime
    reason: str | None


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderStored,
    responses={200: {"model": OrderStored, "description": "a replay: the order was already stored"}},
    summary="Record an order",
)
async def create_order(
    body: OrderRequest, caller: Ingestor, intake: IntakeDep, response: Response
) -> OrderStored:
    """Store an order and attribute it to a person through OneID (201), or confirm a replay (200).

    Async on purpose: the order is validated here and written by the intake's writer thread
    together with the orders other requests sent meanwhile (``ingest.intake``), so no request
    holds a thread-pool thread or a transaction of its own while it waits.
    """
    order = parse_order(body.raw())
    written = await intake.submit(order, actor=caller.name)
    if not written.created:
        response.status_code = status.HTTP_200_OK
    return OrderStored(
        order_id=written.order_id,
        person_id=written.person_id,
        created=written.created,
        source=order.source,
        external_id=order.external_id,
        paid_at=written.paid_at,
        amount=fen_to_yuan(written.amount_fen),
    )


@router.post(
    "/refunds",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundStored,
    responses={
        200: {"model": RefundStored, "description": "a replay: the refund was already stored"},
        **error_responses(404, 409),
    },
    summary="Record a refund",
)
def create_refund(
    body: RefundRequest, caller: Ingestor, services: ServicesDep, response: Response
) -> RefundStored:
    """Store a refund on a known order (201); refunds never add up to more than the order (409)."""
    refund = RefundIn(
        source=body.source,
        external_id=body.external_id,
        order_external_id=body.order_external_id,
        refunded_at=body.refunded_at,
        amount_fen=yuan_to_fen(body.amount),
        reason=body.reason,
    )
    with writing(services) as session:
        row, created = services.ingest.ingest_refund(session, refund)
        result = RefundStored(
            refund_id=row.id,
            order_id=row.order_id,
            created=created,
            source=row.source,
            external_id=row.external_id,
            amount=fen_to_yuan(row.amount_fen),
            refunded_at=row.refunded_at,
            reason=row.reason,
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return result
