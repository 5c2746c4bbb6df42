"""Builders for the loyalty integration tests: a programme, members, orders, refunds, figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from memberops.ingest.records import RefundIn, parse_event, parse_order
from memberops.kit.clock import parse_instant
from memberops.kit.db import unit_of_work
from memberops.kit.money import yuan_to_fen
from memberops.loyalty.programme import Programme, demo_programme, load_programme
from memberops.models import MemberTier, PointsAccount, PointsEntry
from memberops.wiring import Services


def programme_with(change: Callable[[dict[str, Any]], None] | None = None, **top: Any) -> Programme:
    """The demo programme with ``change`` applied to its JSON document (and top-level keys set)."""
    document = json.loads(demo_programme().canonical_json())
    document.update(top)
    if change is not None:
        change(document)
    return load_programme(json.dumps(document), "json")


def plain_programme(**top: Any) -> Programme:
    """The demo programme without caps, promotions, member days or multipliers: 1 point per 10 yuan."""

    def strip(document: dict[str, Any]) -> None:
        document["earn"]["caps"] = {}
        document["earn"]["promotions"] = []
        document["earn"]["multipliers"] = {}
        for tier in document["tiers"]:
            tier["benefits"]["member_day"] = None

    return programme_with(strip, version="plain", **top)


def apply(services: Services, programme: Programme | None = None) -> int:
    with unit_of_work(services.sessions) as session:
        active, _ = services.loyalty.apply_programme(session, programme or demo_programme(), actor="test")
    return active.version_id


def member(services: Services, phone: str, joined: str = "2026-01-01T00:00:00+08:00") -> int:
    """Register a member by phone; return the person id."""
    event = {
        "type": "register",
        "occurred_at": joined,
        "field": "pos",
        "phone": phone,
        "external_id": f"r{phone}",
    }
    with unit_of_work(services.sessions) as session:
        [outcome] = services.ingest.ingest_events(session, [parse_event(event)], actor="test")
    assert outcome.person_id is not None
    return outcome.person_id


def buy(
    services: Services,
    external_id: str,
    phone: str,
    amount: str,
    paid_at: str = "2026-03-02T12:00:00+08:00",
    **fields: Any,
) -> int:
    """Ingest an order (through the loyalty-aware ingest, so it earns); return the order id."""
    raw = {"source": "pos", "external_id": external_id, "paid_at": paid_at, "amount": amount, "phone": phone}
    with unit_of_work(services.sessions) as session:
        [outcome] = services.ingest.ingest_orders(session, [parse_order({**raw, **fields})], actor="test")
    assert outcome.order_id is not None, outcome.rejection
    return outcome.order_id


def refund(
    services: Services,
    order_external_id: str,
    external_id: str,
    amount: str,
    at: str = "2026-03-05T12:00:00+08:00",
) -> int:
    with unit_of_work(services.sessions) as session:
        row, _ = services.ingest.ingest_refund(
            session,
            RefundIn(
                source="pos",
                external_id=external_id,
                order_external_id=order_external_id,
                refunded_at=parse_instant(at),
                amount_fen=yuan_to_fen(amount),
                reason=None,
            ),
        )
        return row.id


def balance(services: Services, person_id: int) -> int:
    with unit_of_work(services.read_sessions) as session:
        account = session.get(PointsAccount, person_id)
        return account.balance if account else 0


def debt(services: Services, person_id: int) -> int:
    with unit_of_work(services.read_sessions) as session:
        account = session.get(PointsAccount, person_id)
        return account.debt if account else 0


def tier(services: Services, person_id: int) -> str | None:
    with unit_of_work(services.read_sessions) as session:
        row = session.get(MemberTier, person_id)
        return row.tier if row else None


def entries(services: Services, person_id: int) -> list[tuple[str, int]]:
    """The member's entries as (kind, delta), oldest first."""
    with unit_of_work(services.read_sessions) as session:
        return [
            (kind, delta)
            for kind, delta in session.execute(
                select(PointsEntry.kind, PointsEntry.delta)
                .where(PointsEntry.person_id == person_id)
                .order_by(PointsEntry.id)
            )
        ]


def entry_count(services: Services) -> int:
    with unit_of_work(services.read_sessions) as session:
        return int(session.scalar(select(func.count(PointsEntry.id))) or 0)


def problems(services: Services) -> list[str]:
    with unit_of_work(services.read_sessions) as session:
        return [str(problem) for problem in services.loyalty.check(session)]
