"""``memberops analyze rfm|lifecycle|layers|kpis|cross|cohorts|magic-number|preferences``.

The insight analyses as tables, CSV or JSON.

``--as-of`` is a business date in the brand's time zone (``MEMBEROPS_TIME_ZONE``); nothing after
it is read, so the same data and as-of date always give the same answer. ``--period`` is a month
(``2026-10``), a year, a date range (``2026-10-01..2026-10-31``) or a trailing window (``90d``,
``12m``). ``table`` and ``json`` print the summary; ``csv`` prints one row per person.

A threshold not given as an option is the brand's (``insight.config``: ``MEMBEROPS_INSIGHT_*``,
the ``[insight]`` table of ``MEMBEROPS_INSIGHT_FILE`` or ``--config``), so a command run by hand
shows the classes and stages the nightly run, the tags and the segments are computed with.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from memberops.cli.common import console, print_json, reports_errors, services
from memberops.cli.reports import percent, yuan
from memberops.insight import export, kpi_service, service
from memberops.insight.config import (
    cli_option,
    lifecycle_with,
    magic_with,
    preferences_with,
    rfm_with,
)
from memberops.insight.config import current as brand_thresholds
from memberops.insight.kpi_rules import DIMENSION_NAMES, KPI_DIMENSIONS, bucket_labels, dimension, measure
from memberops.insight.kpis import FIGURE_NAMES
from memberops.insight.rules import (
    LAYER_ORDER,
    RFM_CLASS_NAMES,
    STAGE_ORDER,
)

analyze_app = typer.Typer(
    help="Member insight: RFM classes, lifecycle stages and flows, relationship layers and health metrics, "
    "KPIs, cross tables, cohorts, the magic number and category preferences.",
    no_args_is_help=True,
)


class AnalysisFormat(StrEnum):
    """How an analysis prints: a summary table, the summary as JSON, or one CSV row per person."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of", formats=["%Y-%m-%d"], help="business date the analysis is taken on (default: see --period)"
    ),
]
PeriodOption = Annotated[
    str | None,
    typer.Option(
        "--period",
        help="2026-10, 2026, 2026-10-01..2026-10-31, 90d or 12m (a calendar period sets the as-of date "
        "to its end when --as-of is not given)",
    ),
]
FormatOption = Annotated[AnalysisFormat, typer.Option("--format")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="a TOML file whose [insight] table sets the brand's thresholds (default: MEMBEROPS_INSIGHT_FILE "
        "and MEMBEROPS_INSIGHT_* variables); an option given here wins over it",
    ),
]


#: How an analysis resolves its run: ``service.window`` or ``kpi_service.window`` (their own defaults).
WindowRule = Callable[[str, date | None, str | None, str], service.Window]


def _window(
    analysis: str, as_of: datetime | None, period: str | None, rule: WindowRule = service.window
) -> service.Window:
    """Resolve the run of a command's ``--as-of``/``--period`` in the brand's time zone."""
    return rule(analysis, as_of.date() if as_of is not None else None, period, services().settings.time_zone)


def _csv(people: export.PeopleTable) -> None:
    """Write one row per person, as ``GET /insight/…/people`` does (``insight.export``)."""
    export.write_csv(people, sys.stdout)


