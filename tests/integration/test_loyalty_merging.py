"""Loyalty follows OneID: a merge carries points, lots, tiers and offers; a split or undo carries orders back.

SQLite and PostgreSQL (the ``services`` fixture), exact figures, ``loyalty check`` green after
every step. The property test at the end runs on SQLite only, like the ledger's.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from memberops.ingest.bulk import import_file
from memberops.ingest.records import RefundIn, parse_event, parse_order
from memberops.kit.clock import parse_instant
from memberops.kit.db import unit_of_work
from memberops.kit.money import yuan_to_fen
from memberops.loyalty import coupon_service, plan_service, reward_service
from memberops.loyalty.coupon_service import IssueRequest
from memberops.loyalty.ledger import InsufficientPoints
from memberops.loyalty.merging import TierRow, carry_merged, combine_tier_rows
from memberops.loyalty.points import spend_points
from memberops.loyalty.programme import Programme
from memberops.models import (
    Coupon,
    Identifier,
    IdentityMerge,
    MemberTier,
    OrderEarning,
    OutboxEvent,
    PaidPlanTerm,
    PointsAccount,
    PointsEntry,
    PointsLot,
    RewardRedemption,
    TierChangeRecord,
)
from memberops.wiring import Services
from tests.integration.helpers import counts
from tests.integration.loyalty_support import apply, plain_programme, problems
from tests.integration.test_races import WRITERS, race

SHANGHAI_NOON = "T12:00:00+08:00"
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
ANN_PHONE = "13800000001"
END_2026 = "2027-01-01T00:00:00+08:00"
END_2027 = "2028-01-01T00:00:00+08:00"


def write(services: Services, action: Any) -> Any:
    with unit_of_work(services.sessions) as session:
        return action(session)


def read(services: Services, action: Any) -> Any:
    with unit_of_work(services.read_sessions) as session:
        return action(session)


def register(services: Services, joined: str, **identifiers: str) -> int:
    field = "tmall" if "platform_user_id" in identifiers else "pos"
    event = {"type": "register", "occurred_at": joined, "field": field, "external_id": f"r{identifiers}"}
    with unit_of_work(services.sessions) as session:
        [outcome] = services.ingest.ingest_events(
            session, [parse_event({**event, **identifiers})], actor="test"
        )
    assert outcome.person_id is not None
    return outcome.person_id


def order(
    services: Services, external_id: str, amount: str, day: str, source: str = "pos", **ids: str
) -> int:
    raw = {"source": source, "external_id": external_id, "paid_at": day + SHANGHAI_NOON, "amount": amount}
    with unit_of_work(services.sessions) as session:
        [outcome] = services.ingest.ingest_orders(session, [parse_order({**raw, **ids})], actor="test")
    assert outcome.order_id is not None, outcome.rejection
    return outcome.order_id


def refund(services: Services, source: str, order_external_id: str, amount: str) -> None:
    with unit_of_work(services.sessions) as session:
        services.ingest.ingest_refund(
            session,
            RefundIn(
                source=source,
                external_id=f"rf-{order_external_id}",
                order_external_id=order_external_id,
                refunded_at=parse_instant("2026-03-20T12:00:00+08:00"),
                amount_fen=yuan_to_fen(amount),
                reason=None,
            ),
        )


def spend(services: Services, person: int, points: int, key: str) -> None:
    write(
        services,
        lambda s: spend_points(s, person, points, key=key, reason="fruit", source="test", actor="t", now=NOW),
    )


def account(services: Services, person: int) -> tuple[int, int] | None:
    row = read(services, lambda s: s.get(PointsAccount, person))
    return None if row is None else (row.balance, row.debt)


def lots(services: Services, person: int) -> list[tuple[int, int, str]]:
    """(amount, remaining, expiry in Shanghai) of the person's lots, by id."""
    zone = services.loyalty.time_zone

    def query(session: Session) -> list[tuple[int, int, str]]:
        rows = session.execute(
            select(PointsLot.amount, PointsLot.remaining, PointsLot.expires_at)
            .where(PointsLot.person_id == person)
            .order_by(PointsLot.id)
        )
        return [(a, r, e.astimezone(zone).isoformat()) for a, r, e in rows]

    return read(services, query)


def entries(services: Services, person: int) -> list[tuple[str, int, int]]:
    """(kind, delta, debt_delta) of the person's entries, by id."""
    return read(
        services,
        lambda s: [
            tuple(row)
            for row in s.execute(
                select(PointsEntry.kind, PointsEntry.delta, PointsEntry.debt_delta)
                .where(PointsEntry.person_id == person)
                .order_by(PointsEntry.id)
            )
        ],
    )


