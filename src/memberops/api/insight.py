"""``/insight/rfm|lifecycle|layers|kpis|cross|cohorts|magic-number|preferences``: member insight.

The member-insight analyses, read-only, for analysts and up. ``/insight/{rfm,lifecycle,layers,
preferences}/people`` give one row per person as CSV, the rows ``memberops analyze … --format csv``
prints (``insight.export`` writes both).

``as_of`` is a business date in the brand's time zone (nothing after it is read, so the answer is
reproducible); ``period`` is ``2026-10``, ``2026``, ``2026-10-01..2026-10-31``, ``90d`` or ``12m``.
Money is yuan as a string, ratios are decimal strings with four places (``null`` when the
denominator is zero). Definitions: ``memberops.insight`` and DOMAIN.md §2, §4, §5.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from memberops.access.rules import Permission
from memberops.access.service import Caller
from memberops.api.deps import ServicesDep, require
from memberops.api.schemas import error_responses
from memberops.insight import export, kpi_service, service
from memberops.insight.config import api_parameter, lifecycle_with, magic_with, preferences_with, rfm_with
from memberops.insight.config import current as brand_thresholds
from memberops.insight.kpi_rules import DIMENSION_NAMES, PreferenceSettings, dimension, measure
from memberops.insight.rules import LifecycleSettings, RfmSettings

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


def rfm_settings(
    score_quantiles: Annotated[
        str | None, Query(description="score cut points as fractions (default 1/5,2/5,3/5,4/5: scores 1–5)")
    ] = None,
    recency_cuts: Annotated[
        str | None, Query(description="brand score cuts for recency days, ascending (e.g. 7,30,90,180)")
    ] = None,
    frequency_cuts: Annotated[
        str | None, Query(description="brand score cuts for purchase days, ascending (e.g. 1,2,4,8)")
    ] = None,
    monetary_cuts: Annotated[
        str | None, Query(description="brand score cuts for spend in yuan, ascending (e.g. 50,200,500,1000)")
    ] = None,
    class_cuts: Annotated[
        str | None,
        Query(
            description="brand class thresholds DAYS,DAYS_OF_PURCHASE,YUAN: R high below, F and M high above "
            "(default: the brand's, else the population medians)",
            examples=["30,2,500"],
        ),
    ] = None,
) -> RfmSettings:
    """The brand's RFM settings with the request's scoring parameters (``memberops analyze rfm`` options)."""
    return rfm_with(
        brand_thresholds().rfm,
        score_quantiles=score_quantiles,
        recency_cuts=recency_cuts,
        frequency_cuts=frequency_cuts,
        monetary_cuts=monetary_cuts,
        cuts=class_cuts,
        name=api_parameter,
    )


def lifecycle_settings(
    cycle_days: Annotated[
        int | None, Query(ge=1, le=3650, description="the repurchase cycle (default: the brand's, else 30)")
    ] = None,
    stage_cycles: Annotated[
        str | None,
        Query(
            description="NEW,ACTIVE,SILENT,SLEEPING bounds in cycles since the first/last purchase "
            "(default: the brand's, else 1,1,2,6)",
            examples=["1,1,2,6"],
        ),
    ] = None,
) -> LifecycleSettings:
    """The brand's cycle and stage bounds with the request's parameters."""
    return lifecycle_with(
        brand_thresholds().lifecycle, cycle_days=cycle_days, stage_cycles=stage_cycles, name=api_parameter
    )


def preference_settings(
    min_share: Annotated[
        str | None, Query(description="share of spend that makes a preference, e.g. 1/2 (brand's, else 1/2)")
    ] = None,
) -> PreferenceSettings:
    """The brand's preference share with the request's parameter."""
    return preferences_with(brand_thresholds().preferences, min_share=min_share, name=api_parameter)


# Declared after the caller in every route: FastAPI solves dependencies in order, so a caller
# without the permission is refused (401/403) before a bad parameter is (422).
RfmSettingsQuery = Annotated[RfmSettings, Depends(rfm_settings)]
LifecycleSettingsQuery = Annotated[LifecycleSettings, Depends(lifecycle_settings)]
PreferenceSettingsQuery = Annotated[PreferenceSettings, Depends(preference_settings)]

_PEOPLE_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "one row per person, ordered by person id: the columns of "
        "`memberops analyze … --format csv` (money in yuan, shares as four-place decimals)",
    }
}


def _people_csv(analysis: str, people: export.PeopleTable, run: service.Window) -> StreamingResponse:
    """Stream the per-person rows as CSV (``insight.export``, as the CLI writes them)."""
    name = f"{analysis}-people-{run.period.start.isoformat()}-{run.period.end.isoformat()}.csv"
    return StreamingResponse(
        export.csv_chunks(people),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class PeriodHeadingView(BaseModel):
    """The fields a period report opens with (``insight.periods.period_heading``).

    The analyses' views extend it, so each names its as-of date and period alike and in the same
    order as the report it validates.
    """

    as_of: date
    period: str
    start: date
    end: date


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


class RfmView(PeriodHeadingView):
    """RFM classes of the people who purchased in the period."""

    time_zone: str
    people: int
    score_cuts: RfmScoreCutsView
    class_cuts: RfmCutsView = Field(description="R is high below, F and M above")
    classes: list[RfmClassView]


class FlowView(BaseModel):
    from_: str = Field(alias="from")
    to: str
    people: int


class LifecycleView(PeriodHeadingView):
    """People per lifecycle stage on the as-of date and the flows since the previous period's end."""

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
    services: ServicesDep,
    _: InsightReader,
    settings: RfmSettingsQuery,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
) -> RfmView:
    """RFM classes over the period (default: the 12 months to the as-of date).

    Scored and cut at the brand's thresholds (``MEMBEROPS_INSIGHT_*``), by default the quintiles
    and the medians; a parameter given replaces that one threshold for this request.
    """
    run = service.window("rfm", as_of, period, services.settings.time_zone)
    report = service.rfm_report(services.engine, run, settings)
    return RfmView.model_validate(report.as_dict())


