"""The nightly insight run: every analysis, every rule tag and every saved segment, in one pass.

What a brand schedules once a night (``memberops analyze nightly``, cron or a systemd timer):

1. every analysis with its default period as of the run's date — ``rfm``, ``lifecycle``,
   ``layers``, ``kpis``, ``cross`` (the ready-made tier × store type members view), ``cohorts``,
   ``magic-number``, ``preferences`` — with the brand's thresholds (``insight.config``);
2. every rule tag, in definition order (a tag reads only tags defined before it), written as
   ``tags.refresh_tags`` writes them: the holders' diff and its history, one transaction per tag;
3. every saved segment (scheduled or not), written as ``segments.refresh`` writes them: members,
   history and ``segment.entered``/``segment.left`` to the outbox, one transaction per segment.

All of it reads through **one** analysis connection opened as a sharing source
(``Source.sharing``): the purchases known on the run's date, the members and reachable people
then, the RFM values, the lifecycle stages and the layers of the month are built once, kept as
temporary tables, and every later analysis and every tag or segment leaf reads them instead of
recomputing them from the raw tables. Results are the same as running each piece on its own (the
tests compare them); only the work is shared.

The analyses run on the store itself (SQLite, PostgreSQL), on a DuckDB copy of its tables made at
the start of the run, or on a DuckDB file the brand keeps as a warehouse copy (ADR 0009). Writes
(tag holders, segment members, history, outbox) always go to the store. On a copy the run first
copies the tag definitions and holders into it and replaces a tag's holders there as soon as the
store has them, so a tag or segment that reads a tag sees it refreshed, as on the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import ibis
import pyarrow as pa
from ibis.backends import BaseBackend
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from memberops.insight import (
    base,
    cohorts,
    compiler,
    cross,
    kpi_service,
    kpis,
    layers,
    lifecycle,
    magic,
    preferences,
    rfm,
    service,
)
from memberops.insight import segments as segment_service
from memberops.insight import tags as tag_service
from memberops.insight.config import BrandSettings
from memberops.insight.dimensions import EXTRA_TABLES
from memberops.insight.language import parse
from memberops.insight.source import TABLES, Source, copy_tables, open_source
from memberops.insight.tags import Refreshed
from memberops.kit.clock import utc_now
from memberops.kit.db import unit_of_work
from memberops.models import Segment, Tag

#: Every analysis, in the order the run computes them.
ANALYSES = ("rfm", "lifecycle", "layers", "kpis", "cross", "cohorts", "magic-number", "preferences")
#: The tables tags and segments read that hold the brand's own definitions (refreshed on a copy).
TAG_TABLES = ("tags", "person_tags")
#: Every table the run reads: what a DuckDB or warehouse copy must hold.
COPIED_TABLES = tuple(dict.fromkeys((*TABLES, *EXTRA_TABLES, *compiler.EXTRA_TABLES, *TAG_TABLES)))
#: Where the analyses run: the store, or DuckDB (a copy made at the start, or a kept file).
Where = Literal["store", "duckdb"]


@dataclass(frozen=True)
class Step:
    """One step of the run: what it was, how long it took (wall clock) and its headline figures."""

    name: str
    kind: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "seconds": round(self.seconds, 3), **self.detail}


@dataclass(frozen=True)
class NightlyRun:
    """What a nightly run computed and refreshed, step by step."""

    as_of: date
    time_zone: str
    engine: str
    steps: tuple[Step, ...]
    analyses: dict[str, dict[str, Any]]
    tags: tuple[Refreshed, ...]
    segments: tuple[Refreshed, ...]
    seconds: float

    def seconds_of(self, kind: str) -> float:
        """The wall-clock seconds of every step of one kind (``analysis``, ``tag``, ``segment``…)."""
        return sum(step.seconds for step in self.steps if step.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "time_zone": self.time_zone,
            "engine": self.engine,
            "seconds": round(self.seconds, 3),
            "steps": [step.as_dict() for step in self.steps],
            "tags": [item.as_dict() for item in self.tags],
            "segments": [item.as_dict() for item in self.segments],
            "analyses": self.analyses,
        }


@dataclass(frozen=True)
class Plan:
    """The rule tags (definition order) and segments a run refreshes: known before it starts."""

    tags: tuple[tuple[int, str, str], ...]
    segments: tuple[str, ...]

    @property
    def steps(self) -> int:
        return len(ANALYSES) + len(self.tags) + len(self.segments)


def plan(sessions: sessionmaker[Session]) -> Plan:
    """Read which rule tags (id, name, expression) and which segments a run will refresh."""
    with unit_of_work(sessions) as session:
        rules = session.execute(
            select(Tag.id, Tag.name, Tag.expression).where(Tag.kind == "rule").order_by(Tag.id)
        )
        tags = tuple((int(tag_id), str(name), str(expression)) for tag_id, name, expression in rules)
        names = tuple(str(name) for name in session.scalars(select(Segment.name).order_by(Segment.id)))
    return Plan(tags, names)


class _Clock:
    """Time the steps of a run and tell the caller about each as it ends."""

    def __init__(self, on_step: Callable[[Step], None] | None) -> None:
        self.steps: list[Step] = []
        self.on_step = on_step

    def record(self, name: str, kind: str, started: float, detail: dict[str, Any] | None = None) -> None:
        step = Step(name, kind, time.perf_counter() - started, detail or {})
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)


@contextmanager
def _analysis_source(
    engine: Engine,
    where: Where,
    duckdb_file: Path | None,
    copy: bool,
    backend: BaseBackend | None,
    clock: _Clock,
) -> Iterator[tuple[Source, bool]]:
    """Open the sharing source the run reads through; say whether it is a copy (tags to keep in step)."""
    if backend is not None:
        with open_source(engine) as store:
            started = time.perf_counter()
            copy_tables(store, TAG_TABLES, backend)
            clock.record("tag tables to the copy", "prepare", started)
        yield Source(backend).sharing(), True
        return
    if where == "store":
        with open_source(engine) as store:
            yield store.sharing(), False
        return
    duck = ibis.duckdb.connect(str(duckdb_file)) if duckdb_file is not None else ibis.duckdb.connect()
    try:
        with open_source(engine) as store:
            started = time.perf_counter()
            copied = COPIED_TABLES if copy or duckdb_file is None else TAG_TABLES
            copy_tables(store, copied, duck)
            clock.record(
                "copy to duckdb" if copied is COPIED_TABLES else "tag tables to the copy", "prepare", started
            )
        yield Source(duck).sharing(), True
    finally:
        duck.disconnect()


def _headline(name: str, report: Any) -> dict[str, Any]:
    """The one or two figures a step line shows (the whole report is in ``analyses``)."""
    if isinstance(report, rfm.RfmReport):
        return {"people": report.people}
    if isinstance(report, lifecycle.LifecycleReport):
        return {"people": sum(report.counts.values())}
    if isinstance(report, layers.LayersReport):
        return {"capital": report.capital}
    if isinstance(report, kpis.KpiReport):
        return {"members": report.overall.members, "orders": report.overall.orders}
    if isinstance(report, cross.CrossReport):
        return {"total": report.total.people}
    if isinstance(report, cohorts.CohortReport):
        return {"cohorts": len(report.cohorts)}
    if isinstance(report, magic.MagicReport):
        return {"magic_number": report.magic_number}
    if isinstance(report, preferences.PreferenceReport):
        return {"buyers": report.buyers}
    raise AssertionError(name)


def analysis_steps(
    engine: Engine, source: Source, as_of: date, time_zone: str, settings: BrandSettings
) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Yield each analysis and how to compute it with its default period (as the CLI does)."""

    def run(name: str) -> service.Window:
        rule = service.window if name in service.DEFAULT_PERIOD else kpi_service.window
        return rule(name, as_of, None, time_zone)

    def tiers(window: service.Window) -> tuple[str, ...]:
        return source.remember(
            ("tier_order", window.period.end), lambda: kpi_service.tier_order(engine, window)
        )

    windows = {name: run(name) for name in ANALYSES}
    yield "rfm", lambda: rfm.report(source, windows["rfm"].clock, windows["rfm"].period, settings.rfm)
    yield (
        "lifecycle",
        lambda: lifecycle.report(
            source, windows["lifecycle"].clock, windows["lifecycle"].period, settings.lifecycle
        ),
    )
    yield (
        "layers",
        lambda: layers.report(source, windows["layers"].clock, windows["layers"].period, settings.layers),
    )
    yield (
        "kpis",
        lambda: kpis.report(source, windows["kpis"].clock, windows["kpis"].period, tiers(windows["kpis"])),
    )
    yield (
        "cross",
        lambda: cross.report(
            source,
            windows["cross"].clock,
            windows["cross"].period,
            tiers(windows["cross"]),
            settings=settings,
        ),
    )
    yield "cohorts", lambda: cohorts.report(source, windows["cohorts"].clock, windows["cohorts"].period)
    yield (
        "magic-number",
        lambda: magic.report(
            source, windows["magic-number"].clock, windows["magic-number"].period, settings.magic
        ),
    )
    yield (
        "preferences",
        lambda: preferences.report(
            source, windows["preferences"].clock, windows["preferences"].period, settings.preferences
        ),
    )