def tier_of(services: Services, person: int) -> tuple[str, int, list[str]] | None:
    row = read(services, lambda s: s.get(MemberTier, person))
    return None if row is None else (row.tier, row.growth_total, list(row.gifted_tiers))


def owners(services: Services, model: Any) -> list[int]:
    return read(services, lambda s: list(s.scalars(select(model.person_id).order_by(model.id))))


def coupons_of(services: Services, person: int) -> list[int]:
    return read(
        services,
        lambda s: list(s.scalars(select(Coupon.id).where(Coupon.person_id == person).order_by(Coupon.id))),
    )


def balances(services: Services) -> list[tuple[int, int, int, int]]:
    return read(
        services,
        lambda s: [
            tuple(row)
            for row in s.execute(
                select(
                    PointsAccount.person_id, PointsAccount.balance, PointsAccount.debt, PointsAccount.revision
                ).order_by(PointsAccount.person_id)
            )
        ],
    )


def topics(services: Services) -> list[str]:
    return read(services, lambda s: list(s.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id))))


# --- Ann and Bob: two members who turn out to be one ---------------------------------------------------


def ann_and_bob(services: Services, programme: Programme | None = None) -> tuple[int, int]:
    """Ann: silver (3500 growth), 350 + 100 gift points, 100 spent. Bob: standard, 80 points, 800 growth."""
    apply(services, programme or plain_programme())
    ann = register(services, "2025-06-01T10:00:00+08:00", phone=ANN_PHONE, member_no="C1")
    bob = register(services, "2026-02-01T10:00:00+08:00", platform_user_id="t1", member_no="C2")
    order(services, "A1", "3500.00", "2025-12-20", phone=ANN_PHONE)
    order(services, "B1", "800.00", "2026-02-10", source="tmall", platform_user_id="t1")
    return ann, bob


def link(services: Services) -> None:
    """A till record naming Ann's phone and Bob's card: OneID merges Bob into Ann."""
    order(services, "L1", "1.00", "2026-03-11", phone=ANN_PHONE, member_no="C2")


def give_bob_offers(services: Services, bob: int) -> None:
    """A reward (5 points and its coupon), a half-year plan (its welcome pack) and a welcome coupon."""
    zone = services.loyalty.time_zone
    write(
        services,
        lambda s: reward_service.redeem_reward(
            s, bob, "voucher_5", key="rw", actor="app", time_zone=zone, now=NOW
        ),
    )
    write(
        services,
        lambda s: plan_service.buy_plan(
            s, bob, "half_year", key="plan", actor="app", time_zone=zone, now=NOW
        ),
    )
    write(
        services,
        lambda s: coupon_service.issue_coupons(
            s, [bob], [IssueRequest("welcome_5", 1)], key="w", reason="t", actor="op", time_zone=zone, now=NOW
        ),
    )


def test_a_merge_carries_points_lots_tier_and_offers_to_the_survivor(services: Services) -> None:
    ann, bob = ann_and_bob(services)
    spend(services, ann, 100, "ann-spend")
    give_bob_offers(services, bob)
    assert (account(services, ann), account(services, bob)) == ((350, 0), (75, 0))
    assert tier_of(services, ann) == ("silver", 3500, ["silver"])
    bobs_coupons = coupons_of(services, bob)
    assert len(bobs_coupons) == 6  # the reward's, the plan's welcome pack (4), the welcome coupon
    all_coupons = len(owners(services, Coupon))
    before_topics = topics(services)

    link(services)

    with unit_of_work(services.read_sessions) as session:
        merge = session.scalars(select(IdentityMerge)).one()
        assert (merge.survivor_id, merge.absorbed_id) == (ann, bob)
        loyalty = merge.detail["loyalty"]
    assert account(services, ann) == (425, 0)
    assert account(services, bob) == (0, 0)  # emptied; its entries and lots are Ann's now
    assert lots(services, ann) == [
        (350, 250, END_2026),  # Ann's purchase, 100 spent from it
        (100, 100, END_2026),  # her silver upgrade gift
        (80, 75, END_2027),  # Bob's purchase keeps its own expiry
    ]
    assert lots(services, bob) == []
    assert entries(services, ann) == [
        ("earn", 350, 0),
        ("gift", 100, 0),
        ("earn", 80, 0),
        ("spend", -100, 0),
        ("spend", -5, 0),
        ("merge", 0, 0),
    ]
    # the linking order earned 0 points but 1 growth, after the merge, on the survivor
    assert tier_of(services, ann) == ("silver", 4301, ["silver"])
    assert tier_of(services, bob) is None
    coupons = owners(services, Coupon)
    assert (len(coupons), set(coupons)) == (all_coupons, {ann})
    assert owners(services, PaidPlanTerm) == [ann]
    assert owners(services, RewardRedemption) == [ann]
    assert loyalty["points"] == {"balance": 75, "debt": 0}
    assert loyalty["tier"]["tier"] == "standard" and loyalty["tier"]["growth_total"] == 800
    assert loyalty["coupon_ids"] == bobs_coupons and len(loyalty["plan_term_ids"]) == 1
    new_topics = topics(services)[len(before_topics) :]
    assert not [t for t in new_topics if t.startswith(("points.", "tier.", "coupon", "plan", "reward"))]
    assert problems(services) == []

    # a refund of Bob's order now takes back exactly from Ann: its own lot first, then the soonest
    refund(services, "tmall", "B1", "800.00")
    assert account(services, ann) == (345, 0)
    assert lots(services, ann) == [(350, 245, END_2026), (100, 100, END_2026), (80, 0, END_2027)]
    assert entries(services, ann)[-1] == ("refund_take_back", -80, 0)
    assert tier_of(services, ann) == ("silver", 3501, ["silver"])
    assert problems(services) == []


