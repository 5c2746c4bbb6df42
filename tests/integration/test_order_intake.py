"""API orders written in groups (``ingest.intake.OrderIntake``) on SQLite and PostgreSQL.

Whatever shares a batch, every caller gets what writing the orders one at a time, in arrival
order, would have given it; a batch that fails leaves nothing and each order is written alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from memberops.ingest.intake import OrderIntake, OrderSubmission, OrderWritten
from memberops.ingest.records import OrderIn, RecordRejected, parse_order
from memberops.ingest.service import IngestService, OrderOutcome
from memberops.kit.db import unit_of_work
from memberops.wiring import Services
from tests.integration.helpers import counts, order


def submission(external_id: str, actor: str = "pos-key", **fields: str) -> OrderSubmission:
    return OrderSubmission(parse_order(order(external_id, **fields)), actor)


def stored_orders(services: Services) -> list[tuple[str, int, int | None]]:
    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(text("SELECT external_id, amount_fen, person_id FROM orders ORDER BY id"))
        return [(external_id, amount, person) for external_id, amount, person in rows]


def test_a_batch_answers_each_order_as_if_it_had_come_alone(services: Services) -> None:
    intake = OrderIntake(services.sessions, services.ingest)
    results = intake.write(
        [
            submission("A", amount="12.00", phone="13800138000"),
            submission("X", store="NOPE", phone="13700137000"),
            submission("A", amount="99.00", phone="13900139000"),  # a replay with other content
            submission("B", amount="5.50", phone="138-0013-8000", actor="mini-key"),
        ]
    )
    first, rejected, replay, second = results
    assert isinstance(first, OrderWritten) and isinstance(second, OrderWritten)
    assert isinstance(rejected, RecordRejected) and str(rejected) == "store 'NOPE' is not a known store"
    assert replay == OrderWritten(
        first.order_id, first.person_id, False, datetime(2026, 3, 1, 4, tzinfo=UTC), 1200
    )
    assert (first.created, second.created) == (True, True)
    assert second.person_id == first.person_id  # the same phone in another format: one person
    assert stored_orders(services) == [("A", 1200, first.person_id), ("B", 550, first.person_id)]


class FailsInCompany(IngestService):
    """Fails any batch of more than one order that holds ``BAD`` (as a deadlock would)."""

    def ingest_orders(self, session: Session, orders: Sequence[OrderIn], *, actor: str) -> list[OrderOutcome]:
        outcomes = super().ingest_orders(session, orders, actor=actor)  # written, then undone
        if any(o.external_id == "BAD" for o in orders):
            raise RuntimeError("deadlock detected" if len(orders) > 1 else "BAD alone fails too")
        return outcomes


def test_a_failed_batch_leaves_nothing_and_every_order_is_written_alone(services: Services) -> None:
    intake = OrderIntake(services.sessions, FailsInCompany(services.identity))
    before = counts(services)
    results = intake.write([submission("A", phone="13800138000"), submission("BAD"), submission("C")])
    assert [type(r).__name__ for r in results] == ["OrderWritten", "RuntimeError", "OrderWritten"]
    assert str(results[1]) == "BAD alone fails too"
    assert [external_id for external_id, _, _ in stored_orders(services)] == ["A", "C"]
    after = counts(services)
    assert (after["orders"] - before["orders"], after["persons"] - before["persons"]) == (2, 1)


def test_concurrent_submissions_are_all_stored_once_with_their_own_answers(services: Services) -> None:
    intake = OrderIntake(services.sessions, services.ingest, max_batch=8)
    phones = ["13800138000", "13900139000", "13700137000"]

    async def post_all() -> list[OrderWritten]:
        orders = [parse_order(order(f"O{n}", amount=f"{n}.00", phone=phones[n % 3])) for n in range(1, 41)]
        replays = [parse_order(order(f"O{n}", amount="1.00")) for n in (5, 6)]
        return await asyncio.gather(*(intake.submit(o, actor="till") for o in [*orders, *replays]))

    results = asyncio.run(post_all())
    stored = stored_orders(services)
    assert [external_id for external_id, _, _ in stored] == [f"O{n}" for n in range(1, 41)]
    by_id = {r.order_id: r for r in results[:40]}
    assert len(by_id) == 40 and all(r.created for r in results[:40])
    assert [r.amount_fen for r in results[:40]] == [n * 100 for n in range(1, 41)]
    assert [(r.created, r.order_id, r.amount_fen) for r in results[40:]] == [
        (False, results[4].order_id, 500),
        (False, results[5].order_id, 600),
    ]
    assert len({person for _, _, person in stored}) == 3
