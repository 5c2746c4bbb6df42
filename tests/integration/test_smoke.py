"""The store migrates and takes an order on both backends."""

from memberops.ingest.records import parse_order
from memberops.kit.db import unit_of_work
from memberops.wiring import Services


def test_an_order_creates_a_person(services: Services) -> None:
    order = parse_order(
        {
            "source": "pos",
            "external_id": "P1",
            "paid_at": "2026-03-01T12:00:00+08:00",
            "amount": "1.00",
            "phone": "13800138000",
        }
    )
    with unit_of_work(services.sessions) as session:
        [outcome] = services.ingest.ingest_orders(session, [order], actor="test")
    assert outcome.created is True
    assert outcome.person_id == 1
