"""Random sequences of earn / spend / restore / refund / expire / adjust against the real service.

A small model of the rules (lots, soonest-expiring draws, the refund shortfall policy, debt
repayment) runs beside the ledger; after every step the stored balance and debt must equal the
model's, ``check`` must find nothing, replays must change nothing, and every order's take-backs
must be exactly the refunded share of what it earned. SQLite only (the rules do not depend on the
backend; the race tests prove PostgreSQL's locking) and bounded to keep the suite quick.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from memberops.ingest.records import RefundIn, parse_event, parse_order
from memberops.ingest.service import IngestService
from memberops.kit.db import unit_of_work
from memberops.loyalty import jobs
from memberops.loyalty.ledger import InsufficientPoints
from memberops.loyalty.lots import expiry_of
from memberops.loyalty.points import adjust_points, restore_points, spend_points
from memberops.loyalty.programme import Programme
from memberops.loyalty.purchases import earn_for_orders, take_back_refunds
from memberops.models import OrderEarning, PointsAccount, PointsEntry
from memberops.wiring import Services
from tests.conftest import sqlite_engine
from tests.integration.loyalty_support import apply, problems, programme_with

EXPIRY_DAYS = 45
START = datetime(2026, 1, 2, 4, 0, tzinfo=UTC)


def _programme(shortfall: str) -> Programme:
    """1 point per 10 yuan and nothing else, lots expiring after a few weeks, no upgrade gifts."""

    def change(document: dict[str, Any]) -> None:
        document["expiry"] = {"policy": "fixed_days", "days": EXPIRY_DAYS}
        document["refunds"] = {"shortfall": shortfall}
        document["earn"]["caps"] = {}
        document["earn"]["promotions"] = []
        document["earn"]["multipliers"] = {}
        for tier in document["tiers"]:
            tier["upgrade_gift"] = None
            tier["benefits"]["member_day"] = None

    return programme_with(change, version=f"property-{shortfall}")


POLICIES = {name: _programme(name) for name in ("negative_balance", "claw_back_from_future")}
_phones = itertools.count(13_700_000_000)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield from sqlite_engine(tmp_path)


# --- the model ---------------------------------------------------------------------------------------


@dataclass
class Lot:
    number: int
    remaining: int
    earned_at: datetime
    expires_at: datetime


@dataclass
class PaidOrder:
    external_id: str
    paid_fen: int
    points: int
    lot: Lot | None
    refunded_fen: int = 0
    taken_back: int = 0


@dataclass
class Model:
    policy: str
    programme: Programme
    balance: int = 0
    debt: int = 0
    lots: list[Lot] = field(default_factory=list)
    orders: list[PaidOrder] = field(default_factory=list)
    spends: dict[str, tuple[int, list[tuple[Lot, int]]]] = field(default_factory=dict)
    restored: dict[str, list[int]] = field(default_factory=dict)  # given back per draw of a spend
    adjusted: dict[str, int] = field(default_factory=dict)

    def new_lot(self, amount: int, at: datetime) -> Lot:
        expires = expiry_of(at, self.programme.expiry, _ZONE)
        assert expires is not None
        lot = Lot(len(self.lots), amount, at, expires)
        self.lots.append(lot)
        return lot

    @staticmethod
    def order_key(lot: Lot) -> tuple[datetime, datetime, int]:
        return (lot.expires_at, lot.earned_at, lot.number)

    def repay(self, lots: list[Lot], hole: int) -> None:
        ordered = sorted(lots, key=self.order_key)
        for owed in ("hole", "debt"):
            left = hole if owed == "hole" else self.debt
            for lot in ordered:
                take = min(lot.remaining, left)
                lot.remaining -= take
                left -= take
                if owed == "debt":
                    self.debt -= take
                    self.balance -= take

    def credit(self, amount: int, at: datetime) -> Lot:
        hole = max(0, -self.balance)
        self.balance += amount
        lot = self.new_lot(amount, at)
        self.repay([lot], hole)
        return lot

    def expire(self, now: datetime) -> None:
        for lot in self.lots:
            if lot.expires_at <= now and lot.remaining > 0:
                self.balance -= lot.remaining
                lot.remaining = 0

    def spendable(self, now: datetime) -> int:
        return self.balance - sum(lot.remaining for lot in self.lots if lot.expires_at <= now)

    def draw(self, amount: int, lots: list[Lot]) -> tuple[list[tuple[Lot, int]], int]:
        draws: list[tuple[Lot, int]] = []
        left = amount
        for lot in lots:
            take = min(lot.remaining, left)
            if take:
                lot.remaining -= take
                draws.append((lot, take))
                left -= take
        return draws, left

    def open_lots(self) -> list[Lot]:
        return sorted((lot for lot in self.lots if lot.remaining > 0), key=self.order_key)


_ZONE = ZoneInfo("Asia/Shanghai")


# --- the steps ---------------------------------------------------------------------------------------

Step = tuple[str, int, int, int]  # (action, a, b, days forward)
#: Weighted so that spends, refunds of spent points and credits repaying them happen often.
ACTIONS = ["earn"] * 3 + ["spend"] * 3 + ["refund"] * 2 + ["restore", "expire", "adjust"]
steps = st.lists(
    st.tuples(
        st.sampled_from(ACTIONS),
        st.integers(0, 300),
        st.integers(0, 3),
        st.one_of(st.integers(0, 3), st.integers(0, 40)),
    ),
    min_size=1,
    max_size=16,
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(policy=st.sampled_from(sorted(POLICIES)), plan=steps)
# The paths that matter most, always run: spent points refunded, then credits that fill the hole;
# a restore into a lot that expired meanwhile; partial refunds adding up to the whole order;
# a spend over two lots given back in parts (a partly refunded checkout), the rest at the end;
# a spend restored after its lot expired while a refund held the balance below zero.
@example(
    policy="negative_balance",
    plan=[
        ("earn", 99, 0, 0),
        ("spend", 7, 0, 1),
        ("refund", 0, 0, 1),
        ("restore", 0, 0, 800),
    ],
)
@example(
    policy="claw_back_from_future",
    plan=[
        ("earn", 199, 0, 0),
        ("earn", 99, 0, 30),
        ("spend", 24, 0, 1),
        ("restore", 0, 2, 1),
        ("restore", 0, 1, 400),
        ("restore", 0, 0, 1),
        ("spend", 0, 1, 0),
    ],
)
@example(
    policy="claw_back_from_future",
    plan=[
        ("earn", 99, 0, 0),
        ("spend", 7, 0, 1),
        ("refund", 0, 0, 1),
        ("earn", 49, 0, 1),
        ("earn", 99, 0, 1),
    ],
)
@example(
    policy="negative_balance",
    plan=[
        ("earn", 99, 0, 0),
        ("spend", 7, 0, 1),
        ("refund", 0, 0, 1),
        ("earn", 49, 0, 1),
        ("adjust", 20, 0, 1),
    ],
)
@example(
    policy="claw_back_from_future",
    plan=[
        ("earn", 99, 0, 0),
        ("spend", 7, 0, 1),
        ("refund", 0, 0, 1),
        ("restore", 0, 0, 1),
        ("spend", 0, 1, 0),
    ],
)
@example(
    policy="negative_balance",
    plan=[
        ("earn", 199, 0, 0),
        ("earn", 99, 0, 30),
        ("spend", 24, 0, 1),
        ("restore", 0, 0, 40),
        ("expire", 0, 0, 0),
    ],
)
@example(
    policy="negative_balance",
    plan=[
        ("earn", 104, 0, 0),
        ("refund", 0, 1, 1),
        ("refund", 0, 2, 1),
        ("spend", 3, 0, 0),
        ("refund", 0, 0, 1),
    ],
)
def test_random_sequences_keep_the_ledger_equal_to_its_entries(
    services: Services, policy: str, plan: list[Step]
) -> None:
    programme = POLICIES[policy]
    apply(services, programme)
    plain = IngestService(services.identity)
    phone = str(next(_phones))
    with unit_of_work(services.sessions) as session:
        [joined] = services.ingest.ingest_events(
            session,
            [
                parse_event(
                    {
                        "type": "register",
                        "occurred_at": "2026-01-01T00:00:00+08:00",
                        "field": "pos",
                        "phone": phone,
                        "external_id": f"reg-{phone}",
                    }
                )
            ],
            actor="property",
        )
    person = joined.person_id
    assert person is not None
    model = Model(policy, programme)
    now = START
    zone = services.loyalty.time_zone

    def stored() -> tuple[int, int, int]:
        with unit_of_work(services.read_sessions) as session:
            account = session.get(PointsAccount, person)
            entries = int(session.scalar(select(func.count(PointsEntry.id))) or 0)
            return (account.balance if account else 0, account.debt if account else 0, entries)

    for number, (action, a, b, days) in enumerate(plan):
        now += timedelta(days=days, minutes=1)
        if action == "earn":
            yuan = a + 1
            with unit_of_work(services.sessions) as session:
                [outcome] = plain.ingest_orders(
                    session,
                    [
                        parse_order(
                            {
                                "source": "pos",
                                "external_id": f"{phone}-{number}",
                                "paid_at": now.isoformat(),
                                "amount": str(yuan),
                                "phone": phone,
                            }
                        )
                    ],
                    actor="property",
                )
                assert outcome.order_id is not None
                earn_for_orders(session, [outcome.order_id], time_zone=zone, now=now)
            points = yuan // 10
            lot = model.credit(points, now) if points else None
            model.orders.append(PaidOrder(f"{phone}-{number}", yuan * 100, points, lot))
        elif action in {"spend", "adjust"} and (action == "spend" or b % 2 == 1):
            amount = a % 25 + 1
            key = f"{phone}-{action}-{amount}-{b}"
            replay = key in model.spends or key in model.adjusted
            before = stored()
            try:
                with unit_of_work(services.sessions) as session:
                    if action == "spend":
                        spend_points(
                            session, person, amount, key=key, reason="p", source="p", actor="p", now=now
                        )
                    else:
                        adjust_points(
                            session, person, -amount, reason="p", actor="p", key=key, time_zone=zone, now=now
                        )
                refused = False
            except InsufficientPoints:
                refused = True
            if replay:
                assert not refused and stored() == before
            elif refused:
                assert model.spendable(now) < amount
                assert stored() == before
            else:
                assert model.spendable(now) >= amount
                model.expire(now)
                model.balance -= amount
                draws, left = model.draw(amount, model.open_lots())
                assert left == 0
                if action == "spend":
                    model.spends[key] = (amount, draws)
                else:
                    model.adjusted[key] = -amount
        elif action == "adjust":
            amount = a + 1
            key = f"{phone}-add-{amount}-{b}"
            replay = key in model.adjusted
            with unit_of_work(services.sessions) as session:
                adjust_points(
                    session, person, amount, reason="p", actor="p", key=key, time_zone=zone, now=now
                )
            if not replay:
                model.adjusted[key] = amount
                model.credit(amount, now)
        elif action == "restore":
            given = {
                key: model.restored.get(key, [0] * len(draws)) for key, (_, draws) in model.spends.items()
            }
            open_spends = [key for key, (amount, _) in model.spends.items() if sum(given[key]) < amount]
            if not open_spends:
                continue
            key = open_spends[a % len(open_spends)]
            amount, draws = model.spends[key]
            left = amount - sum(given[key])
            part = None if b == 0 else max(1, left * b // 4)  # b = 0: all that is left
            with unit_of_work(services.sessions) as session:
                restore_points(
                    session, key, key=f"{key}-back-{sum(given[key])}", actor="p", now=now, points=part
                )
            wanted = left if part is None else part
            hole = max(0, -model.balance)
            model.balance += wanted
            back_into = []
            for index in reversed(range(len(draws))):  # the lots drawn last get theirs back first
                lot, taken = draws[index]
                back = min(taken - given[key][index], wanted)
                if back > 0:
                    lot.remaining += back
                    given[key][index] += back
                    back_into.append(lot)
                    wanted -= back
            model.restored[key] = given[key]
            model.expire(now)
            model.repay(back_into, hole)
        elif action == "refund":
            candidates = [order for order in model.orders if order.refunded_fen < order.paid_fen]
            if not candidates:
                continue
            order = candidates[a % len(candidates)]
            left = order.paid_fen - order.refunded_fen
            amount = left if b == 0 else max(1, left * b // 4)
            with unit_of_work(services.sessions) as session:
                refund_row, _ = plain.ingest_refund(
                    session, RefundIn("pos", f"{order.external_id}-r{number}", order.external_id, now, amount)
                )
                take_back_refunds(session, [refund_row.id], time_zone=zone, now=now)
            order.refunded_fen += amount
            due = order.points * order.refunded_fen // order.paid_fen - order.taken_back
            order.taken_back += due
            if due:
                model.expire(now)
                own = [order.lot] if order.lot is not None and order.lot.remaining > 0 else []
                others = [lot for lot in model.open_lots() if lot is not order.lot]
                _, shortfall = model.draw(due, own + others)
                if policy == "negative_balance":
                    model.balance -= due
                else:
                    model.balance -= due - shortfall
                    model.debt += shortfall
        else:  # expire
            with unit_of_work(services.sessions) as session:
                jobs.expire_due(session, now)
            model.expire(now)

        balance, debt, _ = stored()
        assert (balance, debt) == (model.balance, model.debt), (number, action)
        if policy == "claw_back_from_future":
            assert balance >= 0
        assert problems(services) == []

    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(
            select(OrderEarning.points, OrderEarning.refunded_fen, OrderEarning.points_taken_back)
            .where(OrderEarning.person_id == person)
            .order_by(OrderEarning.order_id)
        ).all()
    assert [tuple(row) for row in rows] == [(o.points, o.refunded_fen, o.taken_back) for o in model.orders]
    for order in model.orders:
        if order.refunded_fen == order.paid_fen:
            assert order.taken_back == order.points  # a full refund takes back exactly what was earned
