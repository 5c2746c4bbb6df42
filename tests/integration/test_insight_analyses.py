"""RFM, lifecycle and layers on a hand-worked shop, on SQLite, PostgreSQL and DuckDB.

Every expected number below was worked out by hand from the rows ``build_shop`` writes (see the
comments there); none is computed by the code under test. The same expressions run on the store
itself (SQLite or PostgreSQL) and on a DuckDB copy of it, and must give the same answers: that is
the portability the analytics layer promises (docs/adr/0009-analytics-layer.md).

Brand time zone Asia/Shanghai; as of 2026-10-31; period 2026-10 (previous 2026-09).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import pytest
from sqlalchemy import Engine, insert

from memberops.insight import base, layers, lifecycle, rfm
from memberops.insight.periods import parse_period
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings, Stage
from memberops.insight.source import TABLES, Source, open_source
from memberops.models import Consent, Event, Identifier, Membership, Order, OrderLine, Person, Refund

ZONE = "Asia/Shanghai"
AS_OF = date(2026, 10, 31)
OCTOBER = parse_period("2026-10", as_of=AS_OF)


def at(local: str) -> datetime:
    """A Shanghai wall-clock time as an aware UTC instant."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


class Shop:
    """Writes the fixture rows with explicit ids, straight into the store's tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows: dict[Any, list[dict[str, Any]]] = {}
        self.order_id = 0
        self.event_id = 0

    def add(self, model: Any, **row: Any) -> None:
        self.rows.setdefault(model, []).append(row)

    def person(self, person_id: int, merged_into: int | None = None) -> None:
        self.add(Person, id=person_id, created_at=at("2025-01-01 00:00"), merged_into_id=merged_into)
        self.add(
            Identifier,
            id=person_id,
            person_id=person_id,
            kind="phone",
            namespace="",
            digest=hashlib.sha256(str(person_id).encode()).digest(),
            ciphertext=b"x",
            masked="138****0000",
            source="pos",
            created_at=at("2025-01-01 00:00"),
        )

    def member(self, person_id: int, joined: str, cancelled: str | None = None) -> None:
        self.add(
            Membership,
            person_id=person_id,
            member_no=f"M{person_id}",
            joined_at=at(joined),
            join_field="mini_program",
            join_store_id=None,
            status="cancelled" if cancelled else "active",
            cancelled_at=at(cancelled) if cancelled else None,
            identifier_id=person_id,
            birthday=None,
        )

    def order(
        self, person_id: int, paid: str, yuan: int, *, sku: str = "FRUIT", share_id: str | None = None
    ) -> int:
        self.order_id += 1
        self.add(
            Order,
            id=self.order_id,
            source="pos",
            external_id=f"O{self.order_id}",
            person_id=person_id,
            identifier_id=person_id,
            store_id=None,
            paid_at=at(paid),
            amount_fen=yuan * 100,
            share_id=share_id,
            created_at=at(paid),
        )
        self.add(
            OrderLine,
            order_id=self.order_id,
            line_no=1,
            sku=sku,
            category="fruit",
            quantity=1,
            amount_fen=yuan * 100,
        )
        return self.order_id

    def refund(self, order_id: int, refunded: str, yuan: int) -> None:
        self.add(
            Refund,
            order_id=order_id,
            source="pos",
            external_id=f"R{order_id}",
            refunded_at=at(refunded),
            amount_fen=yuan * 100,
            reason=None,
            created_at=at(refunded),
        )

    def event(self, person_id: int, kind: str, field: str, occurred: str, **attributes: Any) -> None:
        self.event_id += 1
        share_id = attributes.get("share_id")
        self.add(
            Event,
            id=self.event_id,
            dedup_key=f"e{self.event_id}",
            kind=kind,
            field=field,
            external_id=None,
            occurred_at=at(occurred),
            person_id=person_id,
            identifier_id=person_id,
            share_id=share_id,
            attributes=attributes,
            created_at=at(occurred),
        )

    def consent(self, person_id: int, channel: str, granted: bool, changed: str) -> None:
        self.add(
            Consent,
            person_id=person_id,
            channel=channel,
            granted=granted,
            changed_at=at(changed),
            field="wecom",
            event_id=None,
        )

    def write(self) -> None:
        order = [Person, Identifier, Membership, Order, OrderLine, Refund, Event, Consent]
        with self.engine.begin() as connection:
            for model in order:
                if model in self.rows:
                    connection.execute(insert(model), self.rows[model])


def build_shop(engine: Engine) -> None:
    """The hand-worked shop. Day counts are business days in Shanghai."""
    shop = Shop(engine)
    for person_id in range(1, 13):
        shop.person(person_id, merged_into=1 if person_id == 7 else None)
    # P1 Ann: member; Sep 10 ¥40; Oct 2 ¥100 (APPLE); Oct 20 ¥50 and ¥30 (one day); reviews APPLE 5★.
    shop.member(1, "2026-01-05 09:00")
    shop.order(1, "2026-09-10 12:00", 40)
    shop.order(1, "2026-10-02 10:00", 100, sku="APPLE")
    shop.order(1, "2026-10-20 09:00", 50)
    shop.order(1, "2026-10-20 21:00", 30)
    shop.event(1, "review", "mini_program", "2026-10-21 10:00", sku="APPLE", rating=5)
    shop.event(1, "visit", "mini_program", "2026-10-03 10:00")
    shop.event(1, "visit", "mini_program", "2026-10-04 10:00")
    # P7 was merged into P1: the Oct 25 ¥15 order still names P7 and counts for P1.
    shop.order(7, "2026-10-25 08:00", 15)
    # P2 Bob: member; Oct 5 ¥200 (¥50 refunded Oct 6); Oct 6 ¥20; shares S1 on Oct 4, P3 buys with it.
    shop.member(2, "2026-03-01 09:00")
    bob = shop.order(2, "2026-10-05 12:00", 200)
    shop.refund(bob, "2026-10-06 09:00", 50)
    shop.order(2, "2026-10-06 12:00", 20)
    shop.event(2, "share", "mini_program", "2026-10-04 12:00", share_id="S1")
    # P3 Cat: no member; follows the official account since August; buys Oct 7 ¥60 with share S1.
    shop.event(3, "follow", "official_account", "2026-08-01 10:00")
    shop.order(3, "2026-10-07 12:00", 60, share_id="S1")
    # P4 Dan: member; Oct 31 23:30 ¥10 (Oct 31 15:30 UTC); Nov 1 00:10 ¥999 is after the as-of date
    # although its UTC date is Oct 31.
    shop.member(4, "2026-02-01 09:00")
    shop.order(4, "2026-10-31 23:30", 10)
    shop.order(4, "2026-11-01 00:10", 999)
    # P5 Eve: joins Oct 15, buys nothing.
    shop.member(5, "2026-10-15 09:00")
    # P6 Fay: member until Oct 10; group chat May 1 – Oct 12; Sep 3 ¥30, Sep 25 ¥30, Oct 3 ¥70.
    shop.member(6, "2025-06-01 09:00", cancelled="2026-10-10 09:00")
    shop.event(6, "join_group", "group_chat", "2026-05-01 10:00")
    shop.event(6, "leave_group", "group_chat", "2026-10-12 10:00")
    shop.order(6, "2026-09-03 12:00", 30)
    shop.order(6, "2026-09-25 12:00", 30)
    shop.order(6, "2026-10-03 12:00", 70)
    shop.event(6, "visit", "live_room", "2026-10-20 20:00")
    # P8 Hal: member; Aug 1 ¥80; Oct 8 ¥300 refunded in full Oct 9; visits the mini program Oct 12.
    shop.member(8, "2026-01-01 09:00")
    shop.order(8, "2026-08-01 12:00", 80)
    hal = shop.order(8, "2026-10-08 12:00", 300)
    shop.refund(hal, "2026-10-09 12:00", 300)
    shop.event(8, "visit", "mini_program", "2026-10-12 10:00")
    # P9 Ivy: neither member nor reachable; visits Oct 13, buys Oct 14 ¥25.
    shop.event(9, "visit", "mini_program", "2026-10-13 10:00")
    shop.order(9, "2026-10-14 12:00", 25)
    # P10 Jon: no member; WeCom contact consent since Sep 1; visits the live room Oct 2.
    shop.consent(10, "wecom", True, "2026-09-01 10:00")
    shop.event(10, "visit", "live_room", "2026-10-02 20:00")
    # P11 Kim: member; Oct 10 ¥45 (refunded Nov 2, after the as-of date), Oct 11 ¥55 carrying her
    # own share S2; reviews 3★ what she bought and 5★ PEAR she never bought: no propagation.
    shop.member(11, "2026-01-01 09:00")
    kim = shop.order(11, "2026-10-10 12:00", 45)
    shop.refund(kim, "2026-11-02 12:00", 45)
    shop.event(11, "share", "mini_program", "2026-10-09 12:00", share_id="S2")
    shop.order(11, "2026-10-11 12:00", 55, share_id="S2")
    shop.event(11, "review", "mini_program", "2026-10-12 12:00", sku="FRUIT", rating=3)
    shop.event(11, "review", "mini_program", "2026-10-12 13:00", sku="PEAR", rating=5)
    # P12 Leo: member since 2025; one purchase 2025-12-01 ¥88.
    shop.member(12, "2025-01-01 09:00")
    shop.order(12, "2025-12-01 12:00", 88)
    shop.write()


def copy_to_duckdb(source: Source, tables: Sequence[str] = TABLES) -> Source:
    """Copy the store's ``tables`` into an in-memory DuckDB (JSON kept as JSON)."""
    duck = ibis.duckdb.connect()
    for name in tables:
        table = source.table(name)
        if "attributes" in table.columns:
            table = table.mutate(attributes=table.attributes.cast("string"))
        duck.create_table(name, table.to_pyarrow())
        if "attributes" in table.columns:
            duck.raw_sql(f"ALTER TABLE {name} ALTER attributes TYPE JSON")
    return Source(duck)


