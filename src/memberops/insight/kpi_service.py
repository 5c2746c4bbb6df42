"""Run the KPI, cross-table, cohort, magic-number and preference analyses on the store.

Same contract as ``service`` (the CLI and the API both come through here): the as-of date
defaults to the end of a calendar period (or today), and each analysis has its own default
period: KPIs and cross tables the calendar month of the as-of date; cohorts, the magic number
and preferences the trailing 12 months. The tier order (lowest first) is the programme in force
at the end of the period; with no programme, members without a recorded tier change hold none.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from memberops.insight import cohorts, cross, kpis, magic, preferences
from memberops.insight.config import BrandSettings
from memberops.insight.kpi_rules import Dimension, MagicSettings, Measure, PreferenceSettings
from memberops.insight.service import Window, resolve_window
from memberops.insight.source import open_source
from memberops.kit.clock import end_of_day
from memberops.loyalty.reports import programme_in_force

#: Default periods (None: the calendar month of the as-of date).
DEFAULT_PERIOD: dict[str, str | None] = {
    "kpis": None,
    "cross": None,
    "cohorts": "12m",
    "magic-number": "12m",
    "preferences": "12m",
}


def window(analysis: str, as_of: date | None, period: str | None, time_zone: str) -> Window:
    """Resolve the as-of date and the period of a run (see the module docstring)."""
    return resolve_window(as_of, period, time_zone, default_period=DEFAULT_PERIOD[analysis])


def tier_order(engine: Engine, run: Window) -> tuple[str, ...]:
    """Return the tier codes of the programme in force at the end of the period, lowest first."""
    with Session(engine) as session:
        programme = programme_in_force(session, end_of_day(run.period.end, run.clock.time_zone))
    return tuple(tier.code for tier in programme.programme.tiers) if programme is not None else ()


def kpis_report(engine: Engine, run: Window) -> kpis.KpiReport:
    """Return the KPIs of a run, overall and by store, store type, channel and tier."""
    tiers = tier_order(engine, run)
    with open_source(engine) as source:
        return kpis.report(source, run.clock, run.period, tiers)


def cross_report(
    engine: Engine,
    run: Window,
    rows: Dimension,
    columns: Dimension,
    measure: Measure,
    settings: BrandSettings | None = None,
) -> cross.CrossReport:
    """Return one measure over two dimensions (person dimensions judged by ``settings``)."""
    tiers = tier_order(engine, run)
    with open_source(engine) as source:
        return cross.report(source, run.clock, run.period, tiers, rows, columns, measure, settings)


def cohorts_report(engine: Engine, run: Window) -> cohorts.CohortReport:
    """Return the retention of the first-purchase months of the period."""
    with open_source(engine) as source:
        return cohorts.report(source, run.clock, run.period)


def magic_report(engine: Engine, run: Window, settings: MagicSettings) -> magic.MagicReport:
    """Return the stay rate per purchase count and the magic number."""
    with open_source(engine) as source:
        return magic.report(source, run.clock, run.period, settings)


def preferences_report(
    engine: Engine, run: Window, settings: PreferenceSettings
) -> preferences.PreferenceReport:
    """Return the category preference summary."""
    with open_source(engine) as source:
        return preferences.report(source, run.clock, run.period, settings)


def preferences_people(engine: Engine, run: Window, settings: PreferenceSettings) -> pa.Table:
    """Return each buyer's preference, ordered by person id."""
    with open_source(engine) as source:
        return preferences.people(source, run.clock, run.period, settings).order_by("person_id").to_pyarrow()