@router.get("/rfm/people", response_class=StreamingResponse, responses=_PEOPLE_CSV)
def rfm_people(
    services: ServicesDep,
    _: InsightReader,
    settings: RfmSettingsQuery,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
) -> StreamingResponse:
    """RFM values, scores and class per purchaser of the period, as CSV.

    Columns ``person_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_class``;
    the parameters are those of ``/insight/rfm``.
    """
    run = service.window("rfm", as_of, period, services.settings.time_zone)
    return _people_csv("rfm", export.rfm_people(services.engine, run, settings), run)


@router.get("/lifecycle", response_model=LifecycleView, response_model_by_alias=True)
def lifecycle(
    services: ServicesDep,
    _: InsightReader,
    settings: LifecycleSettingsQuery,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
) -> LifecycleView:
    """Lifecycle stages on the as-of date and flows from the end of the previous period."""
    run = service.window("lifecycle", as_of, period, services.settings.time_zone)
    report = service.lifecycle_report(services.engine, run, settings)
    return LifecycleView.model_validate(report.as_dict())


@router.get("/lifecycle/people", response_class=StreamingResponse, responses=_PEOPLE_CSV)
def lifecycle_people(
    services: ServicesDep,
    _: InsightReader,
    settings: LifecycleSettingsQuery,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
) -> StreamingResponse:
    """Lifecycle stage per person on the as-of date as CSV.

    Columns ``person_id, days_since_first, days_since_last, stage``; the parameters are those of
    ``/insight/lifecycle``.
    """
    run = service.window("lifecycle", as_of, period, services.settings.time_zone)
    return _people_csv("lifecycle", export.lifecycle_people(services.engine, run, settings), run)


@router.get("/layers", response_model=LayersView, response_model_by_alias=True)
def layers(
    services: ServicesDep, _: InsightReader, as_of: AsOfQuery = None, period: PeriodQuery = None
) -> LayersView:
    """Relationship layers, Capital, Conversion, Connection per field and CLV's transaction part."""
    run = service.window("layers", as_of, period, services.settings.time_zone)
    report = service.layers_report(services.engine, run, brand_thresholds().layers)
    return LayersView.model_validate(report.as_dict())


@router.get("/layers/people", response_class=StreamingResponse, responses=_PEOPLE_CSV)
def layers_people(
    services: ServicesDep, _: InsightReader, as_of: AsOfQuery = None, period: PeriodQuery = None
) -> StreamingResponse:
    """Layer per person at the end of the period as CSV: ``person_id, layer, transaction_value``.

    ``transaction_value`` is the person's own part of CLV (net spend to the period's end, yuan);
    over the rows it adds up to the summary's ``clv_transaction_value``.
    """
    run = service.window("layers", as_of, period, services.settings.time_zone)
    return _people_csv("layers", export.layers_people(services.engine, run, brand_thresholds().layers), run)