@contextmanager
def analysed(engine: Engine, engine_kind: str, tables: Sequence[str] = TABLES) -> Iterator[Source]:
    """Open the store itself, or (``duckdb``) a DuckDB copy of its ``tables``: the same analyses run on both."""
    with open_source(engine) as store:
        yield copy_to_duckdb(store, tables) if engine_kind == "duckdb" else store


@pytest.fixture(params=["store", "duckdb"])
def source(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Source]:
    build_shop(engine)
    with analysed(engine, request.param) as opened:
        yield opened


CLOCK = base.Clock.at(AS_OF, ZONE)


def test_rfm_values_scores_and_classes(source: Source) -> None:
    analysis = rfm.analyse(source, CLOCK, OCTOBER, RfmSettings())

    rows = {row["person_id"]: row for row in analysis.scored.to_pyarrow().to_pylist()}
    values = {pid: (r["recency_days"], r["frequency"], r["monetary_fen"]) for pid, r in rows.items()}
    assert values == {
        1: (6, 3, 19500),
        2: (25, 2, 17000),
        3: (24, 1, 6000),
        4: (0, 1, 1000),
        6: (28, 1, 7000),
        9: (17, 1, 2500),
        11: (20, 2, 10000),
    }
    assert analysis.people == 7
    assert analysis.recency_score_cuts == (6, 17, 24, 25)
    assert analysis.frequency_score_cuts == (1, 1, 2, 2)
    assert analysis.monetary_score_cuts == (2500, 6000, 10000, 17000)
    assert (analysis.class_cuts.recency_days, analysis.class_cuts.frequency) == (20, 1)
    assert analysis.class_cuts.monetary_fen == 7000
    scores = {pid: (r["r_score"], r["f_score"], r["m_score"]) for pid, r in rows.items()}
    assert scores[1] == (4, 5, 5)
    assert scores[4] == (5, 1, 1)
    assert scores[2] == (1, 3, 4)
    assert {pid: r["rfm_class"] for pid, r in rows.items()} == {
        1: "important_value",
        2: "important_keep",
        3: "general_win_back",
        4: "general_develop",
        6: "general_win_back",
        9: "general_develop",
        11: "important_keep",
    }


