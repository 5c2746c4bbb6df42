"""A hand-worked chain shop for the KPI, cross-table, cohort, magic-number and preference analyses.

Every expected figure in ``test_insight_kpis`` and ``test_insight_kpis_cli_api`` is worked out by
hand from the rows below (see the comments); none is computed by the code under test.

Brand time zone Asia/Shanghai; as of 2026-10-31; period 2026-10 (previous 2026-09).
Tiers, lowest first: standard, silver, gold. Stores: SH01 flagship, SH02 mall, BJ01 mall.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Engine, insert

from memberops.insight.dimensions import EXTRA_TABLES
from memberops.insight.source import TABLES, Source
from memberops.models import Membership, Order, OrderLine, Store, TierChangeRecord
from tests.integration.test_insight_analyses import Shop, at
from tests.integration.test_insight_analyses import analysed as shop_analysed

TIERS = ("standard", "silver", "gold")
#: Explicit ids well above what a sequence hands out, so stores added later (the demo programme's) never collide.
STORES = {"SH01": (901, "flagship"), "SH02": (902, "mall"), "BJ01": (903, "mall")}


class ChainShop(Shop):
    """The analyses' ``Shop`` with stores, lines of several categories and tier history."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.history_id = 0

    def member_at(
        self, person_id: int, joined: str, store: str | None, field: str = "pos", **more: Any
    ) -> None:
        self.member(person_id, joined, **more)
        spell = self.rows[Membership][-1]
        spell["join_store_id"] = STORES[store][0] if store else None
        spell["join_field"] = field

    def sale(
        self,
        person_id: int | None,
        paid: str,
        lines: dict[str, int],
        *,
        store: str | None,
        channel: str = "pos",
    ) -> int:
        """An order of ``lines`` (category → yuan), paid in full."""
        self.order_id += 1
        total = sum(lines.values())
        self.add(
            Order,
            id=self.order_id,
            source=channel,
            external_id=f"O{self.order_id}",
            person_id=person_id,
            identifier_id=person_id,
            store_id=STORES[store][0] if store else None,
            paid_at=at(paid),
            amount_fen=total * 100,
            share_id=None,
            created_at=at(paid),
        )
        for line_no, (category, yuan) in enumerate(lines.items(), start=1):
            self.add(
                OrderLine,
                order_id=self.order_id,
                line_no=line_no,
                sku=category.upper(),
                category=category,
                quantity=1,
                amount_fen=yuan * 100,
            )
        return self.order_id

    def tier_change(self, person_id: int, changed: str, from_tier: str | None, to_tier: str) -> None:
        self.history_id += 1
        up = from_tier is None or TIERS.index(to_tier) > TIERS.index(from_tier)
        self.add(
            TierChangeRecord,
            id=self.history_id,
            person_id=person_id,
            from_tier=from_tier,
            to_tier=to_tier,
            direction="up" if up else "down",
            reason="growth" if up else "evaluation",
            growth=0,
            programme_version_id=None,
            actor="test",
            idempotency_key=f"tier:{self.history_id}",
            note=None,
            changed_at=at(changed),
        )

    def write(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(Store),
                [
                    {
                        "id": store_id,
                        "code": code,
                        "name": code,
                        "city": code[:2],
                        "store_type": kind,
                        "created_at": at("2024-01-01 00:00"),
                    }
                    for code, (store_id, kind) in STORES.items()
                ],
            )
        history = self.rows.pop(TierChangeRecord, [])
        super().write()
        if history:
            with self.engine.begin() as connection:
                connection.execute(insert(TierChangeRecord), history)


