"""Loyalty reports on SQLite and PostgreSQL, with exact figures over the history of ``reports_support``
(built through the real services: ingest, earning, refunds, spends, rewards, adjustments, expiry,
tier evaluation, coupons and checkout); what happens when is told there.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from memberops.kit.errors import ValidationFailed
from memberops.loyalty.points import spend_points
from memberops.loyalty.programme import demo_programme, load_programme
from memberops.loyalty.reports import (
    CouponFigures,
    PointsFigures,
    coupon_report,
    months_of,
    period_of,
    points_economics,
    ratio,
    tier_report,
)
from memberops.loyalty.versions import apply_programme
from memberops.wiring import Services

from .reports_support import ZONE, History, at, build_history, read, write


@pytest.fixture
def history(services: Services) -> History:
    return build_history(services)


def economics(history: History, start: date, end: date) -> Any:
    return read(history.services, lambda s: points_economics(s, start=start, end=end, time_zone=ZONE))


def flows(figures: PointsFigures) -> dict[str, Any]:
    """The figures a reader checks, by name."""
    return {
        name: value
        for name, value in figures.as_dict().items()
        if name not in {"start", "end", "months", "time_zone", "point_value"}
    }


# --- points economics ---------------------------------------------------------------------------------


def test_points_economics_of_a_quarter_and_its_months(history: History) -> None:
    report = economics(history, date(2026, 1, 1), date(2026, 3, 31))

    assert flows(report) == {
        "issued": 547,
        "earned": 417,
        "gifted": 100,
        "added": 30,
        "burned": 120,
        "spent": 125,
        "restored": 5,
        "expired": 0,
        "taken_back": 20,
        "clawed_back": 0,
        "removed": 10,
        "other": 0,
        "net_change": 397,
        "opening_points": 30,
        "outstanding_points": 427,
        "liability": "427.00",
        "burned_value": "120.00",
        "earners": 2,
        "earner_sales": "3950.00",
        "redemption_rate": "0.2194",
        "return_on_points": "32.9167",
    }
    assert (report.point_value_fen, report.redemption_rate, report.time_zone) == (
        100,
        Decimal("0.2194"),
        ZONE,
    )
    january, february, march = report.months
    assert [(m.start, m.end) for m in report.months] == [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 31)),
    ]
    assert flows(january) == {
        "issued": 500,
        "earned": 400,
        "gifted": 100,
        "added": 0,
        "burned": 0,
        "spent": 0,
        "restored": 0,
        "expired": 0,
        "taken_back": 0,
        "clawed_back": 0,
        "removed": 0,
        "other": 0,
        "net_change": 500,
        "opening_points": 30,
        "outstanding_points": 530,
        "liability": "530.00",
        "burned_value": "0.00",
        "earners": 2,
        "earner_sales": "4000.00",  # Ann 1,000 + 2,500, Bob 500; Eve is no point earner
        "redemption_rate": "0.0000",
        "return_on_points": None,
    }
    # February: no purchases, so no earners; Bob's refund is not an earner's sale this month.
    assert (february.issued, february.spent, february.taken_back, february.removed) == (30, 125, 20, 10)
    assert (february.outstanding_points, february.earners, february.earner_sales_fen) == (405, 0, 0)
    assert (february.redemption_rate, february.burned_value_fen, february.return_on_points) == (
        Decimal("4.1667"),
        12500,
        Decimal("0.0000"),
    )
    # March: a cancelled redemption puts back more than was spent, so burning is negative.
    assert (march.earned, march.restored, march.burned, march.redemption_rate) == (
        17,
        5,
        -5,
        Decimal("-0.2941"),
    )
    assert (march.burned_value_fen, march.return_on_points) == (-500, None)
    assert (march.opening_points, march.outstanding_points, march.earners, march.earner_sales_fen) == (
        405,
        427,
        2,
        15000,
    )


def test_the_months_add_up_to_the_period_and_balances_chain(history: History) -> None:
    report = economics(history, date(2025, 11, 1), date(2027, 1, 31))

    assert len(report.months) == 15
    for name in ("earned", "gifted", "added", "spent", "restored", "expired", "taken_back", "removed"):
        assert getattr(report, name) == sum(getattr(month, name) for month in report.months), name
    for before, after in zip(report.months, report.months[1:], strict=False):
        assert before.outstanding_points == after.opening_points
    assert (report.opening_points, report.months[-1].outstanding_points, report.outstanding_points) == (
        0,
        394,
        394,
    )
    assert report.opening_points + report.net_change == report.outstanding_points


def test_refunds_and_expiry_land_in_their_own_months(history: History) -> None:
    april = economics(history, date(2026, 4, 1), date(2026, 4, 30))
    january_2027 = economics(history, date(2027, 1, 1), date(2027, 1, 31))

    assert (april.taken_back, april.opening_points, april.outstanding_points, april.issued) == (
        3,
        427,
        424,
        0,
    )
    assert (april.redemption_rate, april.return_on_points, april.earners) == (None, None, 0)
    assert (january_2027.expired, january_2027.outstanding_points, january_2027.liability_fen) == (
        30,
        394,
        39400,
    )


def test_a_partial_month_is_cut_to_the_period(history: History) -> None:
    report = economics(history, date(2026, 1, 15), date(2026, 2, 10))

    assert [(m.start, m.end) for m in report.months] == [
        (date(2026, 1, 15), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 10)),
    ]
    # From the 15th: Ann's 2,500 (250 + 100 gift); to the 10th: the refund and the 20-point voucher.
    assert (report.earned, report.gifted, report.taken_back, report.spent) == (250, 100, 20, 20)
    assert (report.opening_points, report.outstanding_points) == (180, 490)
    assert (report.earners, report.earner_sales_fen) == (1, 250000)


def test_an_empty_store_reports_zeros_and_no_ratios(services: Services) -> None:
    report = read(
        services, lambda s: points_economics(s, start=date(2026, 1, 1), end=date(2026, 1, 31), time_zone=ZONE)
    )

    assert (report.issued, report.outstanding_points, report.point_value_fen, report.liability_fen) == (
        0,
        0,
        None,
        None,
    )
    assert (report.redemption_rate, report.return_on_points) == (None, None)
    assert [m.as_dict()["liability"] for m in report.months] == [None]


def test_a_backwards_or_too_long_period_is_refused(services: Services) -> None:
    with pytest.raises(ValidationFailed):
        read(
            services,
            lambda s: points_economics(s, start=date(2026, 2, 1), end=date(2026, 1, 1), time_zone=ZONE),
        )
    with pytest.raises(ValidationFailed):
        read(
            services, lambda s: coupon_report(s, start=date(2000, 1, 1), end=date(2026, 1, 1), time_zone=ZONE)
        )


def test_burned_points_are_valued_at_their_version_and_the_liability_at_the_one_in_force(
    history: History,
) -> None:
    """Given a second version worth 0.50 yuan a point from 2026-03-15 and a 40-point spend on 03-20."""
    document = json.loads(demo_programme().canonical_json()) | {"version": "2026.2", "point_value": "0.50"}
    cheaper = load_programme(json.dumps(document), "json")
    write(history.services, lambda s: apply_programme(s, cheaper, actor="test", now=at("2026-03-15 09:00")))
    write(
        history.services,
        lambda s: spend_points(
            s,
            history.persons["ann"],
            40,
            key="late",
            reason="cash",
            source="manual",
            actor="op",
            now=at("2026-03-20 10:00"),
        ),
    )

    report = economics(history, date(2026, 1, 1), date(2026, 3, 31))

    _, february, march = report.months
    assert (february.point_value_fen, february.liability_fen) == (100, 40500)
    # March burns 40 at 0.50 and restores 5 valued at 1.00 (written under the first version).
    assert (march.burned, march.burned_value_fen, march.return_on_points) == (35, 1500, Decimal("10.0000"))
    assert (march.outstanding_points, march.point_value_fen, march.liability_fen) == (387, 50, 19350)
    assert (report.burned, report.burned_value_fen, report.liability_fen) == (160, 14000, 19350)
    assert report.return_on_points == Decimal("28.2143")  # 395,000 ÷ 14,000


# --- tiers ----------------------------------------------------------------------------------------------


def test_tier_distribution_and_upgrades_of_a_quarter(history: History) -> None:
    report = read(
        history.services,
        lambda s: tier_report(
            s, on=date(2026, 3, 31), start=date(2026, 1, 1), end=date(2026, 3, 31), time_zone=ZONE
        ),
    )

    assert report.as_dict() == {
        "on": "2026-03-31",
        "members": 4,
        "distribution": [
            {"tier": "standard", "name": "普卡 Standard", "members": 3, "share": "0.7500"},
            {"tier": "silver", "name": "银卡 Silver", "members": 1, "share": "0.2500"},
            {"tier": "gold", "name": "金卡 Gold", "members": 0, "share": "0.0000"},
        ],
        "start": "2026-01-01",
        "end": "2026-03-31",
        "transitions": [
            {"from_tier": "standard", "to_tier": "silver", "direction": "up", "changes": 1, "members": 1}
        ],
        "upgrades": 1,
        "downgrades": 0,
        "members_at_start": 3,  # Dan joined in February
        "moved_up": 1,
        "moved_down": 0,
        "up_rate": "0.3333",
        "down_rate": "0.0000",
        "time_zone": ZONE,
    }


def test_tier_distribution_before_the_upgrade_and_the_downgrade_a_year_later(history: History) -> None:
    def report(on: date, start: date, end: date) -> Any:
        return read(history.services, lambda s: tier_report(s, on=on, start=start, end=end, time_zone=ZONE))

    before = report(date(2026, 1, 19), date(2026, 1, 1), date(2026, 1, 19))
    later = report(date(2027, 2, 28), date(2027, 1, 1), date(2027, 2, 28))

    assert [(c.tier, c.members) for c in before.distribution] == [("standard", 3), ("silver", 0), ("gold", 0)]
    assert (before.transitions, before.moved_up) == ((), 0)
    assert [(c.tier, c.members) for c in later.distribution] == [("standard", 4), ("silver", 0), ("gold", 0)]
    assert [t.as_dict() for t in later.transitions] == [
        {"from_tier": "silver", "to_tier": "standard", "direction": "down", "changes": 1, "members": 1}
    ]
    assert (later.downgrades, later.members_at_start, later.moved_down, later.down_rate, later.up_rate) == (
        1,
        4,
        1,
        Decimal("0.2500"),
        Decimal("0.0000"),
    )


# --- coupons --------------------------------------------------------------------------------------------


def coupon_rows(report: Any) -> list[tuple[Any, ...]]:
    return [
        (
            f.template,
            f.issued,
            f.redeemed,
            f.released,
            f.expired,
            f.voided,
            f.redemption_rate,
            f.discount_fen,
            f.orders,
            f.order_sales_fen,
        )
        for f in (*report.templates, report.total)
    ]


def test_coupons_issued_in_february(history: History) -> None:
    report = read(
        history.services,
        lambda s: coupon_report(s, start=date(2026, 2, 1), end=date(2026, 2, 28), time_zone=ZONE),
    )

    assert coupon_rows(report) == [
        ("welcome_5", 3, 0, 0, 0, 0, Decimal("0.0000"), 0, 0, 0),
        ("voucher_5", 1, 0, 0, 0, 0, Decimal("0.0000"), 0, 0, 0),
        ("voucher_20", 1, 0, 0, 0, 0, Decimal("0.0000"), 0, 0, 0),
        ("*", 5, 0, 0, 0, 0, Decimal("0.0000"), 0, 0, 0),
    ]


def test_coupons_redeemed_released_expired_and_voided_in_march(history: History) -> None:
    report = read(
        history.services,
        lambda s: coupon_report(s, start=date(2026, 3, 1), end=date(2026, 3, 31), time_zone=ZONE),
    )

    assert coupon_rows(report) == [
        ("welcome_5", 0, 1, 0, 1, 1, None, 500, 1, 10000),
        ("repurchase_10", 1, 1, 0, 0, 0, Decimal("1.0000"), 1000, 1, 5000),
        ("upgrade_silver_20", 0, 0, 0, 1, 0, None, 0, 0, 0),
        ("voucher_5", 0, 0, 0, 0, 1, None, 0, 0, 0),
        ("voucher_20", 0, 0, 1, 1, 0, None, 0, 0, 0),
        ("*", 1, 2, 1, 3, 2, Decimal("2.0000"), 1500, 2, 15000),
    ]
    welcome = report.templates[0]
    assert welcome.as_dict() == {
        "template": "welcome_5",
        "name": "新人无门槛 5 元券",
        "issued": 0,
        "redeemed": 1,
        "released": 0,
        "expired": 1,
        "voided": 1,
        "redemption_rate": None,
        "discount": "5.00",
        "orders": 1,
        "order_sales": "100.00",
    }


def test_coupon_sales_are_net_of_refunds_made_by_the_end_of_the_period(history: History) -> None:
    report = read(
        history.services,
        lambda s: coupon_report(s, start=date(2026, 3, 1), end=date(2026, 4, 30), time_zone=ZONE),
    )

    total: CouponFigures = report.total
    assert (report.templates[0].order_sales_fen, total.orders, total.order_sales_fen) == (7000, 2, 12000)


# --- pieces ---------------------------------------------------------------------------------------------


def test_ratio_rounds_half_to_even_and_has_no_value_over_zero() -> None:
    assert ratio(1, 3) == Decimal("0.3333")
    assert ratio(2, 3) == Decimal("0.6667")
    assert ratio(-5, 17) == Decimal("-0.2941")
    assert ratio(5, 100000) == Decimal("0.0000")  # exactly half: to the even 0
    assert ratio(15, 100000) == Decimal("0.0002")  # exactly half: to the even 2
    assert ratio(7, 0) is None


def test_periods_follow_business_dates_in_the_brand_zone() -> None:
    period = period_of(date(2026, 1, 30), date(2026, 3, 1), ZONE)

    assert (period.begins_at.isoformat(), period.ends_at.isoformat()) == (
        "2026-01-29T16:00:00+00:00",
        "2026-03-01T16:00:00+00:00",
    )
    assert [(m.start.isoformat(), m.end.isoformat()) for m in months_of(period, ZONE)] == [
        ("2026-01-30", "2026-01-31"),
        ("2026-02-01", "2026-02-28"),
        ("2026-03-01", "2026-03-01"),
    ]
    december = months_of(period_of(date(2025, 12, 5), date(2026, 1, 2), ZONE), ZONE)
    assert [(m.start, m.end) for m in december] == [
        (date(2025, 12, 5), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 2)),
    ]