def test_rfm_report_counts_every_class(source: Source) -> None:
    report = rfm.report(source, CLOCK, OCTOBER, RfmSettings())

    counts = {figures.rfm_class.value: figures.people for figures in report.classes}
    assert counts == {
        "important_value": 1,
        "important_develop": 0,
        "important_keep": 2,
        "important_win_back": 0,
        "general_value": 0,
        "general_develop": 2,
        "general_keep": 0,
        "general_win_back": 2,
    }
    data = report.as_dict()
    assert data["classes"][2] == {
        "class": "important_keep",
        "name": "重要保持",
        "people": 2,
        "share": "0.2857",
        "monetary": "270.00",
        "purchase_days": 4,
    }


def test_rfm_with_brand_thresholds(source: Source) -> None:
    settings = RfmSettings(
        recency_score_cuts=(7, 30),
        frequency_score_cuts=(1, 2),
        monetary_score_cuts=(5000, 15000),
        class_cuts=rfm.RfmCuts(recency_days=7, frequency=1, monetary_fen=15000),
    )
    rows = {
        r["person_id"]: r
        for r in rfm.analyse(source, CLOCK, OCTOBER, settings).scored.to_pyarrow().to_pylist()
    }

    # R high below 7 days: P1 (6), P4 (0); F high above 1: P1, P2, P11; M high above ¥150: P1, P2.
    assert {pid: r["rfm_class"] for pid, r in rows.items()} == {
        1: "important_value",
        2: "important_keep",
        3: "general_win_back",
        4: "general_develop",
        6: "general_win_back",
        9: "general_win_back",
        11: "general_keep",
    }
    assert {pid: (r["r_score"], r["f_score"], r["m_score"]) for pid, r in rows.items()} == {
        1: (3, 3, 3),
        2: (2, 2, 3),
        3: (2, 1, 2),
        4: (3, 1, 1),
        6: (2, 1, 2),
        9: (2, 1, 1),
        11: (2, 2, 2),
    }