def build_chain(engine: Engine) -> None:
    """The hand-worked chain. ``m`` = member order (the buyer held a membership when paying)."""
    shop = ChainShop(engine)
    for person_id in range(1, 12):
        shop.person(person_id, merged_into=1 if person_id == 7 else None)
    # P1: member since Jan at SH01; silver Mar 1, gold Oct 10 (moved up in October).
    shop.member_at(1, "2026-01-05 09:00", "SH01")
    shop.tier_change(1, "2026-03-01 10:00", "standard", "silver")
    shop.tier_change(1, "2026-10-10 10:00", "silver", "gold")
    shop.sale(1, "2026-09-10 12:00", {"tea": 100}, store="SH01")
    shop.sale(1, "2026-10-02 12:00", {"tea": 150, "snack": 50}, store="SH01")  # m ¥200 SH01
    shop.sale(1, "2026-10-20 12:00", {"tea": 100}, store=None, channel="mini_program")  # m ¥100 online
    # P7 was merged into P1: the Oct 25 ¥15 BJ01 order counts for P1 (a third October day).
    shop.sale(7, "2026-10-25 12:00", {"snack": 15}, store="BJ01")
    # P2: member since Mar, joined in the mini program (no store); Sep 5 ¥50 at SH02; visits Oct 5
    # (engaged, not active); churned.
    shop.member_at(2, "2026-03-01 09:00", None, field="mini_program")
    shop.sale(2, "2026-09-05 12:00", {"snack": 50}, store="SH02")
    shop.event(2, "visit", "mini_program", "2026-10-05 10:00")
    # P3: never a member; Oct 7 ¥60 tea and Oct 8 ¥40 snack at SH02 (a repeat purchaser).
    shop.sale(3, "2026-10-07 12:00", {"tea": 60}, store="SH02")
    shop.sale(3, "2026-10-08 12:00", {"snack": 40}, store="SH02")
    # P4: joins Oct 15 at SH02 (new); Oct 16 ¥80 m at SH02; Nov 1 ¥999 is after the as-of date.
    shop.member_at(4, "2026-10-15 09:00", "SH02")
    shop.sale(4, "2026-10-16 12:00", {"snack": 80}, store="SH02")
    shop.sale(4, "2026-11-01 00:10", {"tea": 999}, store="SH02")
    # P5: member since 2025 at BJ01; gold 2025-12-01, down to silver 2026-10-05.
    # 2025-12-20 ¥120 cup; Oct 3 ¥300 (tea 200, snack 100) with ¥100 refunded Oct 4: net ¥200,
    # tea 133.33 and snack 66.66 after spreading the refund.
    shop.member_at(5, "2025-06-01 09:00", "BJ01")
    shop.tier_change(5, "2025-12-01 10:00", "standard", "gold")
    shop.tier_change(5, "2026-10-05 03:00", "gold", "silver")
    shop.sale(5, "2025-12-20 12:00", {"cup": 120}, store="BJ01")
    five = shop.sale(5, "2026-10-03 12:00", {"tea": 200, "snack": 100}, store="BJ01")
    shop.refund(five, "2026-10-04 12:00", 100)
    # P6: buys Oct 9 ¥50 snack at SH01 before joining there Oct 12 (a non-member order), then
    # Oct 25 ¥70 tea m at SH01.
    shop.sale(6, "2026-10-09 12:00", {"snack": 50}, store="SH01")
    shop.member_at(6, "2026-10-12 09:00", "SH01")
    shop.sale(6, "2026-10-25 12:00", {"tea": 70}, store="SH01")
    # A guest buys Oct 11 ¥30 at SH01.
    shop.sale(None, "2026-10-11 12:00", {"snack": 30}, store="SH01")
    # P8: member Feb 1 at SH01 until Oct 20; Sep 15 ¥40 cup at SH01; churned, not a member at the end.
    shop.member_at(8, "2026-02-01 09:00", "SH01", cancelled="2026-10-20 09:00")
    shop.sale(8, "2026-09-15 12:00", {"cup": 40}, store="SH01")
    # P9: member since Jan at SH02, silver since May 1; Oct 8 ¥100 refunded in full on Oct 9.
    shop.member_at(9, "2026-01-01 09:00", "SH02")
    shop.tier_change(9, "2026-05-01 10:00", "standard", "silver")
    nine = shop.sale(9, "2026-10-08 12:00", {"tea": 100}, store="SH02")
    shop.refund(nine, "2026-10-09 12:00", 100)
    # P10: never a member; 2025-10-20 ¥20 tea (before the 12-month window), 2026-09-02 ¥30 cup online.
    shop.sale(10, "2025-10-20 12:00", {"tea": 20}, store=None, channel="tmall")
    shop.sale(10, "2026-09-02 12:00", {"cup": 30}, store=None, channel="tmall")
    # P11: never a member; four ¥10 purchases: Jun 1 and Jun 20 tea, Jul 5 and Jul 25 snack.
    for day, category in (("06-01", "tea"), ("06-20", "tea"), ("07-05", "snack"), ("07-25", "snack")):
        shop.sale(11, f"2026-{day} 12:00", {category: 10}, store=None, channel="tmall")
    shop.write()


def analysed(engine: Engine, engine_kind: str) -> AbstractContextManager[Source]:
    """The analyses' store or DuckDB copy, with the tables the KPI analyses read as well."""
    return shop_analysed(engine, engine_kind, (*TABLES, *EXTRA_TABLES))