def test_replaying_a_merge_changes_nothing(services: Services) -> None:
    ann, bob = ann_and_bob(services)
    link(services)
    before = (counts(services), balances(services), tier_of(services, ann), lots(services, ann))

    write(services, lambda s: carry_merged(s, {bob: ann}, actor="replay"))
    link(services)  # the same record again: one person already, nothing merges

    assert (counts(services), balances(services), tier_of(services, ann), lots(services, ann)) == before
    assert account(services, ann) == (530, 0)
    assert problems(services) == []


def test_a_merge_with_no_programme_and_no_points_moves_nothing(services: Services) -> None:
    register(services, "2025-06-01T10:00:00+08:00", phone=ANN_PHONE, member_no="C1")
    register(services, "2026-02-01T10:00:00+08:00", platform_user_id="t1", member_no="C2")
    link(services)

    with unit_of_work(services.read_sessions) as session:
        detail = session.scalars(select(IdentityMerge.detail)).one()
    assert "loyalty" not in detail
    assert balances(services) == []


@pytest.mark.parametrize(
    ("shortfall", "last_entries"),
    [
        ("negative_balance", [("merge", 0, 0)]),
        ("claw_back_from_future", [("merge", 0, 0), ("claw_back", -80, -80)]),
    ],
)
def test_a_refund_hole_of_one_is_filled_from_the_others_lots(
    services: Services, shortfall: str, last_entries: list[tuple[str, int, int]]
) -> None:
    ann, bob = ann_and_bob(services, plain_programme(refunds={"shortfall": shortfall}))
    spend(services, bob, 80, "bob-spend")
    refund(services, "tmall", "B1", "800.00")
    hole = (-80, 0) if shortfall == "negative_balance" else (0, 80)
    assert account(services, bob) == hole

    link(services)

    assert account(services, ann) == (370, 0)
    assert entries(services, ann)[-len(last_entries) :] == last_entries
    # the 80 owed come out of the soonest-expiring lot (Ann's purchase, then lower id)
    assert [(a, r) for a, r, _ in lots(services, ann)] == [(350, 270), (100, 100), (80, 0)]
    assert problems(services) == []


def test_the_higher_tier_wins_and_its_change_is_recorded(services: Services) -> None:
    apply(services, plain_programme())
    ann = register(services, "2025-06-01T10:00:00+08:00", phone=ANN_PHONE, member_no="C1")
    bob = register(services, "2026-01-01T10:00:00+08:00", platform_user_id="t1", member_no="C2")
    order(services, "B1", "6500.00", "2026-02-10", source="tmall", platform_user_id="t1")  # gold
    order(services, "A1", "100.00", "2026-02-11", phone=ANN_PHONE)
    assert (tier_of(services, ann), tier_of(services, bob)) == (
        ("standard", 100, []),
        ("gold", 6500, ["silver", "gold"]),
    )

    link(services)

    with unit_of_work(services.read_sessions) as session:
        history = session.execute(
            select(
                TierChangeRecord.person_id,
                TierChangeRecord.from_tier,
                TierChangeRecord.to_tier,
                TierChangeRecord.reason,
            ).order_by(TierChangeRecord.id)
        ).all()
    assert tier_of(services, ann) == ("gold", 6601, ["silver", "gold"])
    assert [tuple(h) for h in history] == [
        (ann, "standard", "gold", "growth"),  # Bob's own upgrade, now Ann's history
        (ann, "standard", "gold", "merge"),
    ]
    assert account(services, ann) == (10 + 650 + 100 + 300, 0)
    assert problems(services) == []