def test_lifecycle_stages_and_flows(source: Source) -> None:
    report = lifecycle.report(source, CLOCK, OCTOBER, LifecycleSettings())

    assert report.counts == {
        Stage.REGISTERED: 1,
        Stage.NEW: 5,
        Stage.ACTIVE: 2,
        Stage.SILENT: 0,
        Stage.SLEEPING: 1,
        Stage.CHURNED: 1,
    }
    assert report.previous_as_of == date(2026, 9, 30)
    assert report.previous_counts == {
        Stage.REGISTERED: 3,
        Stage.NEW: 2,
        Stage.ACTIVE: 0,
        Stage.SILENT: 0,
        Stage.SLEEPING: 1,
        Stage.CHURNED: 1,
    }
    assert report.flows == {
        ("new", "active"): 2,
        ("registered", "new"): 3,
        ("none", "new"): 2,
        ("none", "registered"): 1,
        ("sleeping", "sleeping"): 1,
        ("churned", "churned"): 1,
    }
    people = {
        r["person_id"]: r["stage"]
        for r in lifecycle.stages(source, CLOCK, LifecycleSettings()).to_pyarrow().to_pylist()
    }
    assert people == {
        1: "active",
        2: "new",
        3: "new",
        4: "new",
        5: "registered",
        6: "active",
        8: "sleeping",
        9: "new",
        11: "new",
        12: "churned",
    }


