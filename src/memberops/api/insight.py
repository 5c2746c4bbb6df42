"""``/insight/rfm|lifecycle|layers``: the member-insight analyses, read-only, for analysts and up.

``as_of`` is a business date in the brand's time zone (nothing after it is read, so the answer is
reproducible); ``period`` is ``2026-10``, ``2026``, ``2026-10-01..2026-10-31``, ``90d`` or ``12m``.
Money is yuan as a string, ratios are decimal strings with four places (``null`` when the
denominator is zero). Definitions: ``memberops.insight`` and DOMAIN.md §2, §4, §5.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from memberops.access.rules import Permission
from memberops.access.service import Caller
from memberops.api.deps import ServicesDep, require
from memberops.api.schemas import error_responses
from memberops.insight import service
from memberops.insight.periods import InvalidPeriod
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings

router = APIRouter(prefix="/insight", tags=["insight"], responses=error_responses(401, 403, 422))

InsightReader = Annotated[Caller, Depends(require(Permission.READ_REPORTS))]
AsOfQuery = Annotated[
    date | None,
    Query(description="business date the analysis is taken on (default: the period's end, or today)"),
]
PeriodQuery = Annotated[
    str | None,
    Query(description="2026-10, 2026, 2026-10-01..2026-10-31, 90d or 12m", examples=["2026-10"]),
]
_RATIO = "a decimal string with four places, null when the denominator is zero"


class RfmCutsView(BaseModel):
    recency_days: int
    frequency: int
    monetary: str = Field(description="yuan")


class RfmScoreCutsView(BaseModel):
    recency_days: list[int]
    frequency: list[int]
    monetary: list[str] = Field(description="yuan")


class RfmClassView(BaseModel):
    class_: str = Field(alias="class", description="important_value … general_win_back")
    name: str = Field(description="重要价值 … 一般挽留")
    people: int
    share: str | None = Field(description=f"of the period's purchasers: {_RATIO}")
    monetary: str = Field(description="their net spend in the period, in yuan")
    purchase_days: int


class RfmView(BaseModel):
    """RFM classes of the people who purchased in the period."""

    as_of: date
    period: str
    start: date
    end: date
    time_zone: str
    people: int
    score_cuts: RfmScoreCutsView
    class_cuts: RfmCutsView = Field(description="R is high below, F and M above")
    classes: list[RfmClassView]


class FlowView(BaseModel):
    from_: str = Field(alias="from")
    to: str
    people: int


class LifecycleView(BaseModel):
    """People per lifecycle stage on the as-of date and the flows since the previous period's end."""

    as_of: date
    period: str
    start: date
    end: date
    previous_as_of: date
    time_zone: str
    cycle_days: int
    bounds_days: dict[str, int]
    stages: dict[str, int]
    previous_stages: dict[str, int]
    flows: list[FlowView]


class VisitorsView(BaseModel):
    visitors: int
    held: int


class LayersView(BaseModel):
    """The five relationship layers and the four health metrics of a period."""

    period: str
    start: date
    end: date
    as_of: date
    time_zone: str
    layers: dict[str, int]
    capital: int = Field(description="people in any layer at the end of the period")
    previous_period: str
    previous_capital: int
    deepened: int = Field(description="held a layer at the previous end and a higher one now")
    conversion: str | None = Field(description=f"deepened ÷ previous_capital: {_RATIO}")
    connection: dict[str, str | None] = Field(description=f"per field, held ÷ visitors: {_RATIO}")
    visitors: dict[str, VisitorsView]
    clv_transaction_value: str = Field(description="net spend to date of the people in a layer, in yuan")
    transitions: list[FlowView]


@router.get("/rfm", response_model=RfmView, response_model_by_alias=True)
def rfm(
    services: ServicesDep, _: InsightReader, as_of: AsOfQuery = None, period: PeriodQuery = None
) -> RfmView:
    """RFM classes over the period (default: the 12 months to the as-of date), cut at the medians."""
    run = service.window("rfm", as_of, period, services.settings.time_zone)
    report = service.rfm_report(services.engine, run, RfmSettings())
    return RfmView.model_validate(report.as_dict())


@router.get("/lifecycle", response_model=LifecycleView, response_model_by_alias=True)
def lifecycle(
    services: ServicesDep,
    _: InsightReader,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
    cycle_days: Annotated[int, Query(ge=1, le=3650, description="the repurchase cycle")] = 30,
) -> LifecycleView:
    """Lifecycle stages on the as-of date and flows from the end of the previous period."""
    try:
        settings = LifecycleSettings(cycle_days=cycle_days)
    except ValueError as error:
        raise InvalidPeriod(str(error)) from None
    run = service.window("lifecycle", as_of, period, services.settings.time_zone)
    report = service.lifecycle_report(services.engine, run, settings)
    return LifecycleView.model_validate(report.as_dict())


@router.get("/layers", response_model=LayersView, response_model_by_alias=True)
def layers(
    services: ServicesDep, _: InsightReader, as_of: AsOfQuery = None, period: PeriodQuery = None
) -> LayersView:
    """Relationship layers, Capital, Conversion, Connection per field and CLV's transaction part."""
    run = service.window("layers", as_of, period, services.settings.time_zone)
    report = service.layers_report(services.engine, run, LayerSettings())
    return LayersView.model_validate(report.as_dict())