def test_undoing_a_merge_hands_back_offers_and_the_orders_points(services: Services) -> None:
    ann, bob = ann_and_bob(services)
    zone = services.loyalty.time_zone
    write(
        services,
        lambda s: plan_service.buy_plan(
            s, bob, "half_year", key="plan", actor="app", time_zone=zone, now=NOW
        ),
    )
    anns_coupons, bobs_coupons = coupons_of(services, ann), coupons_of(services, bob)
    link(services)
    merge_id = read(services, lambda s: s.scalars(select(IdentityMerge.id)).one())
    assert coupons_of(services, bob) == []

    write(services, lambda s: services.identity.undo_merge(s, merge_id, actor="op", reason="two people"))

    # B1 (by Bob's tmall id) and L1 (by his card) go back, with their 80 points and 801 growth
    assert account(services, ann) == (450, 0)
    assert account(services, bob) == (80, 0)
    assert lots(services, bob) == [(80, 80, END_2027)]
    assert entries(services, ann)[-2:] == [("merge", 0, 0), ("split_out", -80, 0)]
    assert entries(services, bob)[-1:] == [("split_in", 80, 0)]
    assert tier_of(services, ann) == ("silver", 3500, ["silver"])
    assert tier_of(services, bob) == ("standard", 801, [])
    assert (coupons_of(services, ann), coupons_of(services, bob)) == (anns_coupons, bobs_coupons)
    assert owners(services, PaidPlanTerm) == [bob]
    assert problems(services) == []
    refund(services, "tmall", "B1", "800.00")
    assert (account(services, ann), account(services, bob)) == ((450, 0), (0, 0))
    assert problems(services) == []

    before = (counts(services), balances(services))
    write(services, lambda s: services.identity.undo_merge(s, merge_id, actor="op", reason="again"))
    assert (counts(services), balances(services)) == before


def test_a_split_moves_the_points_of_orders_that_go_to_a_member(services: Services) -> None:
    apply(services, plain_programme())
    person = register(services, "2026-01-01T10:00:00+08:00", member_no="C9")
    order(services, "S1", "500.00", "2026-02-10", phone=ANN_PHONE, member_no="C9")
    spend(services, person, 20, "spent-before-split")
    card = read(
        services,
        lambda s: s.scalars(select(Identifier.id).where(Identifier.kind == "member_no")).one(),
    )

    new_person = write(
        services, lambda s: services.identity.split(s, person, [card], actor="op", reason="wrong card")
    )

    # the card, its membership and the order move; the 20 spent before are owed by the old person
    assert account(services, person) == (0, 20)
    assert account(services, new_person) == (50, 0)
    assert lots(services, new_person) == [(50, 50, END_2027)]
    assert (tier_of(services, person), tier_of(services, new_person)) == (
        ("standard", 0, []),
        ("standard", 500, []),
    )
    assert read(services, lambda s: s.get(OrderEarning, 1).person_id) == new_person
    assert problems(services) == []
    refund(services, "pos", "S1", "500.00")
    assert (account(services, person), account(services, new_person)) == ((0, 20), (0, 0))
    assert problems(services) == []


def test_a_split_leaves_the_points_with_the_member_when_the_order_goes_to_a_guest(services: Services) -> None:
    apply(services, plain_programme())
    ann = register(services, "2026-01-01T10:00:00+08:00", phone=ANN_PHONE)
    order(services, "S1", "500.00", "2026-02-10", phone=ANN_PHONE, unionid="oU1")
    s2 = order(services, "S2", "300.00", "2026-02-11", unionid="oU1")  # attributed by the unionid
    union = read(
        services, lambda s: s.scalars(select(Identifier.id).where(Identifier.kind == "unionid")).one()
    )
    assert account(services, ann) == (80, 0)

    new_person = write(services, lambda s: services.identity.split(s, ann, [union], actor="op", reason="x"))

    # S2 goes to the new person, who holds no membership: its earning stays with the member
    assert account(services, ann) == (80, 0)
    assert account(services, new_person) is None
    assert read(services, lambda s: s.get(OrderEarning, s2).person_id) == ann
    refund(services, "pos", "S2", "300.00")
    assert account(services, ann) == (50, 0)
    assert problems(services) == []


