"""Concurrent coupon, reward and checkout writers on PostgreSQL: exactly the right number win.

Each test releases 8 threads at once (``race``), each with its own connection and transaction.
Every test here fails without its lock: without ``FOR UPDATE`` on the coupon rows two writers both
see a coupon ``issued``; without it on the stock row several take the last reward; without the
advisory lock on the order two settlements of one order collide on the unique constraint.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict
from memberops.loyalty import checkout_service, coupon_service, reward_service
from memberops.loyalty.cart import CartLine
from memberops.loyalty.checkout_service import SettleRequest
from memberops.loyalty.coupon_service import IssueRequest
from memberops.loyalty.programme import demo_programme, load_programme
from memberops.models import CheckoutSettlement, CouponRedemption, PointsEntry, RewardRedemption, RewardStock
from memberops.wiring import Services
from tests.integration.test_races import WRITERS, race

from .offers_support import NOW, SHANGHAI, balance, coupon_states, give_points, member, read, write

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_services: Services) -> Services:
    with unit_of_work(postgres_services.sessions) as session:
        postgres_services.loyalty.apply_programme(session, _programme_with_one_knife(), actor="test")
    return postgres_services


def _programme_with_one_knife():  # type: ignore[no-untyped-def]
    document = json.loads(demo_programme().canonical_json())
    for reward in document["rewards"]:
        if reward["code"] == "fruit_knife":
            reward["stock"] = 2
    document["version"] = "race"
    return load_programme(json.dumps(document), "json")


def _issue(pg: Services, person: int, template: str = "welcome_5") -> int:
    outcome = write(
        pg,
        lambda s: coupon_service.issue_coupons(
            s,
            [person],
            [IssueRequest(template)],
            key=f"race-{person}-{template}",
            reason="race",
            actor="t",
            time_zone=SHANGHAI,
            now=NOW,
        ),
    )
    return outcome.created[0].id


def _count(pg: Services, model: type, *where: object) -> int:
    return read(pg, lambda s: int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0))  # type: ignore[arg-type]


def test_one_coupon_redeemed_by_eight_tills_at_once_is_used_once(pg: Services) -> None:
    ann = member(pg, "13800000001")
    coupon = _issue(pg, ann)

    def use(index: int) -> bool:
        with unit_of_work(pg.sessions) as session:
            return coupon_service.redeem_coupon(
                session, f"#{coupon}", key=f"till-{index}", actor="t", now=NOW
            ).created

    results = race(WRITERS, use)

    assert sum(1 for r in results if r is True) == 1
    assert sum(1 for r in results if isinstance(r, Conflict)) == WRITERS - 1
    assert _count(pg, CouponRedemption) == 1
    assert coupon_states(pg) == [(coupon, "welcome_5", "redeemed")]


def test_one_coupon_in_eight_checkouts_at_once_goes_to_one_order(pg: Services) -> None:
    ann = member(pg, "13800000001")
    coupon = _issue(pg, ann, "repurchase_10")
    lines = (CartLine(1, "APL-FJ", "苹果", 3, 2000),)

    def pay(index: int) -> int:
        request = SettleRequest("pos", f"POS-{index}", ann, lines, coupon_ids=(coupon,))
        with unit_of_work(pg.sessions) as session:
            return checkout_service.settle(
                session, request, key=f"k{index}", actor="t", time_zone=SHANGHAI, now=NOW
            ).settlement.id

    results = race(WRITERS, pay)

    assert sum(1 for r in results if isinstance(r, int)) == 1
    assert sum(1 for r in results if isinstance(r, Conflict)) == WRITERS - 1
    assert _count(pg, CheckoutSettlement) == 1
    assert _count(pg, CouponRedemption) == 1


def test_the_last_reward_in_stock_goes_to_exactly_one_member(pg: Services) -> None:
    first = member(pg, "13900000000")
    give_points(pg, first, 100)
    write(
        pg,
        lambda s: reward_service.redeem_reward(
            s, first, "fruit_knife", key="first", actor="t", time_zone=SHANGHAI, now=NOW
        ),
    )
    members = [member(pg, f"1380000{index:04d}") for index in range(WRITERS)]
    for person in members:
        give_points(pg, person, 100)

    def take(index: int) -> bool:
        with unit_of_work(pg.sessions) as session:
            return reward_service.redeem_reward(
                session,
                members[index],
                "fruit_knife",
                key=f"knife-{index}",
                actor="t",
                time_zone=SHANGHAI,
                now=NOW,
            ).created

    results = race(WRITERS, take)

    assert sum(1 for r in results if r is True) == 1
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(losers) == WRITERS - 1
    assert {str(r) for r in losers} == {'"不锈钢水果刀" is out of stock'}
    assert _count(pg, RewardRedemption) == 2
    assert read(pg, lambda s: s.get(RewardStock, "fruit_knife").redeemed) == 2  # type: ignore[union-attr]
    assert sorted(balance(pg, person) for person in members) == [70] + [100] * (WRITERS - 1)


def test_the_same_order_settled_eight_times_at_once_is_settled_once(pg: Services) -> None:
    ann = member(pg, "13800000001")
    give_points(pg, ann, 300)
    coupon = _issue(pg, ann, "repurchase_10")
    request = SettleRequest(
        "pos", "POS-1", ann, (CartLine(1, "APL-FJ", "苹果", 3, 2000),), coupon_ids=(coupon,), points=25
    )

    def pay(index: int) -> tuple[int, bool]:
        with unit_of_work(pg.sessions) as session:
            outcome = checkout_service.settle(
                session, request, key=f"retry-{index}", actor="t", time_zone=SHANGHAI, now=NOW
            )
            return outcome.settlement.id, outcome.created

    results = race(WRITERS, pay)

    assert all(isinstance(r, tuple) for r in results), results
    assert len({r[0] for r in results}) == 1  # type: ignore[index]
    assert sorted(r[1] for r in results) == [False] * (WRITERS - 1) + [True]  # type: ignore[index]
    assert _count(pg, CheckoutSettlement) == 1
    assert _count(pg, CouponRedemption) == 1
    assert _count(pg, PointsEntry, PointsEntry.kind == "spend") == 1
    assert balance(pg, ann) == 275


def test_points_for_eight_orders_at_once_are_spent_only_as_far_as_they_go(pg: Services) -> None:
    ann = member(pg, "13800000001")
    give_points(pg, ann, 100)

    def pay(index: int) -> bool:
        request = SettleRequest("pos", f"POS-{index}", ann, (CartLine(1, "X", "x", 1, 10_000),), points=40)
        with unit_of_work(pg.sessions) as session:
            return checkout_service.settle(
                session, request, key=f"k{index}", actor="t", time_zone=SHANGHAI, now=NOW
            ).created

    results = race(WRITERS, pay)

    assert sum(1 for r in results if r is True) == 2
    assert sum(1 for r in results if isinstance(r, Conflict)) == WRITERS - 2
    assert balance(pg, ann) == 20
    assert _count(pg, CheckoutSettlement) == 2