@analyze_app.command("rfm")
@reports_errors
def rfm(
    as_of: AsOfOption = None,
    period: PeriodOption = None,
    output: FormatOption = AnalysisFormat.TABLE,
    score_quantiles: Annotated[
        str | None, typer.Option(help="score cut points as fractions (default 1/5,2/5,3/5,4/5: scores 1–5)")
    ] = None,
    recency_cuts: Annotated[
        str | None, typer.Option(help="brand score cuts for recency days, ascending (e.g. 7,30,90,180)")
    ] = None,
    frequency_cuts: Annotated[
        str | None, typer.Option(help="brand score cuts for purchase days, ascending (e.g. 1,2,4,8)")
    ] = None,
    monetary_cuts: Annotated[
        str | None, typer.Option(help="brand score cuts for spend in yuan, ascending (e.g. 50,200,500,1000)")
    ] = None,
    class_cuts: Annotated[
        str | None,
        typer.Option(
            help="brand class thresholds 'DAYS,DAYS_OF_PURCHASE,YUAN': R high below, F and M high above "
            "(default: the brand's, else the population medians)"
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """RFM per person over the period (default: the 12 months to the as-of date) and the eight classes.

    Scoring and class cuts left out come from the brand's insight settings (the quintiles and the
    medians unless the brand set its own).
    """
    settings = rfm_with(
        brand_thresholds(config).rfm,
        score_quantiles=score_quantiles,
        recency_cuts=recency_cuts,
        frequency_cuts=frequency_cuts,
        monetary_cuts=monetary_cuts,
        cuts=class_cuts,
        name=cli_option,
    )
    run = _window("rfm", as_of, period)
    engine = services().engine
    if output is AnalysisFormat.CSV:
        _csv(export.rfm_people(engine, run, settings))
        return
    report = service.rfm_report(engine, run, settings)
    if output is AnalysisFormat.JSON:
        print_json(report.as_dict())
        return
    data = report.as_dict()
    _print_table(
        f"RFM {report.period.start} – {report.period.end}, as of {report.as_of} ({report.people:,} people)",
        ["class", "名称", "people", "share", "spend", "purchase days"],
        [
            [
                figures.rfm_class.value,
                RFM_CLASS_NAMES[figures.rfm_class],
                f"{figures.people:,}",
                percent(_fraction(figures.share)),
                yuan(figures.monetary_fen),
                f"{figures.purchase_days:,}",
            ]
            for figures in report.classes
        ],
    )
    console.print(
        f"class cuts: R below {data['class_cuts']['recency_days']} days, F above "
        f"{data['class_cuts']['frequency']} purchase days, M above ¥{data['class_cuts']['monetary']}; "
        f"score cuts: R {data['score_cuts']['recency_days']}, F {data['score_cuts']['frequency']}, "
        f"M {data['score_cuts']['monetary']}"
    )


@analyze_app.command("lifecycle")
@reports_errors
def lifecycle(
    as_of: AsOfOption = None,
    period: PeriodOption = None,
    output: FormatOption = AnalysisFormat.TABLE,
    cycle_days: Annotated[
        int | None, typer.Option(help="the repurchase cycle in days (default: the brand's, else 30)")
    ] = None,
    stage_cycles: Annotated[
        str | None,
        typer.Option(
            help="NEW,ACTIVE,SILENT,SLEEPING bounds in cycles since the first/last purchase "
            "(default: the brand's, else 1,1,2,6)"
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Lifecycle stage per person on the as-of date, and the flows since the end of the previous period."""
    settings = lifecycle_with(
        brand_thresholds(config).lifecycle, cycle_days=cycle_days, stage_cycles=stage_cycles, name=cli_option
    )
    run = _window("lifecycle", as_of, period)
    engine = services().engine
    if output is AnalysisFormat.CSV:
        _csv(export.lifecycle_people(engine, run, settings))
        return
    report = service.lifecycle_report(engine, run, settings)
    if output is AnalysisFormat.JSON:
        print_json(report.as_dict())
        return
    _print_table(
        f"lifecycle stages on {report.as_of} (cycle {settings.cycle_days} days)",
        ["stage", f"on {report.previous_as_of}", f"on {report.as_of}"],
        [
            [stage.value, f"{report.previous_counts[stage]:,}", f"{report.counts[stage]:,}"]
            for stage in STAGE_ORDER
        ],
    )
    _print_moves(
        f"flows {report.previous_as_of} → {report.as_of} (rows: from, columns: to)",
        ["none", *(stage.value for stage in STAGE_ORDER)],
        report.flows,
    )


@analyze_app.command("layers")
@reports_errors
def layers(
    as_of: AsOfOption = None,
    period: PeriodOption = None,
    output: FormatOption = AnalysisFormat.TABLE,
    config: ConfigOption = None,
) -> None:
    """The five relationship layers for the period and the health metrics (FAST+).

    Capital, Conversion, Connection per field and CLV's transaction part, with the layer
    transitions from the previous period (default period: the calendar month of the as-of date).
    """
    run = _window("layers", as_of, period)
    engine = services().engine
    settings = brand_thresholds(config).layers
    if output is AnalysisFormat.CSV:
        _csv(export.layers_people(engine, run, settings))
        return
    report = service.layers_report(engine, run, settings)
    data = report.as_dict()
    if output is AnalysisFormat.JSON:
        print_json(data)
        return
    _print_table(
        f"relationship layers {report.period.start} – {report.period.end}",
        ["layer", "people"],
        [[layer.code, f"{report.counts[layer]:,}"] for layer in LAYER_ORDER],
    )
    _print_table(
        "health metrics",
        ["metric", "value", "how"],
        [
            ["capital", f"{report.capital:,}", "people in any layer at the end of the period"],
            [
                "conversion",
                _share(data["conversion"]),
                f"{report.deepened:,} deepened ÷ {report.previous_capital:,} "
                f"capital of {report.previous.label}",
            ],
            *(
                [
                    "connection " + item.field,
                    _share(data["connection"][item.field]),
                    f"{item.held:,} of {item.visitors:,} visitors hold a layer",
                ]
                for item in report.fields
            ),
            [
                "CLV (transactions)",
                f"¥{data['clv_transaction_value']}",
                "net spend to date of the people in a layer",
            ],
        ],
    )
    _print_moves(
        f"transitions {report.previous.label} → {report.period.label} (rows: from, columns: to)",
        ["none", *(layer.code for layer in LAYER_ORDER)],
        report.transitions,
    )


def _fraction(value: Fraction | None) -> Decimal | None:
    return None if value is None else Decimal(value.numerator) / Decimal(value.denominator)


def _share(value: Any) -> str:
    return percent(None if value is None else Decimal(value))


def _print_moves(title: str, names: list[str], people: dict[tuple[str, str], int]) -> None:
    """Print who moved from one state to another as a matrix: rows are from, columns are to.

    Lifecycle flows and layer transitions are both counts per (from, to) pair over a fixed order of
    states (``none`` first), so they print alike.
    """
    _print_table(
        title,
        ["from \\ to", *names],
        [[source, *(f"{people.get((source, target), 0):,}" for target in names)] for source in names],
    )


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    # Print at full width so no figure is ever cut short on a narrow terminal.
    (console if natural <= console.width else Console(width=natural, soft_wrap=True)).print(table)


def _csv_rows(columns: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)


#: The KPI columns a table shows per group (all of them are in JSON and CSV).
_KPI_COLUMNS = (
    ("members", "members"),
    ("new_members", "new"),
    ("active_members", "active"),
    ("activity_rate", "activity"),
    ("engagement_rate", "engaged"),
    ("repurchase_rate", "repurchase"),
    ("churn_rate", "churn"),
    ("tier_up_rate", "tier up"),
    ("tier_down_rate", "tier down"),
    ("sales", "sales"),
    ("member_sales_share", "member share"),
    ("member_aov", "member AOV"),
    ("non_member_aov", "non-member AOV"),
)
_RATES = {
    "activity_rate",
    "engagement_rate",
    "repurchase_rate",
    "churn_rate",
    "tier_up_rate",
    "tier_down_rate",
}
_RATES |= {"member_sales_share"}
_MONEY = {"sales", "member_aov", "non_member_aov", "member_sales", "non_member_sales"}


def _kpi_text(name: str, value: Any) -> str:
    if name in _RATES:
        return _share(value)
    if name in _MONEY:
        return "–" if value is None else f"¥{Decimal(value):,.2f}"
    return f"{value:,}"


@analyze_app.command("kpis")
@reports_errors
def kpis(
    as_of: AsOfOption = None, period: PeriodOption = None, output: FormatOption = AnalysisFormat.TABLE
) -> None:
    """Member KPIs of the period, overall and by store, store type, channel and tier.

    Members, new and active members, activity, repurchase rate, churn rate, tier transition rates,
    member share of sales, member and non-member average order value (default period: the
    calendar month of the as-of date). People break down by their home store and join channel,
    sales by where the order was placed; CSV prints one row per dimension and group.
    """
    run = _window("kpis", as_of, period, kpi_service.window)
    report = kpi_service.kpis_report(services().engine, run)
    data = report.as_dict()
    if output is AnalysisFormat.JSON:
        print_json(data)
        return
    if output is AnalysisFormat.CSV:
        rows = [["overall", "all", *(data["overall"][name] for name in FIGURE_NAMES)]]
        for name, groups in data["by"].items():
            rows += [[name, group["group"], *(group[figure] for figure in FIGURE_NAMES)] for group in groups]
        _csv_rows(["dimension", "group", *FIGURE_NAMES], rows)
        return
    overall = data["overall"]
    _print_table(
        f"KPIs {report.period.start} – {report.period.end} (previous {report.previous.label})",
        ["figure", "value"],
        [[name, _kpi_text(name, overall[name])] for name in FIGURE_NAMES],
    )
    for item in KPI_DIMENSIONS:
        _print_table(
            f"by {item.value}",
            [item.value, *(label for _, label in _KPI_COLUMNS)],
            [
                [group["group"], *(_kpi_text(name, group[name]) for name, _ in _KPI_COLUMNS)]
                for group in data["by"][item.value]
            ],
        )


_DIMENSION_HELP = f"{DIMENSION_NAMES} (a person attribute is read as tag expressions read it)"


@analyze_app.command("cross")
@reports_errors
def cross(
    as_of: AsOfOption = None,
    period: PeriodOption = None,
    output: FormatOption = AnalysisFormat.TABLE,
    rows: Annotated[str, typer.Option("--rows", help=_DIMENSION_HELP)] = "tier",
    cols: Annotated[str, typer.Option("--cols", help=_DIMENSION_HELP)] = "store_type",
    measure_name: Annotated[
        str, typer.Option("--measure", help="members, buyers, orders, sales or aov")
    ] = "members",
    config: ConfigOption = None,
) -> None:
    """One measure over two dimensions (default: members by tier × store type).

    ``members`` are the members at the end of the period by their home store and tier; the other
    measures count the period's purchases by where they were placed and the buyer's tier.
    """
    chosen = measure(measure_name)
    run = _window("cross", as_of, period, kpi_service.window)
    report = kpi_service.cross_report(
        services().engine, run, dimension(rows), dimension(cols), chosen, brand_thresholds(config)
    )
    data = report.as_dict()
    if output is AnalysisFormat.JSON:
        print_json(data)
        return
    if output is AnalysisFormat.CSV:
        _csv_rows(
            [report.rows.value, report.columns.value, report.measure.value],
            [[cell["row"], cell["column"], cell["value"]] for cell in data["cells"]],
        )
        return

    def shown(value: Any) -> str:
        if value is None:
            return "–"
        return f"¥{Decimal(value):,.2f}" if isinstance(value, str) else f"{value:,}"

    _print_table(
        f"{report.measure.value}: {report.rows.value} × {report.columns.value}, "
        f"{report.period.start} – {report.period.end}",
        [f"{report.rows.value} \\ {report.columns.value}", *report.column_groups, "total"],
        [
            [
                row,
                *(shown(report.value(row, column)) for column in report.column_groups),
                shown(data["row_totals"][row]),
            ]
            for row in report.row_groups
        ]
        + [["total", *(shown(data["column_totals"][c]) for c in report.column_groups), shown(data["total"])]],
    )


@analyze_app.command("cohorts")
@reports_errors
def cohorts(
    as_of: AsOfOption = None, period: PeriodOption = None, output: FormatOption = AnalysisFormat.TABLE
) -> None:
    """Retention by first-purchase month: the share of each cohort who bought k months later.

    Cohorts are the people whose first purchase lies in the period (default: the 12 months to the
    as-of date); CSV prints one row per cohort and month.
    """
    run = _window("cohorts", as_of, period, kpi_service.window)
    data = kpi_service.cohorts_report(services().engine, run).as_dict()
    if output is AnalysisFormat.JSON:
        print_json(data)
        return
    if output is AnalysisFormat.CSV:
        _csv_rows(
            ["cohort", "people", "month", "label", "buyers", "share"],
            [
                [
                    cohort["cohort"],
                    cohort["people"],
                    month["month"],
                    month["label"],
                    month["people"],
                    month["share"],
                ]
                for cohort in data["cohorts"]
                for month in cohort["months"]
            ],
        )
        return
    width = max((len(cohort["months"]) for cohort in data["cohorts"]), default=1)
    _print_table(
        f"retention by first-purchase month, {data['start']} – {data['end']}",
        ["cohort", "people", *(f"+{offset}" for offset in range(width))],
        [
            [
                cohort["cohort"],
                f"{cohort['people']:,}",
                *(_share(month["share"]) for month in cohort["months"]),
                *([""] * (width - len(cohort["months"]))),
            ]
            for cohort in data["cohorts"]
        ],
    )


@analyze_app.command("magic-number")
@reports_errors
def magic_number(
    as_of: AsOfOption = None,
    period: PeriodOption = None,
    output: FormatOption = AnalysisFormat.TABLE,
    window_days: Annotated[
        int | None,
        typer.Option(
            help="a person stays after a purchase when they buy again within this many days "
            "(default: the brand's, else 60)"
        ),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(help="the stay rate that makes the magic number (default: the brand's, else 1/2)"),
    ] = None,
    min_people: Annotated[
        int | None,
        typer.Option(
            help="judged people a purchase count needs to be considered (default: the brand's, else 30)"
        ),
    ] = None,
    max_purchases: Annotated[
        int | None,
        typer.Option(
            help="the last row, N+, counts each person once at their N-th purchase "
            "(default: the brand's, else 10)"
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Stay rate by the number of purchases made, and the purchase count after which people stay.

    For each n, of the people whose n-th purchase day is in the period and whose window has
    passed, the share who bought again within the window (default 60 days: two repurchase
    cycles). The magic number is the smallest n whose rate reaches the threshold.
    """
    settings = magic_with(
        brand_thresholds(config).magic,
        window_days=window_days,
        threshold=threshold,
        min_people=min_people,
        max_purchases=max_purchases,
        name=cli_option,
    )
    run = _window("magic-number", as_of, period, kpi_service.window)
    data = kpi_service.magic_report(services().engine, run, settings).as_dict()
    if output is AnalysisFormat.JSON:
        print_json(data)
        return
    columns = ["purchases", "reached", "judged", "stayed", "stay_rate"]
    if output is AnalysisFormat.CSV:
        _csv_rows(columns, [[row["label"], *(row[name] for name in columns[1:])] for row in data["counts"]])
        return
    _print_table(
        f"stay rate by purchases made, {data['start']} – {data['end']} (window {data['window_days']} days)",
        ["purchases", "reached", "judged", "stayed", "stay rate"],
        [
            [
                row["label"],
                f"{row['reached']:,}",
                f"{row['judged']:,}",
                f"{row['stayed']:,}",
                _share(row["stay_rate"]),
            ]
            for row in data["counts"]
        ],
    )
    found = data["magic_number"]
    console.print(
        f"magic number: {found if found is not None else 'none'} (stay rate ≥ {_share(data['threshold'])} "
        f"with at least {data['min_people']} judged people)"
    )


@analyze_app.command("preferences")
@reports_errors
def preferences(
    as_of: AsOfOption = None,
    period: PeriodOption = None,
    output: FormatOption = AnalysisFormat.TABLE,
    min_share: Annotated[
        str | None,
        typer.Option(
            help="share of a person's spend their top category needs to be their preference "
            "(default: the brand's, else 1/2)"
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Product-category preference per person from what they bought (net of refunds).

    CSV prints one row per buyer (top category, its share, the preference tag); table and JSON the
    distribution (default period: the 12 months to the as-of date).
    """
    settings = preferences_with(brand_thresholds(config).preferences, min_share=min_share, name=cli_option)
    run = _window("preferences", as_of, period, kpi_service.window)
    engine = services().engine
    if output is AnalysisFormat.CSV:
        _csv(export.preferences_people(engine, run, settings))
        return
    data = kpi_service.preferences_report(engine, run, settings).as_dict()
    if output is AnalysisFormat.JSON:
        print_json(data)
        return
    _print_table(
        f"category preferences {data['start']} – {data['end']} ({data['buyers']:,} buyers, "
        f"prefer at ≥ {_share(data['min_share'])} of spend)",
        ["category", "spend", "spend share", "top for", "prefer", "prefer share"],
        [
            [
                item["category"],
                f"¥{Decimal(item['spend']):,.2f}",
                _share(item["spend_share"]),
                f"{item['top_people']:,}",
                f"{item['preferring']:,}",
                _share(item["preferring_share"]),
            ]
            for item in data["categories"]
        ]
        + [["mixed", "", "", "", f"{data['mixed']:,}", ""]],
    )
    _print_table(
        "buyers by top-category share",
        ["share", "buyers"],
        [[label, f"{data['top_share_buckets'][label]:,}"] for label in bucket_labels()],
    )