class KpiFiguresView(BaseModel):
    """The KPIs of one group (definitions: ``memberops.insight.kpis``)."""

    members: int = Field(description="members at the end of the period")
    new_members: int = Field(description="members whose membership began in the period")
    active_members: int = Field(description="members with a purchase in the period")
    activity_rate: str | None = Field(description=f"active ÷ members: {_RATIO}")
    engaged_members: int = Field(description="members with a purchase or any event in the period")
    engagement_rate: str | None = Field(description=f"engaged ÷ members: {_RATIO}")
    purchasers: int
    repeat_purchasers: int = Field(description="purchasers with purchases on 2+ distinct days")
    repurchase_rate: str | None = Field(description=f"repeat ÷ purchasers: {_RATIO}")
    previous_active_members: int = Field(description="members at the previous end who bought in it")
    churned_members: int = Field(description="of those, no purchase in this period")
    churn_rate: str | None = Field(description=f"churned ÷ previously active: {_RATIO}")
    members_at_start: int
    moved_up: int = Field(description="members whose tier at the end ranks above their tier at the start")
    moved_down: int
    tier_up_rate: str | None = Field(description=f"moved up ÷ members at start: {_RATIO}")
    tier_down_rate: str | None = Field(description=f"moved down ÷ members at start: {_RATIO}")
    orders: int
    sales: str = Field(description="net sales in yuan, guest orders included")
    member_orders: int = Field(description="orders whose buyer held a membership when paying")
    member_sales: str
    member_sales_share: str | None = Field(description=f"member sales ÷ sales: {_RATIO}")
    non_member_orders: int
    non_member_sales: str
    member_aov: str | None = Field(description="member sales ÷ member orders, in yuan")
    non_member_aov: str | None = Field(description="non-member sales ÷ non-member orders, in yuan")


class KpiGroupView(KpiFiguresView):
    group: str


class KpisView(PeriodHeadingView):
    """KPIs of the period, overall and by store, store type, channel and tier."""

    previous_period: str
    time_zone: str
    tiers: list[str] = Field(description="tier codes of the programme in force, lowest first")
    overall: KpiFiguresView
    by: dict[str, list[KpiGroupView]] = Field(
        description="store, store_type, channel (people by home, sales by where placed) and tier"
    )


class CrossCellView(BaseModel):
    row: str
    column: str
    value: int | str | None = Field(description="a count, or yuan for sales and aov")


class CrossView(PeriodHeadingView):
    """One measure over two dimensions."""

    time_zone: str
    rows: str
    columns: str
    measure: str
    row_groups: list[str]
    column_groups: list[str]
    cells: list[CrossCellView] = Field(description="non-empty cells only")
    row_totals: dict[str, int | str | None]
    column_totals: dict[str, int | str | None]
    total: int | str | None


class CohortMonthView(BaseModel):
    month: int = Field(description="calendar months since the cohort's month")
    label: str
    people: int = Field(description="people of the cohort who bought in that month")
    share: str | None = Field(description=f"people ÷ cohort: {_RATIO}")


class CohortView(BaseModel):
    cohort: str = Field(description="first-purchase month")
    people: int
    months: list[CohortMonthView]


class CohortsView(PeriodHeadingView):
    """Retention by first-purchase month."""

    time_zone: str
    cohorts: list[CohortView]


class PurchaseCountView(BaseModel):
    purchases: int
    label: str = Field(description="'10+' on the last row")
    reached: int = Field(description="people whose n-th purchase day is in the period")
    judged: int = Field(description="of them, those whose stay window has passed")
    stayed: int = Field(description="of the judged, those who bought again within the window")
    stay_rate: str | None = Field(description=f"stayed ÷ judged: {_RATIO}")


class MagicNumberView(PeriodHeadingView):
    """Stay rate by purchases made and the magic number."""

    time_zone: str
    window_days: int
    threshold: str | None
    min_people: int
    counts: list[PurchaseCountView]
    magic_number: int | None = Field(
        description="the smallest purchase count whose stay rate reaches the threshold"
    )


class CategoryView(BaseModel):
    category: str
    spend: str = Field(description="net spend of all buyers on the category, in yuan")
    spend_share: str | None
    top_people: int = Field(description="buyers whose top category it is")
    preferring: int = Field(
        description="buyers whose top category it is with at least min_share of their spend"
    )
    preferring_share: str | None = Field(description=f"preferring ÷ buyers: {_RATIO}")


