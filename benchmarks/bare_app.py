"""The baseline for the API load test: FastAPI, a pydantic body, and one INSERT per request.

It is the cheapest honest way to accept the same order over HTTP with the same stack (uvicorn, one
worker, FastAPI's thread pool for a sync endpoint, SQLAlchemy with ``make_engine``'s pool), so the
ratio ours/bare isolates what memberops adds per request: authentication, validation, OneID
resolution and the order's lines.

Served as ``uvicorn --factory benchmarks.bare_app:create_bare_app`` with ``BENCH_BARE_URL`` set.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import BigInteger, Column, DateTime, Engine, MetaData, String, Table, UniqueConstraint, insert

from memberops.kit.db import make_engine

metadata = MetaData()
#: A plain table with the order's own columns; no foreign keys, one unique key like ``orders``.
bare_orders = Table(
    "bench_bare_orders",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source", String(32), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("phone", String(32)),
    Column("paid_at", DateTime(timezone=True), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("source", "external_id", name="uq_bench_bare_orders"),
)


class BareOrder(BaseModel):
    """The fields of the benchmark's order body that the bare endpoint stores."""

    source: str
    external_id: str
    paid_at: AwareDatetime
    amount: str
    phone: str | None = None
    items: list[dict[str, Any]] | None = None


def create_schema(engine: Engine) -> None:
    """Create the bare table (the parent does this before the server starts)."""
    metadata.create_all(engine)


def create_bare_app(url: str | None = None) -> FastAPI:
    """Return the bare app writing to ``url`` (default: ``BENCH_BARE_URL``)."""
    engine = make_engine(url or os.environ["BENCH_BARE_URL"])
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/orders", status_code=201)
    def create_order(body: BareOrder) -> dict[str, Any]:
        with engine.begin() as connection:
            order_id = connection.execute(
                insert(bare_orders).returning(bare_orders.c.id),
                {
                    "source": body.source,
                    "external_id": body.external_id,
                    "phone": body.phone,
                    "paid_at": body.paid_at,
                    "amount_fen": int(Decimal(body.amount) * 100),
                    "created_at": datetime.now(UTC),
                },
            ).scalar_one()
        return {"order_id": order_id, "created": True}

    return app