def test_lifecycle_with_a_shorter_cycle(source: Source) -> None:
    # Cycle 10 days: new < 10, active < 10, silent < 20, sleeping < 60 days.
    settings = LifecycleSettings(cycle_days=10)
    people = {
        r["person_id"]: r["stage"] for r in lifecycle.stages(source, CLOCK, settings).to_pyarrow().to_pylist()
    }

    assert people == {
        1: "active",  # last Oct 25: 6 days
        2: "sleeping",  # last Oct 6: 25 days
        3: "sleeping",  # Oct 7: 24 days
        4: "new",  # Oct 31: 0 days
        5: "registered",
        6: "sleeping",  # Oct 3: 28 days
        8: "churned",  # Aug 1: 91 days
        9: "silent",  # Oct 14: 17 days
        11: "sleeping",  # Oct 11: 20 days
        12: "churned",
    }


def test_layers_and_health_metrics(source: Source) -> None:
    report = layers.report(source, CLOCK, OCTOBER, LayerSettings())

    data = report.as_dict()
    assert data["layers"] == {
        "connected": 2,  # P3 (follows), P10 (WeCom consent)
        "member_not_purchased": 3,  # P5, P8 (refunded in full), P12
        "purchased": 1,  # P4 (Oct 31 23:30 local)
        "repurchase": 1,  # P11 (own share, 3★ review, 5★ of a product not bought)
        "koc": 2,  # P1 (5★ review of APPLE), P2 (share S1 bought by P3)
    }
    assert data["capital"] == 9
    assert data["previous_capital"] == 9
    assert data["deepened"] == 4  # P1, P2, P4, P11
    assert data["conversion"] == "0.4444"
    # A field's visitors did anything recorded there in October: an event of any kind, or an order
    # through it. Layer holders: P1, P2, P3, P4, P5, P8, P10, P11, P12 (not P6, P9).
    assert data["visitors"] == {
        "group_chat": {"visitors": 1, "held": 0},  # P6 left Oct 12
        "live_room": {"visitors": 2, "held": 1},  # P6, P10 visit
        "mini_program": {"visitors": 5, "held": 4},  # P1, P8, P9 visit; P2, P11 share; P1, P11 review
        "pos": {"visitors": 8, "held": 6},  # orders of P1 (and P7), P2, P3, P4, P6, P8 (refunded), P9, P11
    }
    assert data["connection"] == {
        "group_chat": "0.0000",
        "live_room": "0.5000",
        "mini_program": "0.8000",
        "pos": "0.7500",
    }
    # P1 235 + P2 170 + P3 60 + P4 10 + P8 80 + P11 100 + P12 88.
    assert data["clv_transaction_value"] == "743.00"
    assert report.transitions == {
        ("purchased", "koc"): 1,
        ("member_not_purchased", "koc"): 1,
        ("connected", "connected"): 2,
        ("member_not_purchased", "purchased"): 1,
        ("none", "member_not_purchased"): 1,
        ("repurchase", "none"): 1,
        ("member_not_purchased", "member_not_purchased"): 2,
        ("member_not_purchased", "repurchase"): 1,
    }


def test_layers_per_person_with_own_transaction_value(source: Source) -> None:
    rows = layers.people(source, CLOCK, OCTOBER, LayerSettings()).to_pyarrow().to_pylist()

    assert {row["person_id"]: (row["layer"], row["transaction_value_fen"]) for row in rows} == {
        1: ("koc", 23500),  # Sep 10 ¥40 + Oct 2 ¥100 + Oct 20 ¥50 + ¥30 + P7's Oct 25 ¥15 (merged)
        2: ("koc", 17000),  # Oct 5 ¥200 − ¥50 refunded + Oct 6 ¥20
        3: ("connected", 6000),  # Oct 7 ¥60: not a member, yet the spend is theirs
        4: ("purchased", 1000),  # Oct 31 ¥10; the Nov 1 ¥999 is after the period's end
        5: ("member_not_purchased", 0),  # never bought
        8: ("member_not_purchased", 8000),  # Aug 1 ¥80; Oct 8 ¥300 refunded in full
        10: ("connected", 0),
        11: ("repurchase", 10000),  # Oct 10 ¥45 (refunded Nov 2, after the end) + Oct 11 ¥55
        12: ("member_not_purchased", 8800),  # 2025-12-01 ¥88
    }
    # P6 (left Oct 10, ¥130) and P9 (guest, ¥25) hold no layer: the values add up to the report's.
    assert sum(row["transaction_value_fen"] for row in rows) == 74300


