"""KPIs, cross tables, cohorts, the magic number and preferences on a hand-worked chain shop.

Every expected number below was worked out by hand from the rows ``kpi_support.build_chain``
writes (see the comments there); none is computed by the code under test. Each case runs on the
store itself (SQLite or PostgreSQL) and on a DuckDB copy of it, and must give the same answers.

Brand time zone Asia/Shanghai; as of 2026-10-31; period 2026-10 (previous 2026-09) for KPIs and
cross tables, the trailing 12 months (2025-11-01 – 2026-10-31) for the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import Engine, select

from memberops.insight import base, cohorts, cross, kpis, magic, preferences
from memberops.insight.kpi_rules import Dimension, InvalidOption, MagicSettings, Measure, PreferenceSettings
from memberops.insight.periods import parse_period
from memberops.insight.source import Source
from memberops.models import Order
from tests.integration.kpi_support import TIERS, analysed, build_chain
from tests.integration.test_insight_analyses import Shop

ZONE = "Asia/Shanghai"
AS_OF = date(2026, 10, 31)
OCTOBER = parse_period("2026-10", as_of=AS_OF)
YEAR = parse_period("12m", as_of=AS_OF)
CLOCK = base.Clock.at(AS_OF, ZONE)

#: The raw counts of a KPI group, in this order.
COUNTS = (
    "members",
    "new_members",
    "active_members",
    "engaged_members",
    "purchasers",
    "repeat_purchasers",
    "previous_active_members",
    "churned_members",
    "members_at_start",
    "moved_up",
    "moved_down",
    "orders",
    "sales",
    "member_orders",
    "member_sales",
)


@pytest.fixture(params=["store", "duckdb"])
def source(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Source]:
    build_chain(engine)
    with analysed(engine, request.param) as opened:
        yield opened


def _counts(figures: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(figures[name] for name in COUNTS)


def test_kpis_overall(source: Source) -> None:
    data = kpis.report(source, CLOCK, OCTOBER, TIERS).as_dict()

    assert data["previous_period"] == "2026-09"
    assert data["overall"] == {
        "members": 6,  # P1, P2, P4, P5, P6, P9 (P8 left Oct 20)
        "new_members": 2,  # P4 (Oct 15), P6 (Oct 12)
        "active_members": 4,  # P1, P4, P5, P6 (P9's order was refunded in full)
        "activity_rate": "0.6667",
        "engaged_members": 5,  # + P2 (a visit)
        "engagement_rate": "0.8333",
        "purchasers": 5,  # P1, P3, P4, P5, P6 (not the guest)
        "repeat_purchasers": 3,  # P1 (Oct 2, 20, 25 via P7), P3 (Oct 7, 8), P6 (Oct 9, 25)
        "repurchase_rate": "0.6000",
        "previous_active_members": 3,  # members on Sep 30 who bought in September: P1, P2, P8
        "churned_members": 2,  # P2, P8
        "churn_rate": "0.6667",
        "members_at_start": 5,  # P1, P2, P5, P8, P9
        "moved_up": 1,  # P1 silver → gold
        "moved_down": 1,  # P5 gold → silver
        "tier_up_rate": "0.2000",
        "tier_down_rate": "0.2000",
        "orders": 10,
        "sales": "845.00",  # 200+100+15 (P1) +60+40 (P3) +80 +200 (P5 net) +50+70 (P6) +30 (guest)
        "member_orders": 6,  # P1 ×3, P4, P5, P6's Oct 25
        "member_sales": "665.00",
        "member_sales_share": "0.7870",  # 665 / 845
        "non_member_orders": 4,  # P3 ×2, P6 before joining, the guest
        "non_member_sales": "180.00",
        "member_aov": "110.83",  # 665 / 6
        "non_member_aov": "45.00",  # 180 / 4
    }


def test_kpis_by_dimension(source: Source) -> None:
    data = kpis.report(source, CLOCK, OCTOBER, TIERS).as_dict()

    by = {name: {group["group"]: _counts(group) for group in groups} for name, groups in data["by"].items()}
    # People by home store (P1, P6 → SH01; P4, P9 → SH02; P5 → BJ01; P2 none); at the start P8 is
    # SH01's. Sales by the order's store: SH01 200 m + 50 + 70 m + 30 guest; SH02 60 + 40 + 80 m;
    # BJ01 15 m (P7 → P1) + 200 m; none: P1's online 100 m.
    assert by["store"] == {
        "BJ01": (1, 0, 1, 1, 2, 0, 0, 0, 1, 0, 1, 2, "215.00", 2, "215.00"),
        "SH01": (2, 1, 2, 2, 2, 1, 2, 1, 2, 1, 0, 4, "350.00", 2, "270.00"),
        "SH02": (2, 1, 1, 1, 2, 1, 0, 0, 1, 0, 0, 3, "180.00", 1, "80.00"),
        "none": (1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, "100.00", 1, "100.00"),
    }
    assert by["store_type"] == {
        "flagship": (2, 1, 2, 2, 2, 1, 2, 1, 2, 1, 0, 4, "350.00", 2, "270.00"),
        "mall": (3, 1, 2, 2, 4, 1, 0, 0, 2, 0, 1, 5, "395.00", 3, "295.00"),
        "none": (1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, "100.00", 1, "100.00"),
    }
    # People by join field; sales by the order's source channel (P1 bought at pos on Oct 2 and 25).
    assert by["channel"] == {
        "mini_program": (1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, "100.00", 1, "100.00"),
        "pos": (5, 2, 4, 4, 5, 3, 2, 1, 4, 1, 1, 9, "745.00", 5, "565.00"),
    }
    # Tier on Oct 31: P1 gold; P5, P9 silver; P2, P4, P6 standard. On Sep 30: P1, P9 silver; P5
    # gold; P2, P8 standard. Sales by the buyer's tier on Oct 31; P3 and the guest are non-members.
    assert list(by["tier"]) == ["standard", "silver", "gold", "non_member"]
    assert by["tier"] == {
        "standard": (3, 2, 2, 3, 2, 1, 2, 2, 2, 0, 0, 3, "200.00", 2, "150.00"),
        "silver": (2, 0, 1, 1, 1, 0, 1, 0, 2, 1, 0, 1, "200.00", 1, "200.00"),
        "gold": (1, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 3, "315.00", 3, "315.00"),
        "non_member": (0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 3, "130.00", 0, "0.00"),
    }
    sh01 = next(group for group in data["by"]["store"] if group["group"] == "SH01")
    assert (sh01["member_sales_share"], sh01["member_aov"], sh01["non_member_aov"]) == (
        "0.7714",
        "135.00",
        "40.00",
    )
    assert (sh01["churn_rate"], sh01["repurchase_rate"]) == ("0.5000", "0.5000")


def test_kpis_without_a_programme_put_every_member_in_no_tier(source: Source) -> None:
    data = kpis.report(source, CLOCK, OCTOBER, ()).as_dict()

    # P1, P5, P9's recorded tiers still show; the others hold none. Tier moves need ranks: none.
    members = {group["group"]: group["members"] for group in data["by"]["tier"]}
    assert members == {"gold": 1, "none": 3, "silver": 2, "non_member": 0}
    assert (data["overall"]["moved_up"], data["overall"]["moved_down"]) == (0, 0)


def test_cross_tier_by_store_type(source: Source) -> None:
    report = cross.report(source, CLOCK, OCTOBER, TIERS)

    data = report.as_dict()
    assert (data["rows"], data["columns"], data["measure"]) == ("tier", "store_type", "members")
    assert data["row_groups"] == ["standard", "silver", "gold"]
    assert data["column_groups"] == ["flagship", "mall", "none"]
    assert data["cells"] == [
        {"row": "standard", "column": "flagship", "value": 1},  # P6
        {"row": "standard", "column": "mall", "value": 1},  # P4
        {"row": "standard", "column": "none", "value": 1},  # P2
        {"row": "silver", "column": "mall", "value": 2},  # P5, P9
        {"row": "gold", "column": "flagship", "value": 1},  # P1
    ]
    assert data["row_totals"] == {"standard": 3, "silver": 2, "gold": 1}
    assert data["column_totals"] == {"flagship": 2, "mall": 3, "none": 1}
    assert data["total"] == 6


def test_cross_sales_buyers_and_aov(source: Source) -> None:
    sales = cross.report(source, CLOCK, OCTOBER, TIERS, Dimension.TIER, Dimension.STORE_TYPE, Measure.SALES)
    buyers = cross.report(source, CLOCK, OCTOBER, TIERS, Dimension.TIER, Dimension.STORE_TYPE, Measure.BUYERS)
    aov = cross.report(source, CLOCK, OCTOBER, TIERS, Dimension.TIER, Dimension.STORE_TYPE, Measure.AOV)

    assert {(c["row"], c["column"]): c["value"] for c in sales.as_dict()["cells"]} == {
        ("standard", "flagship"): "120.00",  # P6 50 + 70
        ("standard", "mall"): "80.00",
        ("silver", "mall"): "200.00",
        ("gold", "flagship"): "200.00",
        ("gold", "mall"): "15.00",
        ("gold", "none"): "100.00",
        ("non_member", "flagship"): "30.00",
        ("non_member", "mall"): "100.00",
    }
    assert sales.as_dict()["total"] == "845.00"
    # P1 bought in three store types: one buyer in the gold row and in the grand total.
    assert buyers.as_dict()["row_totals"] == {"standard": 2, "silver": 1, "gold": 1, "non_member": 1}
    assert buyers.as_dict()["column_totals"] == {"flagship": 2, "mall": 4, "none": 1}
    assert buyers.as_dict()["total"] == 5
    assert aov.as_dict()["row_totals"] == {
        "standard": "66.67",
        "silver": "200.00",
        "gold": "105.00",
        "non_member": "43.33",
    }
    assert aov.as_dict()["total"] == "84.50"


def test_cross_channel_by_store(source: Source) -> None:
    report = cross.report(source, CLOCK, OCTOBER, TIERS, Dimension.CHANNEL, Dimension.STORE, Measure.ORDERS)

    assert {(c["row"], c["column"]): c["value"] for c in report.as_dict()["cells"]} == {
        ("mini_program", "none"): 1,
        ("pos", "BJ01"): 2,
        ("pos", "SH01"): 4,
        ("pos", "SH02"): 3,
    }


def test_cross_refuses_one_dimension_twice(source: Source) -> None:
    with pytest.raises(InvalidOption, match="two different"):
        cross.report(source, CLOCK, OCTOBER, TIERS, Dimension.TIER, Dimension.TIER, Measure.MEMBERS)


def test_cohort_retention(source: Source) -> None:
    data = cohorts.report(source, CLOCK, YEAR).as_dict()

    found = {c["cohort"]: (c["people"], [m["people"] for m in c["months"]]) for c in data["cohorts"]}
    assert found == {
        "2025-12": (1, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),  # P5: Dec 2025, then Oct 2026
        "2026-06": (1, [1, 1, 0, 0, 0]),  # P11: Jun, Jul
        "2026-09": (3, [3, 1]),  # P1, P2, P8; P1 again in October
        "2026-10": (3, [3]),  # P3, P4, P6 (P10 first bought in 2025-10, before the period)
    }
    september = next(c for c in data["cohorts"] if c["cohort"] == "2026-09")
    assert september["months"][1] == {"month": 1, "label": "2026-10", "people": 1, "share": "0.3333"}


def test_magic_number(source: Source) -> None:
    settings = MagicSettings(window_days=30, min_people=1)
    data = magic.report(source, CLOCK, YEAR, settings).as_dict()

    # Judged when the n-th purchase day is on or before Oct 1. n=1: P1 (Sep 10 → Oct 2 stays),
    # P2, P8, P5 (Dec 20 → Oct 3: too late), P11 (Jun 1 → Jun 20 stays); P3, P4, P6 too recent;
    # P10's first purchase was before the period. n=2: P10 (Sep 2, no more), P11 (Jun 20 → Jul 5).
    assert data["counts"] == [
        {"purchases": 1, "label": "1", "reached": 8, "judged": 5, "stayed": 2, "stay_rate": "0.4000"},
        {"purchases": 2, "label": "2", "reached": 6, "judged": 2, "stayed": 1, "stay_rate": "0.5000"},
        {"purchases": 3, "label": "3", "reached": 2, "judged": 1, "stayed": 1, "stay_rate": "1.0000"},
        {"purchases": 4, "label": "4", "reached": 2, "judged": 1, "stayed": 0, "stay_rate": "0.0000"},
    ]
    assert data["magic_number"] == 2
    capped = magic.report(source, CLOCK, YEAR, MagicSettings(window_days=30, min_people=3, max_purchases=3))
    assert [count.as_dict()["label"] for count in capped.counts] == ["1", "2", "3+"]
    # "3+" counts people, each once, at their 3rd purchase (row 3 above): P1 (3rd Oct 20, too
    # recent to judge) and P11 (3rd Jul 5, judged; Jul 25 is 20 days on: stayed). Their 4th
    # purchases (P1 Oct 25, P11 Jul 25) make no row and count nobody twice: 2 ≤ 6 reached in row 2.
    assert [(count.reached, count.judged, count.stayed) for count in capped.counts] == [
        (8, 5, 2),
        (6, 2, 1),
        (2, 1, 1),
    ]
    assert capped.magic_number is None  # only n=1 has three judged people, and 0.4 < 0.5


#: A month whose 30-day windows all close after its end (the last on Oct 30).
SEPTEMBER = parse_period("2026-09", as_of=AS_OF)


def _magic_rows(source: Source, as_of: date, period: Any = SEPTEMBER) -> list[tuple[str, int, int, int]]:
    clock = base.Clock.at(as_of, ZONE)
    found = magic.report(source, clock, period, MagicSettings(window_days=30, min_people=1))
    assert found.as_of == as_of
    return [(c.as_dict()["label"], c.reached, c.judged, c.stayed) for c in found.counts]


def test_magic_number_judges_by_the_as_of_date(source: Source) -> None:
    # September's purchase days: P10 Sep 2 (2nd: 2025-10-20 was the 1st), P2 Sep 5, P1 Sep 10 and
    # P8 Sep 15 (each a 1st). Judged: the day + 30 ≤ the as-of date.
    # As of Sep 30 (what --period 2026-09 alone gives): judged only by Aug 31, so nobody.
    assert _magic_rows(source, date(2026, 9, 30)) == [("1", 3, 0, 0), ("2", 1, 0, 0)]
    # As of Oct 5: judged by Sep 5: P2 (no more purchases) and P10 (no more). P1's window runs to
    # Oct 10, so P1 is not judged although his Oct 2 purchase is already known.
    assert _magic_rows(source, date(2026, 10, 5)) == [("1", 3, 1, 0), ("2", 1, 1, 0)]
    # As of Oct 31: everyone judged; P1 stayed (Oct 2 is 22 days after Sep 10), P2 and P8 bought
    # nothing more, P10 neither. Purchases known on Oct 31 count (P1's Oct 2 is after the period).
    assert _magic_rows(source, AS_OF) == [("1", 3, 3, 1), ("2", 1, 1, 0)]
    data = magic.report(source, CLOCK, SEPTEMBER, MagicSettings(window_days=30, min_people=1)).as_dict()
    assert (data["as_of"], data["start"], data["end"]) == ("2026-10-31", "2026-09-01", "2026-09-30")
    assert [row["stay_rate"] for row in data["counts"]] == ["0.3333", "0.0000"]
    assert data["magic_number"] is None  # 1/3 and 0 are below 1/2


@pytest.fixture(params=["store", "duckdb"])
def later_source(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Source]:
    """The chain with rows after Oct 5: P2's Sep 5 order refunded in full on Oct 20, P8 buys Oct 10."""
    build_chain(engine)
    with engine.connect() as connection:
        (p2_order,) = connection.execute(select(Order.id).where(Order.person_id == 2)).scalars()
    later = Shop(engine)
    later.order_id = 1000
    later.refund(p2_order, "2026-10-20 12:00", 50)
    later.order(8, "2026-10-10 12:00", 25)
    later.write()
    with analysed(engine, request.param) as opened:
        yield opened


