"""Cross tables by person attributes (stage, layer, preference…) on the hand-worked shop.

The shop is ``test_insight_analyses.build_shop``; each person's stage, layer and spend there are
worked out by hand in that module. As of 2026-10-31, period 2026-10:

- members at the end of October: P1, P2, P4, P5, P8, P11, P12 (P6 left on Oct 10; P3, P9 and
  P10 never joined);
- their stages: P1 active, P2 new, P4 new, P5 registered, P8 sleeping, P11 new, P12 churned;
- their October layers: P1 koc, P2 koc, P4 purchased, P5, P8 and P12 member_not_purchased,
  P11 repurchase;
- October's purchases by the buyer's stage: active — P1 ¥100, ¥50, ¥30 and P7's ¥15 (merged
  into P1), P6 ¥70: 5 orders, ¥265; new — P2 ¥150 (¥200 less ¥50) and ¥20, P3 ¥60, P4 ¥10,
  P9 ¥25, P11 ¥45 (refunded only after the as-of date) and ¥55: 7 orders, ¥365. P8's ¥300 was
  refunded in full: no purchase.
- preferences over the trailing year: every order line is ``fruit``, so every member who bought
  in it prefers fruit; P5 bought nothing (``none``). Nobody has a tier (no programme): ``none``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from memberops.insight import base, cross
from memberops.insight.kpi_rules import Dimension, InvalidOption, Measure, dimension
from memberops.insight.nightly import COPIED_TABLES
from memberops.insight.source import Source
from tests.integration.test_insight_analyses import AS_OF, OCTOBER, ZONE, analysed, build_shop

CLOCK = base.Clock.at(AS_OF, ZONE)


@pytest.fixture(params=["store", "duckdb"])
def source(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Source]:
    build_shop(engine)
    # A DuckDB copy needs the tables the attributes read too (tiers, points, plans…): the nightly run's.
    with analysed(engine, request.param, COPIED_TABLES) as opened:
        yield opened


def test_members_by_stage_and_layer(source: Source) -> None:
    report = cross.report(source, CLOCK, OCTOBER, (), Dimension.STAGE, Dimension.LAYER, Measure.MEMBERS)

    assert report.row_groups == ("registered", "new", "active", "sleeping", "churned")
    assert report.column_groups == ("member_not_purchased", "purchased", "repurchase", "koc")
    assert {key: cell.people for key, cell in report.cells.items()} == {
        ("active", "koc"): 1,
        ("new", "koc"): 1,
        ("new", "purchased"): 1,
        ("new", "repurchase"): 1,
        ("registered", "member_not_purchased"): 1,
        ("sleeping", "member_not_purchased"): 1,
        ("churned", "member_not_purchased"): 1,
    }
    assert {group: cell.people for group, cell in report.row_totals.items()} == {
        "registered": 1,
        "new": 3,
        "active": 1,
        "sleeping": 1,
        "churned": 1,
    }
    assert report.total.people == 7


def test_sales_by_the_buyers_stage(source: Source) -> None:
    report = cross.report(source, CLOCK, OCTOBER, (), Dimension.STAGE, Dimension.CHANNEL, Measure.SALES)

    assert report.as_dict()["cells"] == [
        {"row": "new", "column": "pos", "value": "365.00"},
        {"row": "active", "column": "pos", "value": "265.00"},
    ]
    assert {key: cell.orders for key, cell in report.cells.items()} == {
        ("new", "pos"): 7,
        ("active", "pos"): 5,
    }
    assert report.total.sales_fen == 630_00


def test_members_by_preference_and_tier(source: Source) -> None:
    report = cross.report(source, CLOCK, OCTOBER, (), Dimension.PREFERRED, Dimension.TIER, Measure.MEMBERS)

    assert report.row_groups == ("fruit", "none")
    assert {key: cell.people for key, cell in report.cells.items()} == {
        ("fruit", "none"): 6,
        ("none", "none"): 1,
    }


def test_a_person_dimension_is_read_by_name_and_not_crossed_with_itself() -> None:
    assert dimension("stage") is Dimension.STAGE
    with pytest.raises(InvalidOption, match="rows and columns are both stage"):
        cross.report(None, CLOCK, OCTOBER, (), Dimension.STAGE, Dimension.STAGE)  # type: ignore[arg-type]
