"""Random merges of two members on SQLite: the survivor holds the sum and ``check`` stays green."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from memberops.ingest.records import parse_order
from memberops.ingest.service import IngestService
from memberops.kit.db import unit_of_work
from memberops.loyalty.programme import Programme
from memberops.models import Person
from memberops.wiring import Services
from tests.conftest import sqlite_engine
from tests.integration.loyalty_support import apply, problems, programme_with
from tests.integration.test_loyalty_merging import account, lots, order, refund, register, spend

_numbers = itertools.count(1)


def _programme(shortfall: str) -> Programme:
    """1 point per 10 yuan, nothing else but upgrade gifts, under the given refund shortfall policy."""

    def change(document: dict[str, Any]) -> None:
        document["earn"]["caps"] = {}
        document["earn"]["promotions"] = []
        document["earn"]["multipliers"] = {}
        document["refunds"] = {"shortfall": shortfall}
        for tier in document["tiers"]:
            tier["benefits"]["member_day"] = None

    return programme_with(change, version=f"merge-{shortfall}")


POLICIES = {name: _programme(name) for name in ("negative_balance", "claw_back_from_future")}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield from sqlite_engine(tmp_path)


purchases = st.lists(st.integers(1, 400), min_size=0, max_size=4)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=purchases,
    second=purchases,
    spent=st.tuples(st.integers(0, 100), st.integers(0, 100)),
    refunded=st.tuples(st.booleans(), st.booleans()),
    shortfall=st.sampled_from(["negative_balance", "claw_back_from_future"]),
)
def test_any_merge_keeps_the_sum_and_the_check_green(
    services: Services,
    first: list[int],
    second: list[int],
    spent: tuple[int, int],
    refunded: tuple[bool, bool],
    shortfall: str,
) -> None:
    apply(services, POLICIES[shortfall])
    n = next(_numbers)
    phone, card, tmall = f"137{n:08d}", f"K{n}", f"tm{n}"
    survivor = register(services, "2025-06-01T10:00:00+08:00", phone=phone, member_no=f"KA{n}")
    absorbed = register(services, "2025-06-02T10:00:00+08:00", platform_user_id=tmall, member_no=card)
    for person_no, (amounts, ids, source) in enumerate(
        [(first, {"phone": phone}, "pos"), (second, {"platform_user_id": tmall}, "tmall")]
    ):
        for i, amount in enumerate(amounts):
            order(services, f"P{n}-{person_no}-{i}", f"{amount * 10}.00", "2026-02-10", source=source, **ids)
    for person, points, key in ((survivor, spent[0], "a"), (absorbed, spent[1], "b")):
        held = account(services, person)
        if held is not None and 0 < points <= held[0]:
            spend(services, person, points, f"prop-{n}-{key}")
    for person_no, (amounts, source) in enumerate([(first, "pos"), (second, "tmall")]):
        if refunded[person_no] and amounts:
            refund(services, source, f"P{n}-{person_no}-0", f"{amounts[0] * 10}.00")
    before = [account(services, p) or (0, 0) for p in (survivor, absorbed)]
    assert sum(r for p in (survivor, absorbed) for _, r, _ in lots(services, p)) == sum(
        max(b, 0) for b, _ in before
    )

    # linked without earning (an order through the plain ingest), so no upgrade muddies the sum
    link = {"source": "pos", "external_id": f"L{n}", "paid_at": "2026-03-11T12:00:00+08:00", "amount": "1.00"}
    with unit_of_work(services.sessions) as session:
        IngestService(services.identity).ingest_orders(
            session, [parse_order({**link, "phone": phone, "member_no": card})], actor="test"
        )

    balance, debt = account(services, survivor) or (0, 0)
    with unit_of_work(services.read_sessions) as session:
        assert session.get(Person, absorbed).merged_into_id == survivor  # type: ignore[union-attr]
    assert account(services, absorbed) in (None, (0, 0))
    combined = before[0][0] + before[1][0]
    owed = before[0][1] + before[1][1]
    repaid = min(owed, max(combined, 0))  # a debt is repaid from the lots the merge brings together
    assert (balance, debt) == (combined - repaid, owed - repaid)
    assert sum(r for _, r, _ in lots(services, survivor)) == max(balance, 0)
    assert problems(services) == []
