"""Orders, refunds and events through the ingestion service (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from memberops.ingest.records import RefundIn
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.wiring import Services
from tests.integration.helpers import counts, event, ingest, ingest_events, order

ITEMS = '[{"sku": "D1", "category": "榴莲", "qty": 1, "amount": "60.00"}, {"sku": "C1", "category": "车厘子", "qty": 2, "amount": "40.00"}]'


def refund(external_id: str, amount_fen: int, order_external_id: str = "P1") -> RefundIn:
    return RefundIn(
        "pos", external_id, order_external_id, datetime(2026, 3, 5, tzinfo=UTC), amount_fen, "bruised"
    )


def store_refund(services: Services, item: RefundIn) -> bool:
    with unit_of_work(services.sessions) as session:
        _, created = services.ingest.ingest_refund(session, item)
    return created


def test_an_order_is_stored_with_its_lines_in_fen(services: Services) -> None:
    [outcome] = ingest(
        services, order("P1", amount="100.00", phone="13800138000", items=ITEMS, share_id="S1")
    )
    assert outcome.created is True
    with unit_of_work(services.read_sessions) as session:
        row = session.execute(
            text("SELECT source, external_id, amount_fen, share_id, paid_at FROM orders")
        ).one()
        lines = session.execute(
            text("SELECT line_no, sku, category, quantity, amount_fen FROM order_lines ORDER BY line_no")
        ).all()
    assert tuple(row[:4]) == ("pos", "P1", 10000, "S1")
    assert [tuple(line) for line in lines] == [(1, "D1", "榴莲", 1, 6000), (2, "C1", "车厘子", 2, 4000)]


def test_a_replayed_order_returns_the_first_result_even_with_other_content(services: Services) -> None:
    [first] = ingest(services, order("P1", phone="13800138000"))
    before = counts(services)
    [again] = ingest(services, order("P1", amount="99.00", phone="13900139000"))
    assert (again.order_id, again.person_id, again.created) == (first.order_id, first.person_id, False)
    assert counts(services) == before


def test_unknown_store_and_channel_are_rejected_and_nothing_is_written(services: Services) -> None:
    before = counts(services)
    outcomes = ingest(services, order("P1", store="NOPE", phone="13800138000"), order("X1", source="shopee"))
    assert [o.rejection for o in outcomes] == [
        "store 'NOPE' is not a known store",
        "source 'shopee' is not a known channel",
    ]
    assert counts(services) == before


def test_guest_orders_belong_to_nobody(services: Services) -> None:
    [outcome] = ingest(services, order("G1"))
    assert (outcome.created, outcome.person_id) == (True, None)
    assert counts(services)["persons"] == 0


def test_partial_and_full_refunds_never_exceed_the_order(services: Services) -> None:
    ingest(services, order("P1", amount="100.00", phone="13800138000"))
    assert store_refund(services, refund("R1", 3000)) is True
    assert store_refund(services, refund("R1", 3000)) is False  # replay
    assert store_refund(services, refund("R2", 7000)) is True
    before = counts(services)
    with pytest.raises(Conflict, match="refunds would exceed the order: 10000 fen paid, 10000 fen refunded"):
        store_refund(services, refund("R3", 1))
    with pytest.raises(Conflict, match="already exists with different content"):
        store_refund(services, refund("R1", 2000))
    with pytest.raises(NotFound, match="order pos/P404 does not exist"):
        store_refund(services, refund("R4", 100, order_external_id="P404"))
    with pytest.raises(ValidationFailed, match="more than zero"):
        store_refund(services, refund("R5", 0))
    assert counts(services) == before


def test_a_refunded_order_in_a_file_carries_its_refund(services: Services) -> None:
    ingest(
        services,
        order("P1", amount="50.00", status="refunded"),
        order("P2", amount="50.00", refund_amount="20.00"),
    )
    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(text("SELECT external_id, amount_fen FROM refunds ORDER BY external_id")).all()
    assert [tuple(r) for r in rows] == [("P1#refund", 5000), ("P2#refund", 2000)]


def test_register_cancel_and_consent_events_change_membership_and_consent(services: Services) -> None:
    outcomes = ingest_events(
        services,
        event("register", phone="13800138000", member_no="C1", external_id="e1"),
        {
            **event("consent", phone="13800138000", external_id="e2"),
            "attributes": {"channel": "sms", "granted": True},
        },
        {
            **event("cancel_membership", phone="13800138000", external_id="e3"),
            "occurred_at": "2026-04-01T09:00:00+08:00",
        },
        {
            **event("register", phone="13800138000", external_id="e4"),
            "occurred_at": "2026-05-01T09:00:00+08:00",
        },
    )
    assert [o.created for o in outcomes] == [True, True, True, True]
    with unit_of_work(services.read_sessions) as session:
        spells = session.execute(text("SELECT member_no, status FROM memberships ORDER BY id")).all()
        consent = session.execute(text("SELECT channel, granted, field FROM consents")).one()
    assert [tuple(s) for s in spells] == [("C1", "cancelled"), (None, "active")]
    assert (consent[0], bool(consent[1]), consent[2]) == ("sms", True, "mini_program")
    before = counts(services)
    again = ingest_events(services, event("register", phone="13800138000", member_no="C1", external_id="e1"))
    assert again[0].created is False
    assert counts(services) == before


def test_registering_twice_keeps_one_membership(services: Services) -> None:
    ingest_events(
        services,
        event("register", phone="13800138000", external_id="a"),
        event("register", phone="13800138000", external_id="b"),
    )
    assert counts(services)["memberships"] == 1


def test_share_events_keep_the_share_id_for_referral_tracking(services: Services) -> None:
    ingest_events(
        services,
        {**event("share", openid="oX1"), "attributes": {"share_id": "S9", "target": "product", "sku": "D1"}},
    )
    ingest(services, order("M1", source="mini_program", openid="oNEW", share_id="S9"))
    with unit_of_work(services.read_sessions) as session:
        sharer, buyer = session.execute(
            text("SELECT e.person_id, o.person_id FROM events e JOIN orders o ON o.share_id = e.share_id")
        ).one()
    assert (sharer, buyer) == (1, 2)