class PreferencesView(PeriodHeadingView):
    """Category preferences of the period's buyers."""

    time_zone: str
    min_share: str | None
    excluded_categories: list[str] = Field(description="categories the brand counts as no product")
    buyers: int
    spend: str
    mixed: int = Field(description="buyers with no category at min_share of their spend")
    categories: list[CategoryView]
    top_share_buckets: dict[str, int]


@router.get("/kpis", response_model=KpisView)
def kpis(
    services: ServicesDep, _: InsightReader, as_of: AsOfQuery = None, period: PeriodQuery = None
) -> KpisView:
    """Member KPIs of the period (default: the as-of date's month), overall and by dimension."""
    run = kpi_service.window("kpis", as_of, period, services.settings.time_zone)
    return KpisView.model_validate(kpi_service.kpis_report(services.engine, run).as_dict())


@router.get("/cross", response_model=CrossView)
def cross(
    services: ServicesDep,
    _: InsightReader,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
    rows: Annotated[str, Query(description=DIMENSION_NAMES)] = "tier",
    cols: Annotated[str, Query(description=DIMENSION_NAMES)] = "store_type",
    measure_name: Annotated[
        str, Query(alias="measure", description="members, buyers, orders, sales or aov")
    ] = "members",
) -> CrossView:
    """One measure over two dimensions (default: members by tier × store type).

    A person dimension (``stage``, ``rfm``, ``layer``…) groups by each person's value on the
    as-of date as tag and segment expressions read it, with the brand's thresholds.
    """
    chosen = (dimension(rows), dimension(cols), measure(measure_name))
    run = kpi_service.window("cross", as_of, period, services.settings.time_zone)
    report = kpi_service.cross_report(services.engine, run, *chosen, brand_thresholds())
    return CrossView.model_validate(report.as_dict())


@router.get("/cohorts", response_model=CohortsView)
def cohorts(
    services: ServicesDep, _: InsightReader, as_of: AsOfQuery = None, period: PeriodQuery = None
) -> CohortsView:
    """Retention by first-purchase month (default period: the 12 months to the as-of date)."""
    run = kpi_service.window("cohorts", as_of, period, services.settings.time_zone)
    return CohortsView.model_validate(kpi_service.cohorts_report(services.engine, run).as_dict())


@router.get("/magic-number", response_model=MagicNumberView)
def magic_number(
    services: ServicesDep,
    _: InsightReader,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
    window_days: Annotated[
        int | None, Query(ge=1, le=3650, description="the stay window after a purchase (brand's, else 60)")
    ] = None,
    threshold: Annotated[
        str | None, Query(description="the stay rate of the magic number, e.g. 1/2 (brand's, else 1/2)")
    ] = None,
    min_people: Annotated[
        int | None, Query(ge=1, description="judged people a count needs (else 30)")
    ] = None,
    max_purchases: Annotated[
        int | None, Query(ge=1, le=1000, description="N: the last row counts people at their N-th (else 10)")
    ] = None,
) -> MagicNumberView:
    """Stay rate by the number of purchases made, and the purchase count after which people stay.

    A parameter left out is the brand's threshold (``MEMBEROPS_INSIGHT_*``).
    """
    settings = magic_with(
        brand_thresholds().magic,
        window_days=window_days,
        threshold=threshold,
        min_people=min_people,
        max_purchases=max_purchases,
    )
    run = kpi_service.window("magic-number", as_of, period, services.settings.time_zone)
    return MagicNumberView.model_validate(kpi_service.magic_report(services.engine, run, settings).as_dict())


@router.get("/preferences", response_model=PreferencesView)
def preferences(
    services: ServicesDep,
    _: InsightReader,
    settings: PreferenceSettingsQuery,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
) -> PreferencesView:
    """Category preferences of the period's buyers: per category spend, top and preferring buyers."""
    run = kpi_service.window("preferences", as_of, period, services.settings.time_zone)
    return PreferencesView.model_validate(
        kpi_service.preferences_report(services.engine, run, settings).as_dict()
    )


@router.get("/preferences/people", response_class=StreamingResponse, responses=_PEOPLE_CSV)
def preferences_people(
    services: ServicesDep,
    _: InsightReader,
    settings: PreferenceSettingsQuery,
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
) -> StreamingResponse:
    """Category preference per buyer of the period (default: the 12 months to the as-of date), as CSV.

    Columns ``person_id, preferred, top_category, top, spend, categories, top_share``.
    """
    run = kpi_service.window("preferences", as_of, period, services.settings.time_zone)
    return _people_csv("preferences", export.preferences_people(services.engine, run, settings), run)