def test_magic_number_reads_nothing_after_the_as_of_date(later_source: Source) -> None:
    # As of Oct 5 the later rows are unknown: the same as on the chain alone (above). Were the
    # refund read, P2 would leave row 1; were P8's order read and the windows judged by a later
    # date, P8 (Oct 10 is 25 days after Sep 15) would be judged and stayed.
    assert _magic_rows(later_source, date(2026, 10, 5)) == [("1", 3, 1, 0), ("2", 1, 1, 0)]
    # As of Oct 31 both are known: row 1 is P1 and P8, both judged, both stayed (Oct 2, Oct 10);
    # row 2 is still P10 alone. P8's 2nd purchase is on Oct 10, outside September.
    assert _magic_rows(later_source, AS_OF) == [("1", 2, 2, 2), ("2", 1, 1, 0)]


def test_preferences_per_person(source: Source) -> None:
    rows = {
        row["person_id"]: row
        for row in preferences.people(source, CLOCK, YEAR, PreferenceSettings()).to_pyarrow().to_pylist()
    }

    assert {
        pid: (r["preferred"], r["top_category"], r["top_fen"], r["spend_fen"]) for pid, r in rows.items()
    } == {
        1: ("tea", "tea", 35000, 41500),  # tea 100+150+100, snack 50+15 (P7's)
        2: ("snack", "snack", 5000, 5000),
        3: ("tea", "tea", 6000, 10000),
        4: ("snack", "snack", 8000, 8000),  # the Nov 1 order is after the as-of date
        # Oct 3 ¥300 less ¥100 refunded: tea 200 × 2/3 = 133.33, snack 66.66; cup 120 in Dec 2025.
        5: ("mixed", "tea", 13333, 31999),
        6: ("tea", "tea", 7000, 12000),
        8: ("cup", "cup", 4000, 4000),
        10: ("cup", "cup", 3000, 3000),  # the 2025-10-20 tea is before the period
        11: ("snack", "snack", 2000, 4000),  # tea 20 = snack 20: the name that sorts first
    }
    assert rows[5]["categories"] == 3
    assert rows[5]["bucket"] == 1  # 133.33 / 319.99 is in [¼, ½)


