"""Concurrent writers on PostgreSQL: exactly one wins, nothing is lost or doubled.

Each test starts several threads, each with its own connection and transaction, released at
the same moment by a barrier, so the writes really overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import text

from memberops.ingest.records import RefundIn, parse_order
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict
from memberops.wiring import Services
from tests.integration.helpers import ingest, live_persons, order

pytestmark = pytest.mark.postgres
T = TypeVar("T")
WRITERS = 8


def race(count: int, action: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``action(i)`` in ``count`` threads released together; return results or errors."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("did not run")] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except BaseException as error:  # the test inspects every outcome
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def pg(postgres_services: Services) -> Services:
    """Race tests prove PostgreSQL's locking; SQLite serialises every writer by design."""
    return postgres_services


def test_the_same_order_posted_at_once_is_stored_once(pg: Services) -> None:
    def post(_: int) -> tuple[int | None, bool]:
        with unit_of_work(pg.sessions) as session:
            [outcome] = pg.ingest.ingest_orders(
                session, [parse_order(order("P1", phone="13800138000"))], actor="race"
            )
        return outcome.order_id, outcome.created

    results = race(WRITERS, post)
    assert all(isinstance(r, tuple) for r in results)
    assert sorted(created for _, created in results) == [False] * (WRITERS - 1) + [True]  # type: ignore[misc]
    assert len({order_id for order_id, _ in results}) == 1  # type: ignore[misc]
    with unit_of_work(pg.read_sessions) as session:
        assert session.execute(text("SELECT count(*) FROM orders")).scalar_one() == 1
        assert session.execute(text("SELECT count(*) FROM identifiers")).scalar_one() == 1
    assert live_persons(pg) == 1


def test_different_orders_of_one_new_phone_make_one_person(pg: Services) -> None:
    def post(index: int) -> int | None:
        with unit_of_work(pg.sessions) as session:
            [outcome] = pg.ingest.ingest_orders(
                session, [parse_order(order(f"P{index}", phone="138-0013-8000"))], actor="race"
            )
        return outcome.person_id

    results = race(WRITERS, post)
    assert len(set(results)) == 1
    assert live_persons(pg) == 1


def test_bridging_records_racing_merge_consistently(pg: Services) -> None:
    # persons A (phone) and B (unionid) exist; several records bridge them at once
    ingest(pg, order("A", phone="13800138000"), order("B", unionid="oU1"))

    def post(index: int) -> int | None:
        with unit_of_work(pg.sessions) as session:
            [outcome] = pg.ingest.ingest_orders(
                session, [parse_order(order(f"X{index}", phone="13800138000", unionid="oU1"))], actor="race"
            )
        return outcome.person_id

    results = race(WRITERS, post)
    assert set(results) == {1}
    assert live_persons(pg) == 1
    with unit_of_work(pg.read_sessions) as session:
        assert session.execute(text("SELECT count(*) FROM identity_merges")).scalar_one() == 1
        assert session.execute(text("SELECT count(DISTINCT person_id) FROM orders")).scalar_one() == 1


def test_refunds_racing_for_the_last_yuan_never_exceed_the_order(pg: Services) -> None:
    ingest(pg, order("P1", amount="100.00", phone="13800138000"))

    def refund(index: int) -> bool:
        with unit_of_work(pg.sessions) as session:
            _, created = pg.ingest.ingest_refund(
                session, RefundIn("pos", f"R{index}", "P1", datetime(2026, 3, 2, tzinfo=UTC), 3000)
            )
        return created

    results = race(WRITERS, refund)
    assert sum(1 for r in results if r is True) == 3
    assert sum(1 for r in results if isinstance(r, Conflict)) == WRITERS - 3
    with unit_of_work(pg.read_sessions) as session:
        assert session.execute(text("SELECT sum(amount_fen) FROM refunds")).scalar_one() == 9000
