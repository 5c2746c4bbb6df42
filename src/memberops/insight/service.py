"""Run an analysis on the store: resolve the as-of date and period, open the engine, build, fetch.

The CLI and the API both come through here, so ``--as-of``/``--period`` mean the same everywhere:
the as-of date defaults to the end of a calendar period (or today, in the brand's time zone), and
each analysis has its own default period (RFM: the trailing 12 months; lifecycle and layers: the
calendar month of the as-of date).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import pyarrow as pa
from sqlalchemy import Engine

from memberops.insight import base, layers, lifecycle, rfm
from memberops.insight.periods import Period, checked_as_of, default_as_of, parse_period
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings
from memberops.insight.source import Source, open_source
from memberops.kit.clock import business_date, utc_now

T = TypeVar("T")

#: Default periods: RFM looks back a year; the others read the calendar month of the as-of date.
DEFAULT_PERIOD = {"rfm": "12m", "lifecycle": None, "layers": None}


@dataclass(frozen=True)
class Window:
    """The resolved as-of date, period and clock of one run."""

    clock: base.Clock
    period: Period


def window(analysis: str, as_of: date | None, period: str | None, time_zone: str) -> Window:
    """Resolve the as-of date and the period of a run (see the module docstring)."""
    return resolve_window(as_of, period, time_zone, default_period=DEFAULT_PERIOD[analysis])


def resolve_window(
    as_of: date | None, period: str | None, time_zone: str, *, default_period: str | None
) -> Window:
    """Resolve a run's as-of date and period, the analysis's own ``default_period`` when none is given.

    Every analysis reads ``--as-of``/``--period`` (and ``as_of``/``period`` in the API) by this one
    rule; only the default period differs (None: the calendar month of the as-of date).
    """
    today = business_date(utc_now(), time_zone)
    day = checked_as_of(as_of, today=today) if as_of is not None else default_as_of(period, today=today)
    text = period or default_period or day.strftime("%Y-%m")
    return Window(base.Clock.at(day, time_zone), parse_period(text, as_of=day))


def _run(engine: Engine, work: Callable[[Source], T]) -> T:
    with open_source(engine) as source:
        return work(source)


def rfm_report(engine: Engine, run: Window, settings: RfmSettings) -> rfm.RfmReport:
    """Return the RFM classes of a run."""
    return _run(engine, lambda source: rfm.report(source, run.clock, run.period, settings))


def rfm_people(engine: Engine, run: Window, settings: RfmSettings) -> pa.Table:
    """Return the per-person RFM values, scores and classes, ordered by person id."""

    def work(source: Source) -> pa.Table:
        scored = rfm.analyse(source, run.clock, run.period, settings).scored
        return scored.order_by("person_id").to_pyarrow()

    return _run(engine, work)


def lifecycle_report(engine: Engine, run: Window, settings: LifecycleSettings) -> lifecycle.LifecycleReport:
    """Return the stage counts and flows of a run."""
    return _run(engine, lambda source: lifecycle.report(source, run.clock, run.period, settings))


def lifecycle_people(engine: Engine, run: Window, settings: LifecycleSettings) -> pa.Table:
    """Return each person's stage on the as-of date, ordered by person id."""
    return _run(
        engine,
        lambda source: lifecycle.stages(source, run.clock, settings).order_by("person_id").to_pyarrow(),
    )


def layers_report(engine: Engine, run: Window, settings: LayerSettings) -> layers.LayersReport:
    """Return the layers and health metrics of a run."""
    return _run(engine, lambda source: layers.report(source, run.clock, run.period, settings))


def layers_people(engine: Engine, run: Window, settings: LayerSettings) -> pa.Table:
    """Return each person's layer at the end of the period and own transaction value, by person id.

    Columns ``person_id, layer, transaction_value_fen`` (``layers.people``): the values add up to
    the report's ``clv_transaction_value``.
    """
    return _run(
        engine,
        lambda source: (
            layers.people(source, run.clock, run.period, settings).order_by("person_id").to_pyarrow()
        ),
    )


def as_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Return an Arrow table as plain rows (for JSON and CSV output)."""
    return list(table.to_pylist())
