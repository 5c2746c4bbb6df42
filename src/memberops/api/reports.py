"""``/reports/points|tiers|coupons``: the loyalty reports, read-only, for analysts, operators and admins.

Dates are business dates in the brand's time zone, both ends included (``from`` and ``to``). Money
is yuan as a string, ratios are decimal strings with four places (``null`` when the denominator is
zero), points and counts are numbers. What each figure means is in ``memberops.loyalty.reports``
and in the field descriptions below.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from memberops.access.rules import Permission
from memberops.access.service import Caller
from memberops.api.deps import ServicesDep, reading, require
from memberops.api.schemas import error_responses
from memberops.kit.clock import business_date, utc_now
from memberops.loyalty.reports import chosen_period, coupon_report, points_economics, tier_report
from memberops.wiring import Services

router = APIRouter(prefix="/reports", tags=["reports"], responses=error_responses(401, 403, 422))

ReportReader = Annotated[Caller, Depends(require(Permission.READ_REPORTS))]
#: Months the points report covers by default (it breaks them down month by month).
POINTS_MONTHS = 12

FromQuery = Annotated[
    date | None,
    Query(
        alias="from", description="first business date (default: see the endpoint)", examples=["2026-01-01"]
    ),
]
ToQuery = Annotated[
    date | None, Query(alias="to", description="last business date (default: today)", examples=["2026-03-31"])
]
_RATIO = "a decimal string with four places, null when the denominator is zero"


class PointsFiguresView(BaseModel):
    """The points economics of a period or of one month of it."""

    start: date
    end: date
    issued: int = Field(description="earned + gifted + added")
    earned: int = Field(description="points earned by purchases")
    gifted: int = Field(description="upgrade, birthday, plan-welcome and growth-task gifts")
    added: int = Field(description="positive manual adjustments")
    burned: int = Field(description="spent − restored")
    spent: int = Field(description="points spent on rewards, at checkout or redeemed")
    restored: int = Field(description="spent points put back by a cancellation")
    expired: int
    taken_back: int = Field(description="points taken back by refunds")
    clawed_back: int = Field(description="later credits repaying a refund shortfall")
    removed: int = Field(description="negative manual adjustments")
    other: int = Field(description="the net of any other entry kind")
    net_change: int = Field(description="outstanding_points − opening_points")
    opening_points: int = Field(description="sum of all balances when the period began")
    outstanding_points: int = Field(description="sum of all balances when the period ended")
    point_value: str | None = Field(description="yuan per point under the programme in force at the end")
    liability: str | None = Field(description="outstanding_points × point_value, in yuan")
    burned_value: str = Field(description="burned points at their programme versions' point values, in yuan")
    earners: int = Field(description="members who earned points by purchases in the period")
    earner_sales: str = Field(description="their orders paid minus refunds made in the period, in yuan")
    redemption_rate: str | None = Field(description=f"burned ÷ issued: {_RATIO}")
    return_on_points: str | None = Field(description=f"earner_sales ÷ burned_value: {_RATIO} (or ≤ 0)")


class PointsEconomicsView(PointsFiguresView):
    """The points economics of a period, and of each calendar month in it (cut to the period)."""

    time_zone: str
    months: list[PointsFiguresView]


class TierCountView(BaseModel):
    """Members in one tier on the report date."""

    tier: str
    name: str | None
    members: int
    share: str | None = Field(description=f"of all members: {_RATIO}")


class TierTransitionView(BaseModel):
    """Tier changes from one tier to another in the period."""

    from_tier: str | None
    to_tier: str
    direction: str = Field(description="`up` or `down`")
    changes: int = Field(description="tier history records")
    members: int = Field(description="distinct members among them")


class TierReportView(BaseModel):
    """Members per tier on a date, and the tier moves of a period."""

    on: date
    members: int = Field(description="members at the end of `on`")
    distribution: list[TierCountView]
    start: date
    end: date
    transitions: list[TierTransitionView]
    upgrades: int
    downgrades: int
    members_at_start: int = Field(description="members when the period began")
    moved_up: int = Field(
        description="of them, those whose tier at the end ranks above their tier at the start"
    )
    moved_down: int = Field(
        description="of them, those whose tier at the end ranks below their tier at the start"
    )
    up_rate: str | None = Field(description=f"moved_up ÷ members_at_start: {_RATIO}")
    down_rate: str | None = Field(description=f"moved_down ÷ members_at_start: {_RATIO}")
    time_zone: str


class CouponFiguresView(BaseModel):
    """Coupons of one template (``*``: all templates) in the period."""

    template: str
    name: str | None
    issued: int
    redeemed: int = Field(description="uses made in the period and still standing at its end")
    released: int = Field(description="uses undone in the period")
    expired: int
    voided: int
    redemption_rate: str | None = Field(description=f"redeemed ÷ issued: {_RATIO}")
    discount: str = Field(description="what the counted uses took off, in yuan")
    orders: int = Field(description="distinct stored orders the counted uses were on")
    order_sales: str = Field(
        description="those orders' amounts minus refunds made by the period's end, in yuan"
    )


class CouponReportView(BaseModel):
    """Coupon issuance and redemption per template, and for all templates."""

    start: date
    end: date
    time_zone: str
    templates: list[CouponFiguresView]
    total: CouponFiguresView


def _today(services: Services) -> date:
    return business_date(utc_now(), services.settings.time_zone)


def _period(services: Services, start: date | None, end: date | None, months: int) -> tuple[date, date]:
    return chosen_period(start, end, today=_today(services), months=months)


@router.get("/points", response_model=PointsEconomicsView)
def points_report(
    services: ServicesDep, _: ReportReader, start: FromQuery = None, end: ToQuery = None
) -> PointsEconomicsView:
    """Points economics: issued, burned, expired, outstanding liability, redemption rate, return on points.

    Default period: the last 12 calendar months up to today, broken down month by month.
    """
    first, last = _period(services, start, end, POINTS_MONTHS)
    with reading(services) as session:
        report = points_economics(session, start=first, end=last, time_zone=services.settings.time_zone)
    return PointsEconomicsView.model_validate(report.as_dict())


@router.get("/tiers", response_model=TierReportView)
def tiers_report(
    services: ServicesDep,
    _: ReportReader,
    on: Annotated[date | None, Query(description="the date of the distribution (default: today)")] = None,
    start: FromQuery = None,
    end: ToQuery = None,
) -> TierReportView:
    """Members per tier on a date, and the tier moves of a period (default: this month to date)."""
    first, last = _period(services, start, end, 1)
    with reading(services) as session:
        report = tier_report(
            session,
            on=on if on is not None else _today(services),
            start=first,
            end=last,
            time_zone=services.settings.time_zone,
        )
    return TierReportView.model_validate(report.as_dict())


@router.get("/coupons", response_model=CouponReportView)
def coupons_report(
    services: ServicesDep, _: ReportReader, start: FromQuery = None, end: ToQuery = None
) -> CouponReportView:
    """Coupons issued, redeemed, released, expired and voided per template (default: this month to date)."""
    first, last = _period(services, start, end, 1)
    with reading(services) as session:
        report = coupon_report(session, start=first, end=last, time_zone=services.settings.time_zone)
    return CouponReportView.model_validate(report.as_dict())