def _selected(scope: compiler.Scope, expression: str) -> set[int]:
    """Evaluate a tag or segment expression on the run's source; return the live person ids."""
    column = compiler.evaluate(scope, parse(expression)).to_pyarrow().column("person_id")
    return {int(person_id) for person_id in column.to_pylist()}


def _replace_holders(source: Source, tag_id: int, holders: tuple[int, ...], actor: str) -> None:
    """Make a tag's holders on the copy what the store now has (rule tags hold exactly the selection)."""
    source.backend.raw_sql(f"DELETE FROM person_tags WHERE tag_id = {int(tag_id)}")
    if holders:
        now = utc_now().replace(tzinfo=None)
        rows = pa.table(
            {
                "tag_id": pa.array([tag_id] * len(holders), pa.int64()),
                "person_id": pa.array(holders, pa.int64()),
                "since": pa.array([now] * len(holders), pa.timestamp("us")),
                "source": pa.array(["rule"] * len(holders), pa.string()),
                "actor": pa.array([actor] * len(holders), pa.string()),
            }
        )
        source.backend.insert("person_tags", rows)


def run_nightly(
    engine: Engine,
    sessions: sessionmaker[Session],
    *,
    time_zone: str,
    actor: str,
    as_of: date | None = None,
    settings: BrandSettings | None = None,
    where: Where = "store",
    duckdb_file: Path | None = None,
    copy: bool = True,
    backend: BaseBackend | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> NightlyRun:
    """Compute every analysis, refresh every rule tag and every segment as of ``as_of`` (default today).

    ``where`` is where the analyses run: ``store``, or ``duckdb`` — a copy of the store's tables
    made now in memory, or in ``duckdb_file``; with ``copy=False`` that file is read as it is (a
    warehouse copy kept up to date elsewhere) and only the tag tables are copied in. ``backend``
    instead hands the run an already open Ibis backend holding such a copy. Tags and segments are
    written to the store whatever the analyses run on. ``on_step`` hears of each step as it ends.
    """
    settings = settings or BrandSettings()
    day = as_of or tag_service.today(time_zone)
    work = plan(sessions)
    clock = _Clock(on_step)
    started_run = time.perf_counter()
    analyses: dict[str, dict[str, Any]] = {}
    refreshed_tags: list[Refreshed] = []
    refreshed_segments: list[Refreshed] = []
    with _analysis_source(engine, where, duckdb_file, copy, backend, clock) as (source, is_copy):
        for name, compute in analysis_steps(engine, source, day, time_zone, settings):
            started = time.perf_counter()
            report = compute()
            analyses[name] = report.as_dict()
            clock.record(name, "analysis", started, _headline(name, report))

        scope = compiler.brand_scope(source, base.Clock.at(day, time_zone), settings)
        for tag_id, name, expression in work.tags:
            started = time.perf_counter()
            selected = _selected(scope, expression)
            with unit_of_work(sessions) as session:
                done = tag_service.apply_tag_refresh(session, name, selected, actor=actor)
            if is_copy:
                _replace_holders(source, tag_id, tuple(sorted(selected)), actor)
            refreshed_tags.append(done)
            clock.record(name, "tag", started, done.as_dict())
        for name in work.segments:
            started = time.perf_counter()
            with unit_of_work(sessions) as session:
                expression = segment_service.find_segment(session, name).expression
            selected = _selected(scope, expression)
            with unit_of_work(sessions) as session:
                done = segment_service.apply_refresh(session, name, selected, actor=actor)
            refreshed_segments.append(done)
            clock.record(name, "segment", started, done.as_dict())
        engine_name = source.name
        source.release()
    return NightlyRun(
        as_of=day,
        time_zone=time_zone,
        engine=engine_name,
        steps=tuple(clock.steps),
        analyses=analyses,
        tags=tuple(refreshed_tags),
        segments=tuple(refreshed_segments),
        seconds=time.perf_counter() - started_run,
    )