# --- Concurrency --------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_spends_of_the_absorbed_points_racing_the_merge_lose_nothing(postgres_services: Services) -> None:
    services = postgres_services
    ann, bob = ann_and_bob(services)

    def act(index: int) -> object:
        if index == 0:
            return link(services)
        return spend(services, bob, 10, f"race-{index}")

    results = race(WRITERS, act)

    # a spend that locked Bob's account first moved with it; one after the merge finds nothing
    won = sum(1 for result in results[1:] if result is None)
    assert all(result is None or isinstance(result, InsufficientPoints) for result in results), results
    assert account(services, ann) == (450 + 80 - 10 * won, 0)
    assert account(services, bob) == (0, 0)
    assert [kind for kind, _, _ in entries(services, ann)].count("spend") == won
    assert problems(services) == []


# --- Bulk import ---------------------------------------------------------------------------------------


def test_bulk_import_with_merges_keeps_the_ledger_whole(services: Services, tmp_path: Path) -> None:
    apply(services, plain_programme())
    people = 12
    for n in range(people):
        register(services, "2026-01-01T10:00:00+08:00", phone=f"139{n:08d}")
        with unit_of_work(services.sessions) as session:
            services.ingest.ingest_events(
                session,
                [
                    parse_event(
                        {
                            "type": "register",
                            "occurred_at": "2026-01-01T10:00:00+08:00",
                            "field": "mini_program",
                            "openid": f"o{n}",
                            "external_id": f"ro{n}",
                        }
                    )
                ],
                actor="test",
            )
        register(services, "2026-01-01T10:00:00+08:00", member_no=f"M{n}")
    shapes = [
        {"phone": "{p}"},
        {"openid": "o{n}", "source": "mini_program"},
        {"member_no": "M{n}"},
        {"phone": "{p}", "member_no": "M{n}"},  # merges the card holder into the phone holder
        {"phone": "{p}", "openid": "o{n}", "source": "mini_program"},  # absorbs the openid visitor
    ]
    rows = []
    for shape_no, shape in enumerate(shapes):
        for n in range(people):
            fields = {k: v.format(p=f"139{n:08d}", n=n) for k, v in shape.items()}
            rows.append(
                {
                    "source": "pos",
                    "external_id": f"X{shape_no}-{n}",
                    "paid_at": "2026-03-01T12:00:00+08:00",
                    "amount": "100.00",
                    **fields,
                }
            )
    path = tmp_path / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle, ["source", "external_id", "paid_at", "amount", "phone", "openid", "member_no"]
        )
        writer.writeheader()
        writer.writerows(rows)

    summary = import_file(services, path, "orders", batch_size=7)

    assert (summary.imported, summary.rejected) == (5 * people, 0)
    live = read(
        services,
        lambda s: s.execute(text("SELECT count(*) FROM persons WHERE merged_into_id IS NULL")).scalar_one(),
    )
    assert live == people
    held = [(balance, debt) for _, balance, debt, _ in balances(services) if (balance, debt) != (0, 0)]
    assert held == [(50, 0)] * people
    merges = read(services, lambda s: s.scalar(select(func.count()).where(PointsEntry.kind == "merge")))
    assert merges == 2 * people
    growth = read(services, lambda s: sorted(set(s.scalars(select(MemberTier.growth_total)))))
    assert growth == [500]
    assert problems(services) == []


# --- Properties ----------------------------------------------------------------------------------------


TIERS = ("standard", "silver", "gold")
tier_rows = st.builds(
    lambda tier, floor, total, gifted: TierRow(0, tier, floor, NOW, total, gifted, None),
    st.sampled_from(TIERS),
    st.none() | st.sampled_from(TIERS),
    st.integers(0, 10_000),
    st.lists(st.sampled_from(TIERS[1:]), unique=True),
)


@given(first=tier_rows, second=tier_rows)
def test_combined_tiers_keep_the_higher_tier_floor_and_every_gift(first: TierRow, second: TierRow) -> None:
    combined = combine_tier_rows(first, second, TIERS.index)

    assert TIERS.index(combined.tier) == max(TIERS.index(first.tier), TIERS.index(second.tier))
    assert combined.growth_total == first.growth_total + second.growth_total
    assert set(combined.gifted_tiers) == set(first.gifted_tiers) | set(second.gifted_tiers)
    assert len(combined.gifted_tiers) == len(set(combined.gifted_tiers))
    floors = [TIERS.index(f) for f in (first.floor, second.floor) if f is not None]
    assert (TIERS.index(combined.floor) if combined.floor else None) == (max(floors) if floors else None)
