"""``memberops report points|tiers|coupons``: the loyalty reports as Rich tables or JSON.

Dates are business dates in the brand's time zone (``MEMBEROPS_TIME_ZONE``), both ends included.
Tables show money as ``¥1,234.56`` and rates as percentages; ``--format json`` prints the exact
figures (money as yuan strings, ratios as decimal strings) for machines.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from memberops.cli.common import OutputFormat, console, print_json, reports_errors, services
from memberops.kit.clock import business_date, utc_now
from memberops.kit.db import unit_of_work
from memberops.loyalty.reports import (
    CouponFigures,
    PointsFigures,
    chosen_period,
    coupon_report,
    points_economics,
    tier_report,
)

report_app = typer.Typer(
    help="Loyalty reports: points economics, tier distribution and moves, coupon issuance and use.",
    no_args_is_help=True,
)

#: Months the points report covers by default (it breaks them down month by month).
POINTS_MONTHS = 12

_DATE_FORMATS = ["%Y-%m-%d"]
FromOption = Annotated[
    datetime | None,
    typer.Option("--from", formats=_DATE_FORMATS, help="first business date, YYYY-MM-DD"),
]
ToOption = Annotated[
    datetime | None,
    typer.Option("--to", formats=_DATE_FORMATS, help="last business date, YYYY-MM-DD (default: today)"),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format")]


@contextmanager
def _reading() -> Iterator[Session]:
    with unit_of_work(services().read_sessions) as session:
        yield session


def _today() -> date:
    return business_date(utc_now(), services().settings.time_zone)


def _period(start: datetime | None, end: datetime | None, months: int) -> tuple[date, date]:
    return chosen_period(
        start.date() if start is not None else None,
        end.date() if end is not None else None,
        today=_today(),
        months=months,
    )


def yuan(fen: int | None) -> str:
    """Format fen for a table: ``¥1,234.56`` (blank when there is no value)."""
    if fen is None:
        return "–"
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}¥{whole:,}.{cents:02d}"


def percent(value: Decimal | None) -> str:
    """Format a ratio for a table as a percentage with two decimals (``–`` when there is none)."""
    return "–" if value is None else f"{value * 100:.2f}%"


def times(value: Decimal | None) -> str:
    """Format a multiple for a table (``32.92×``; ``–`` when there is none)."""
    return "–" if value is None else f"{value:.2f}×"


def _table(title: str, columns: list[str], rows: list[list[str]], *, numeric: Collection[int]) -> Table:
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index in numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _show(table: Table) -> None:
    """Print a table at its full width, so no figure is ever cut short on a narrow terminal."""
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    if natural <= console.width:
        console.print(table)
    else:
        Console(width=natural, soft_wrap=True).print(table)


@report_app.command("points")
@reports_errors
def points(
    start: FromOption = None,
    end: ToOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Points economics: issued, burned, expired, outstanding liability, redemption rate, return on points.

    Default period: the last 12 calendar months up to today, broken down month by month.
    """
    first, last = _period(start, end, POINTS_MONTHS)
    with _reading() as session:
        report = points_economics(session, start=first, end=last, time_zone=services().settings.time_zone)
    if output is OutputFormat.JSON:
        print_json(report.as_dict())
        return
    summary = [
        [
            "issued",
            f"{report.issued:,}",
            f"earned {report.earned:,} + gifted {report.gifted:,} + added {report.added:,}",
        ],
        ["burned", f"{report.burned:,}", f"spent {report.spent:,} − restored {report.restored:,}"],
        ["expired", f"{report.expired:,}", ""],
        ["taken back on refunds", f"{report.taken_back:,}", f"and clawed back {report.clawed_back:,}"],
        ["removed by hand", f"{report.removed:,}", ""],
        ["outstanding", f"{report.outstanding_points:,}", f"opening {report.opening_points:,}"],
        ["liability", yuan(report.liability_fen), f"at {yuan(report.point_value_fen)} a point"],
        ["redemption rate", percent(report.redemption_rate), "burned ÷ issued"],
        [
            "return on points",
            times(report.return_on_points),
            f"{yuan(report.earner_sales_fen)} sales by "
            f"{report.earners:,} point earners ÷ {yuan(report.burned_value_fen)} burned",
        ],
    ]
    _show(
        _table(
            f"points economics {report.start} – {report.end} ({report.time_zone})",
            ["figure", "value", "how"],
            summary,
            numeric={1},
        )
    )
    _show(
        _table(
            "by month",
            [
                "month",
                "issued",
                "burned",
                "expired",
                "taken back",
                "outstanding",
                "liability",
                "redemption",
                "return",
            ],
            [_month_row(month) for month in report.months],
            numeric=range(1, 9),
        )
    )


