"""Orders, their lines and refunds, in integer fen; orders are immutable once stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base


class Order(Base):
    """A paid order from one source; ``(source, external_id)`` makes every write idempotent.

    ``identifier_id`` is the identifier the order was attributed by, so undoing a wrong merge
    knows which person each order goes back to. A guest order has neither person nor identifier.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_orders_person_paid", "person_id", "paid_at"),
        Index("ix_orders_paid_at", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    external_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    identifier_id: Mapped[int | None] = mapped_column(ForeignKey("identifiers.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    share_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OrderLine(Base):
    """A line of an order: what was bought, for how much (the line total, in fen)."""

    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class Refund(Base):
    """Money given back on an order, whole or in part; the refunds of an order never exceed it."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    source: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    external_id: Mapped[str] = mapped_column(String(64))
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