def test_a_guest_order_carrying_a_share_is_successful_propagation(engine: Engine) -> None:
    build_shop(engine)
    # P11 repurchased in October and shared S2, but only her own order carried it. A guest (no
    # identifier) buys with S2 on Oct 15: another person placed an order carrying her share, so
    # she is KOC.
    later = Shop(engine)
    later.order_id = 200
    guest = later.order(11, "2026-10-15 12:00", 30, share_id="S2")
    later.rows[Order][-1].update(person_id=None, identifier_id=None)
    later.write()
    with open_source(engine) as source:
        held = {
            row["person_id"]: row["layer"]
            for row in layers.people(source, CLOCK.on(OCTOBER.end), OCTOBER, LayerSettings())
            .to_pyarrow()
            .to_pylist()
        }
    assert held[11] == "koc"
    # Refunded in full by the end of October, the guest's order propagates nothing.
    refund = Shop(engine)
    refund.refund(guest, "2026-10-20 12:00", 30)
    refund.write()
    with open_source(engine) as source:
        again = (
            layers.people(source, CLOCK.on(OCTOBER.end), OCTOBER, LayerSettings()).to_pyarrow().to_pylist()
        )
    assert {row["person_id"]: row["layer"] for row in again}[11] == "repurchase"


def _reports(engine: Engine) -> list[dict[str, Any]]:
    with open_source(engine) as source:
        return [
            rfm.report(source, CLOCK, OCTOBER, RfmSettings()).as_dict(),
            lifecycle.report(source, CLOCK, OCTOBER, LifecycleSettings()).as_dict(),
            layers.report(source, CLOCK, OCTOBER, LayerSettings()).as_dict(),
        ]


def test_what_happens_after_the_as_of_date_changes_no_answer(engine: Engine) -> None:
    build_shop(engine)
    before = _reports(engine)
    # November: P5 buys and reviews, P3 joins and shares, P1's October order is refunded in full,
    # P10 withdraws consent, P9 visits — all after the as-of date, so nothing about October moves.
    later = Shop(engine)
    later.order_id, later.event_id = 100, 100
    later.member(3, "2026-11-02 09:00")
    p5 = later.order(5, "2026-11-03 12:00", 66)
    later.event(5, "review", "mini_program", "2026-11-04 10:00", sku="FRUIT", rating=5)
    later.event(3, "share", "mini_program", "2026-11-05 10:00", share_id="S9")
    later.order(4, "2026-11-06 12:00", 12, share_id="S9")
    later.refund(2, "2026-11-07 12:00", 100)  # order 2: P1's Oct 2 ¥100
    later.refund(p5, "2026-11-08 12:00", 10)
    later.consent(10, "wecom", False, "2026-11-09 10:00")
    later.event(9, "visit", "mini_program", "2026-11-10 10:00")
    later.write()

    assert _reports(engine) == before
    # The same analyses as of a later date do see it (the rows were really written).
    with open_source(engine) as source:
        november = parse_period("2026-11", as_of=date(2026, 11, 30))
        moved = rfm.report(source, base.Clock.at(date(2026, 11, 30), ZONE), november, RfmSettings())
    assert moved.people == 2  # P4 (¥999 on Nov 1, ¥12 on Nov 6) and P5 (¥66 less ¥10)
