"""Concurrent writers on one member's points, on PostgreSQL: exactly the right number win, nothing lost.

Each test releases several threads at once (``race``), each with its own transaction. Without the
account lock (``LedgerWriter.lock``: ``SELECT … FOR UPDATE``) these tests fail: two spends both
see the old balance and draw the same lot twice, or one overwrites the other's balance.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from memberops.ingest.records import parse_order
from memberops.ingest.service import IngestService
from memberops.kit.db import unit_of_work
from memberops.loyalty.ledger import InsufficientPoints
from memberops.loyalty.points import adjust_points, spend_points
from memberops.models import OrderEarning, PointsEntry
from memberops.wiring import Services
from tests.integration.loyalty_support import apply, balance, buy, member, problems, refund
from tests.integration.test_races import WRITERS, race

pytestmark = pytest.mark.postgres
PHONE = "13800138000"
NOW = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def pg(postgres_services: Services) -> Services:
    apply(postgres_services)
    return postgres_services


def give(services: Services, person_id: int, points: int) -> None:
    with unit_of_work(services.sessions) as session:
        adjust_points(
            session,
            person_id,
            points,
            reason="start",
            actor="test",
            key=f"start-{points}",
            time_zone=services.loyalty.time_zone,
            now=NOW,
        )


def redeem(services: Services, person_id: int, amount: int, key: str) -> int:
    with unit_of_work(services.sessions) as session:
        return spend_points(
            session, person_id, amount, key=key, reason="race", source="test", actor="racer", now=NOW
        ).id


def spends(services: Services) -> int:
    with unit_of_work(services.read_sessions) as session:
        return int(session.scalar(select(func.count(PointsEntry.id)).where(PointsEntry.kind == "spend")) or 0)


def test_concurrent_redemptions_of_the_same_points_succeed_exactly_floor_balance_over_amount(
    pg: Services,
) -> None:
    person = member(pg, PHONE)
    give(pg, person, 100)

    results = race(WRITERS, lambda index: redeem(pg, person, 30, f"r{index}"))

    assert sum(1 for r in results if isinstance(r, int)) == 100 // 30
    assert sum(1 for r in results if isinstance(r, InsufficientPoints)) == WRITERS - 100 // 30
    assert balance(pg, person) == 10
    assert spends(pg) == 3
    assert problems(pg) == []


def test_the_same_idempotency_key_from_many_threads_makes_one_entry(pg: Services) -> None:
    person = member(pg, PHONE)
    give(pg, person, 100)

    results = race(WRITERS, lambda _: redeem(pg, person, 30, "one-key"))

    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    assert balance(pg, person) == 70
    assert spends(pg) == 1
    assert problems(pg) == []


def test_concurrent_credits_to_a_member_without_an_account_are_all_kept(pg: Services) -> None:
    person = member(pg, PHONE)

    def credit(index: int) -> int:
        with unit_of_work(pg.sessions) as session:
            return adjust_points(
                session,
                person,
                10,
                reason="race",
                actor="racer",
                key=f"c{index}",
                time_zone=pg.loyalty.time_zone,
                now=NOW,
            ).id

    results = race(WRITERS, credit)

    assert all(isinstance(r, int) for r in results), results
    assert balance(pg, person) == 10 * WRITERS
    assert problems(pg) == []


def test_the_same_order_earned_from_many_threads_earns_once(pg: Services) -> None:
    person = member(pg, PHONE)
    give(pg, person, 5)  # the account exists, so only the row lock keeps the writers apart
    plain = IngestService(pg.identity)  # store the order without earning, then race the earning
    with unit_of_work(pg.sessions) as session:
        [outcome] = plain.ingest_orders(
            session,
            [
                parse_order(
                    {
                        "source": "pos",
                        "external_id": "A1",
                        "paid_at": "2026-03-02T12:00:00+08:00",
                        "amount": "105.00",
                        "phone": PHONE,
                    }
                )
            ],
            actor="test",
        )
    assert outcome.order_id is not None
    order_id = outcome.order_id

    def earn(_: int) -> bool:
        with unit_of_work(pg.sessions) as session:
            [earned] = pg.loyalty.earn_for_orders(session, [order_id])
        return earned.created

    results = race(WRITERS, earn)

    assert sorted(results, key=str) == [False] * (WRITERS - 1) + [True]
    assert balance(pg, person) == 15
    with unit_of_work(pg.read_sessions) as session:
        assert session.scalar(select(func.count()).select_from(OrderEarning)) == 1
    assert problems(pg) == []


def test_spends_racing_a_refund_and_an_order_keep_the_ledger_whole(pg: Services) -> None:
    person = member(pg, PHONE)
    buy(pg, "A1", PHONE, "1000.00")  # 100 points

    def act(index: int) -> object:
        if index == 0:
            return refund(pg, "A1", "R1", "500.00")  # takes back 50
        if index == 1:
            return buy(pg, "A2", PHONE, "200.00", paid_at="2026-03-03T12:00:00+08:00")  # earns 20
        return redeem(pg, person, 20, f"s{index}")

    results = race(WRITERS, act)

    won = sum(1 for r in results[2:] if isinstance(r, int))
    assert all(isinstance(r, int | InsufficientPoints) for r in results), results
    assert balance(pg, person) == 100 - 50 + 20 - 20 * won  # negative_balance: the refund takes 50 whatever
    assert problems(pg) == []
