"""Small builders shared by the integration tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from memberops.ingest.records import parse_event, parse_order
from memberops.ingest.service import EventOutcome, OrderOutcome
from memberops.kit.db import unit_of_work
from memberops.models import Base
from memberops.wiring import Services


def order(external_id: str, source: str = "pos", amount: str = "10.00", **fields: Any) -> dict[str, Any]:
    return {
        "source": source,
        "external_id": external_id,
        "paid_at": "2026-03-01T12:00:00+08:00",
        "amount": amount,
        **fields,
    }


def ingest(services: Services, *orders: dict[str, Any]) -> list[OrderOutcome]:
    with unit_of_work(services.sessions) as session:
        return services.ingest.ingest_orders(session, [parse_order(o) for o in orders], actor="test")


def event(kind: str, field: str = "mini_program", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "occurred_at": "2026-03-02T12:00:00+08:00", "field": field, **fields}


def ingest_events(services: Services, *events: dict[str, Any]) -> list[EventOutcome]:
    with unit_of_work(services.sessions) as session:
        return services.ingest.ingest_events(session, [parse_event(e) for e in events], actor="test")


def counts(services: Services) -> dict[str, int]:
    """Row counts of every table: the 'nothing changed' check of rejected actions."""
    with unit_of_work(services.read_sessions) as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def person_of(session: Session, source: str, external_id: str) -> int | None:
    return session.execute(
        text("SELECT person_id FROM orders WHERE source = :s AND external_id = :e"),
        {"s": source, "e": external_id},
    ).scalar_one()


def live_persons(services: Services) -> int:
    with unit_of_work(services.read_sessions) as session:
        return int(
            session.execute(text("SELECT count(*) FROM persons WHERE merged_into_id IS NULL")).scalar_one()
        )
