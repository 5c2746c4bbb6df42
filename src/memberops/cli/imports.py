"""``memberops import stores|orders|events FILE``: bulk import with a progress bar and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from memberops.cli.common import OutputFormat, console, errors, print_json, reports_errors, services
from memberops.ingest.bulk import ImportSummary, Kind, check_file, import_file
from memberops.ingest.readers import count_rows

import_app = typer.Typer(
    help="Bulk import from CSV, JSONL or Parquet (see docs/import-formats.md).", no_args_is_help=True
)

#: Exit status when some rows were rejected (the others were imported).
EXIT_SOME_REJECTED = 3


def run_import(
    path: Path,
    kind: Kind,
    *,
    profile: str = "canonical",
    rejects: Path | None = None,
    quiet: bool = False,
    parse_in_background: bool | None = None,
) -> ImportSummary:
    """Import one file with a progress bar; return the summary."""
    svc = services()
    check_file(path, kind, profile)
    total = count_rows(path)
    with Progress(
        TextColumn(f"[bold]{kind}[/bold] {path.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task(kind, total=total)
        return import_file(
            svc,
            path,
            kind,
            profile=profile,
            reject_path=rejects,
            progress=lambda n: bar.advance(task, n),
            background_parse=parse_in_background,
        )


def report(summary: ImportSummary, output: OutputFormat) -> None:
    """Print the summary and exit with 3 when rows were rejected."""
    if output is OutputFormat.JSON:
        print_json(summary.as_dict())
    else:
        console.print(
            f"{summary.path.name}: {summary.rows} rows — [green]{summary.imported} imported[/green], "
            f"{summary.duplicates} already there, [red]{summary.rejected} rejected[/red]"
        )
        for reason, count in summary.as_dict()["reject_reasons"].items():
            console.print(f"  {count:>8}  {reason}")
        if summary.reject_path:
            console.print(f"rejected rows with line numbers and reasons: {summary.reject_path}")
    if summary.rejected:
        raise typer.Exit(EXIT_SOME_REJECTED)


FileArgument = Annotated[Path, typer.Argument(help="a .csv, .jsonl or .parquet file")]
RejectsOption = Annotated[
    Path | None, typer.Option(help="where to write rejected rows (default FILE.rejects.csv)")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="summary as table or json")]
BackgroundOption = Annotated[
    bool | None,
    typer.Option(
        "--parse-in-background/--parse-in-process",
        help="parse in a second process while this one stores (default: for files of 8 MiB and more)",
        show_default=False,
    ),
]


@import_app.command("orders")
@reports_errors
def import_orders(
    file: FileArgument,
    profile: Annotated[
        str, typer.Option(help="canonical | pos | mini_program | tmall | douyin | meituan")
    ] = "canonical",
    rejects: RejectsOption = None,
    output: FormatOption = OutputFormat.TABLE,
    parse_in_background: BackgroundOption = None,
) -> None:
    """Import orders; exit 0 when all rows are in, 3 when some were rejected, 2 when the file is unusable."""
    report(
        run_import(file, "orders", profile=profile, rejects=rejects, parse_in_background=parse_in_background),
        output,
    )


@import_app.command("events")
@reports_errors
def import_events(
    file: FileArgument,
    rejects: RejectsOption = None,
    output: FormatOption = OutputFormat.TABLE,
    parse_in_background: BackgroundOption = None,
) -> None:
    """Import behaviour events (register, follow, join_group, visit, share, review, consent…)."""
    report(run_import(file, "events", rejects=rejects, parse_in_background=parse_in_background), output)


@import_app.command("stores")
@reports_errors
def import_stores(
    file: FileArgument, rejects: RejectsOption = None, output: FormatOption = OutputFormat.TABLE
) -> None:
    """Import or update stores (code, name, city, store_type)."""
    report(run_import(file, "stores", rejects=rejects), output)
