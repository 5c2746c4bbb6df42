"""``memberops analyze nightly``: every analysis, rule tag and segment in one run, with timings.

What a brand schedules every night (cron, a systemd timer). The analyses run on the store, on a
DuckDB copy made at the start (``--on duckdb``), or on a DuckDB file kept as a warehouse copy
(``--on duckdb --duckdb-file PATH --no-copy``); tags and segments are always written to the store.
Thresholds come from the brand's insight settings (``MEMBEROPS_INSIGHT_*`` or ``--config``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    console,
    errors,
    print_json,
    reports_errors,
    services,
)
from memberops.insight import nightly
from memberops.insight.config import current
from memberops.insight.kpi_rules import InvalidOption


class NightlyEngine(StrEnum):
    """Where the analyses of a nightly run read the data."""

    STORE = "store"
    DUCKDB = "duckdb"


@reports_errors
def nightly_command(
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of", formats=["%Y-%m-%d"], help="business date the run is taken on (default: today)"
        ),
    ] = None,
    on: Annotated[
        NightlyEngine,
        typer.Option("--on", help="run the analyses on the store, or on a DuckDB copy of its tables"),
    ] = NightlyEngine.STORE,
    duckdb_file: Annotated[
        Path | None,
        typer.Option(
            "--duckdb-file", help="with --on duckdb: keep the copy in this file (default: in memory)"
        ),
    ] = None,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy/--no-copy",
            help="with --duckdb-file: copy the store's tables into it first (--no-copy: the file is a "
            "warehouse copy kept up to date elsewhere; only the tag tables are copied)",
        ),
    ] = True,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML file whose [insight] table holds the brand's thresholds"),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Compute every analysis, refresh every rule tag and every segment; print per-step timings.

    Analyses: rfm, lifecycle, layers, kpis, cross (tier × store type members), cohorts,
    magic-number, preferences, each with its default period as of the run's date. Rule tags are
    refreshed in definition order, then every saved segment (history and outbox events as
    ``tag refresh`` and ``segment refresh`` write them).
    """
    if on is NightlyEngine.STORE and duckdb_file is not None:
        raise InvalidOption("--duckdb-file needs --on duckdb")
    settings = current(config)
    where: nightly.Where = "duckdb" if on is NightlyEngine.DUCKDB else "store"
    svc = services()
    work = nightly.plan(svc.sessions)
    with Progress(
        TextColumn("[bold]nightly[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=output is OutputFormat.JSON,
    ) as bar:
        task = bar.add_task("starting", total=work.steps)

        def advance(step: nightly.Step) -> None:
            if step.kind != "prepare":
                bar.update(task, advance=1, description=f"{step.kind} {step.name}")

        run = nightly.run_nightly(
            svc.engine,
            svc.sessions,
            time_zone=svc.settings.time_zone,
            actor=CLI_ACTOR,
            as_of=as_of.date() if as_of is not None else None,
            settings=settings,
            where=where,
            duckdb_file=duckdb_file,
            copy=copy,
            on_step=advance,
        )
    if output is OutputFormat.JSON:
        print_json(run.as_dict())
        return
    table = Table(title=f"nightly insight run as of {run.as_of} on {run.engine} ({run.seconds:.1f} s)")
    for column in ("step", "kind", "seconds", "figures"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for step in run.steps:
        figures = ", ".join(f"{key} {value}" for key, value in step.detail.items() if key != "name")
        table.add_row(step.name, step.kind, f"{step.seconds:.2f}", figures)
    console.print(table)
    console.print(
        f"analyses {run.seconds_of('analysis'):.1f} s, tags {run.seconds_of('tag'):.1f} s, "
        f"segments {run.seconds_of('segment'):.1f} s; "
        f"{len(run.tags)} tags and {len(run.segments)} segments refreshed"
    )