def _month_row(month: PointsFigures) -> list[str]:
    whole = month.start.day == 1 and (month.end + timedelta(days=1)).day == 1
    label = month.start.strftime("%Y-%m") if whole else f"{month.start} – {month.end}"
    return [
        label,
        f"{month.issued:,}",
        f"{month.burned:,}",
        f"{month.expired:,}",
        f"{month.taken_back:,}",
        f"{month.outstanding_points:,}",
        yuan(month.liability_fen),
        percent(month.redemption_rate),
        times(month.return_on_points),
    ]


@report_app.command("tiers")
@reports_errors
def tiers(
    on: Annotated[
        datetime | None,
        typer.Option(
            "--on", formats=_DATE_FORMATS, help="the business date of the distribution (default: today)"
        ),
    ] = None,
    start: FromOption = None,
    end: ToOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Members per tier on a date, and the tier moves of a period (default: this month to date)."""
    first, last = _period(start, end, 1)
    day = on.date() if on is not None else _today()
    with _reading() as session:
        report = tier_report(session, on=day, start=first, end=last, time_zone=services().settings.time_zone)
    if output is OutputFormat.JSON:
        print_json(report.as_dict())
        return
    _show(
        _table(
            f"members per tier on {report.on} ({report.members:,} members)",
            ["tier", "name", "members", "share"],
            [[c.tier, c.name or "", f"{c.members:,}", percent(c.share)] for c in report.distribution],
            numeric={2, 3},
        )
    )
    _show(
        _table(
            f"tier changes {report.start} – {report.end}",
            ["from", "to", "direction", "changes", "members"],
            [
                [t.from_tier or "–", t.to_tier, t.direction, f"{t.changes:,}", f"{t.members:,}"]
                for t in report.transitions
            ],
            numeric={3, 4},
        )
    )
    console.print(
        f"of {report.members_at_start:,} members at the start, {report.moved_up:,} ended higher "
        f"({percent(report.up_rate)}) and {report.moved_down:,} lower ({percent(report.down_rate)})"
    )


@report_app.command("coupons")
@reports_errors
def coupons(
    start: FromOption = None,
    end: ToOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Coupons issued, redeemed, released, expired and voided per template (default: this month to date)."""
    first, last = _period(start, end, 1)
    with _reading() as session:
        report = coupon_report(session, start=first, end=last, time_zone=services().settings.time_zone)
    if output is OutputFormat.JSON:
        print_json(report.as_dict())
        return
    _show(
        _table(
            f"coupons {report.start} – {report.end} ({report.time_zone})",
            [
                "template",
                "name",
                "issued",
                "redeemed",
                "released",
                "expired",
                "voided",
                "rate",
                "discount",
                "orders",
                "order sales",
            ],
            [_coupon_row(figures) for figures in (*report.templates, report.total)],
            numeric=range(2, 11),
        )
    )


def _coupon_row(figures: CouponFigures) -> list[str]:
    return [
        "all" if figures.template == "*" else figures.template,
        figures.name or "",
        f"{figures.issued:,}",
        f"{figures.redeemed:,}",
        f"{figures.released:,}",
        f"{figures.expired:,}",
        f"{figures.voided:,}",
        percent(figures.redemption_rate),
        yuan(figures.discount_fen),
        f"{figures.orders:,}",
        yuan(figures.order_sales_fen),
    ]