def test_preferences_summary(source: Source) -> None:
    data = preferences.report(source, CLOCK, YEAR, PreferenceSettings()).as_dict()

    assert (data["buyers"], data["spend"], data["mixed"]) == (9, "1194.99", 1)
    assert data["categories"] == [
        {
            "category": "tea",
            "spend": "633.33",
            "spend_share": "0.5300",
            "top_people": 4,
            "preferring": 3,
            "preferring_share": "0.3333",
        },
        {
            "category": "snack",
            "spend": "371.66",
            "spend_share": "0.3110",
            "top_people": 3,
            "preferring": 3,
            "preferring_share": "0.3333",
        },
        {
            "category": "cup",
            "spend": "190.00",
            "spend_share": "0.1590",
            "top_people": 2,
            "preferring": 2,
            "preferring_share": "0.2222",
        },
    ]
    assert list(data["top_share_buckets"].values()) == [0, 1, 3, 5]
    strict = preferences.report(source, CLOCK, YEAR, PreferenceSettings(min_share=Fraction(3, 4)))
    # At ¾: P3 (0.6), P5, P6 (0.58), P11 (0.5) are mixed.
    assert strict.mixed == 4


def test_preferences_leave_out_what_is_no_product(source: Source) -> None:
    # Say cups are no product (as a paid plan or a gift card is not): P8 and P10 bought only cups
    # and are no buyers; P5 keeps tea 133.33 and snack 66.66 of Oct 3, so tea is 2/3 of 199.99.
    settings = PreferenceSettings(excluded_categories=("cup",))
    rows = {
        row["person_id"]: row
        for row in preferences.people(source, CLOCK, YEAR, settings).to_pyarrow().to_pylist()
    }

    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 11]
    assert (rows[5]["preferred"], rows[5]["top_fen"], rows[5]["spend_fen"]) == ("tea", 13333, 19999)
    data = preferences.report(source, CLOCK, YEAR, settings).as_dict()
    assert (data["buyers"], data["spend"], data["mixed"]) == (7, "1004.99", 0)
    assert [item["category"] for item in data["categories"]] == ["tea", "snack"]
    assert data["excluded_categories"] == ["cup"]


def test_an_earlier_as_of_date_reads_nothing_after_it(source: Source) -> None:
    september = parse_period("2026-09", as_of=date(2026, 9, 30))
    data = kpis.report(source, base.Clock.at(date(2026, 9, 30), ZONE), september, TIERS).as_dict()

    # On Sep 30: members P1, P2, P5, P8, P9; September buyers P1, P2, P8 (P10 is no member).
    overall = data["overall"]
    assert (overall["members"], overall["active_members"], overall["purchasers"]) == (5, 3, 4)
    assert (overall["sales"], overall["member_sales"]) == ("220.00", "190.00")
    assert {group["group"]: group["members"] for group in data["by"]["tier"]} == {
        "standard": 2,
        "silver": 2,
        "gold": 1,
        "non_member": 0,
    }
