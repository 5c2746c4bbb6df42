"""``memberops tag …`` and ``memberops segment …``: tags, segments, refreshes and exports.

The command line acts with full rights (whoever runs it holds the database); identifiers in an
export are masked unless ``--reveal`` is given, which is recorded in the audit trail. Expressions
are documented in docs/segments.md.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import track

from memberops.access.rules import Role
from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    console,
    errors,
    person_of,
    print_json,
    print_table,
    reports_errors,
    services,
    transaction,
)
from memberops.cli.persons import PERSON_HELP
from memberops.insight import segments, tags
from memberops.insight.tags import Refreshed
from memberops.kit.db import unit_of_work

tag_app = typer.Typer(
    help="Tags (标签): rule tags refreshed in batch, manual tags, history.", no_args_is_help=True
)
segment_app = typer.Typer(
    help="Segments (人群): preview, save, refresh on schedule, history, export.", no_args_is_help=True
)

EXPRESSION_HELP = "an expression, e.g. 'tier = \"gold\" and spent(days=180) >= 500' (see docs/segments.md)"
FormatOption = Annotated[OutputFormat, typer.Option("--format")]
AsOfOption = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="business date to evaluate on (default today)"),
]
PersonArgument = Annotated[str, typer.Argument(help=PERSON_HELP)]
NoteOption = Annotated[str, typer.Option(help="why (kept in the tag history)")]


def _person(reference: str) -> int:
    """Resolve a person argument in a transaction of its own, before the command's own one."""
    with transaction() as session:
        return person_of(session, reference)


def _by_hand(change: tags.ChangeByHand, name: str, person: str, note: str) -> tuple[int, bool]:
    """Set or take a manual tag as the command line (full rights); return the person and whether it changed.

    Both commands resolve the person first, then change the tag in one transaction of their own.
    """
    person_id = _person(person)
    with transaction() as session:
        changed = change(session, name, person_id, actor=CLI_ACTOR, role=Role.ADMIN, note=note)
    return person_id, changed


def _print_refreshed(title: str, results: list[Refreshed], output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        print_json([result.as_dict() for result in results])
        return
    print_table(
        title,
        ["name", "in", "out", "now"],
        [[r.name, f"+{len(r.gained)}", f"-{len(r.lost)}", f"{r.holders:,}"] for r in results],
    )


# ------------------------------------------------------------------------------------------- tag


@tag_app.command("create")
@reports_errors
def tag_create(
    name: str,
    rule: Annotated[str | None, typer.Option(help=f"make it a rule tag: {EXPRESSION_HELP}")] = None,
    description: Annotated[str, typer.Option(help="what the tag means")] = "",
    guides: Annotated[
        bool, typer.Option("--guides/--no-guides", help="let store guides set it (manual)")
    ] = False,
    refresh: Annotated[bool, typer.Option(help="compute a rule tag's holders now")] = True,
) -> None:
    """Define a rule tag (--rule EXPR) or a manual tag (without --rule)."""
    svc = services()
    with transaction() as session:
        tag = tags.define_tag(
            session, name, expression=rule, description=description, guides_may_set=guides, actor=CLI_ACTOR
        )
        kind = tag.kind
    typer.echo(f"tag {name!r} defined ({kind})")
    if kind == "rule" and refresh:
        [result] = tags.refresh_tags(
            svc.engine, svc.sessions, [name], time_zone=svc.settings.time_zone, actor=CLI_ACTOR
        )
        typer.echo(f"{result.holders:,} people hold {name!r}")


@tag_app.command("list")
@reports_errors
def tag_list(output: FormatOption = OutputFormat.TABLE) -> None:
    """List tags with their kind, rule and holders."""
    with transaction() as session:
        rows = [
            {
                "name": tag.name,
                "kind": tag.kind,
                "expression": tag.expression,
                "holders": tag.holders,
                "guides_may_set": tag.guides_may_set,
                "refreshed_at": tag.refreshed_at.isoformat() if tag.refreshed_at else None,
                "description": tag.description,
            }
            for tag in tags.list_tags(session)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "tags",
        ["name", "kind", "rule", "holders", "refreshed"],
        [[r["name"], r["kind"], r["expression"] or "", r["holders"], r["refreshed_at"]] for r in rows],
    )


@tag_app.command("refresh")
@reports_errors
def tag_refresh(
    names: Annotated[list[str] | None, typer.Argument(help="rule tags to refresh (default: all)")] = None,
    as_of: AsOfOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Recompute rule tags in batch (the nightly job); every gain and loss goes to the tag history."""
    svc = services()
    if names:
        selected = list(names)
    else:
        with transaction() as session:
            # Definition order: a tag only reads tags defined before it.
            rules = sorted((tag for tag in tags.list_tags(session) if tag.kind == "rule"), key=lambda t: t.id)
            selected = [tag.name for tag in rules]
    results: list[Refreshed] = []
    for name in track(selected, description="refreshing tags", console=errors, transient=True):
        results += tags.refresh_tags(
            svc.engine,
            svc.sessions,
            [name],
            time_zone=svc.settings.time_zone,
            actor=CLI_ACTOR,
            as_of=as_of.date() if as_of else None,
        )
    _print_refreshed("tags refreshed", results, output)


@tag_app.command("set")
@reports_errors
def tag_set(name: str, person: PersonArgument, note: NoteOption = "") -> None:
    """Give a person a manual tag."""
    person_id, changed = _by_hand(tags.set_by_hand, name, person, note)
    typer.echo(f"person {person_id} {'now holds' if changed else 'already held'} {name!r}")


@tag_app.command("remove")
@reports_errors
def tag_remove(name: str, person: PersonArgument, note: NoteOption = "") -> None:
    """Take a manual tag from a person."""
    person_id, changed = _by_hand(tags.remove_by_hand, name, person, note)
    typer.echo(f"person {person_id} {'no longer holds' if changed else 'did not hold'} {name!r}")


@tag_app.command("show")
@reports_errors
def tag_show(person: PersonArgument, output: FormatOption = OutputFormat.TABLE) -> None:
    """Show the tags a person holds."""
    person_id = _person(person)
    with transaction() as session:
        live, held = tags.tags_of(session, person_id)
        rows = [
            {
                "tag": tag.name,
                "kind": tag.kind,
                "since": row.since.isoformat(),
                "source": row.source,
                "by": row.actor,
            }
            for tag, row in held
        ]
    if output is OutputFormat.JSON:
        print_json({"person_id": live, "tags": rows})
        return
    print_table(
        f"tags of person {live}", ["tag", "kind", "since", "source", "by"], [list(r.values()) for r in rows]
    )


@tag_app.command("history")
@reports_errors
def tag_history(
    name: Annotated[str | None, typer.Argument(help="a tag (default: every tag)")] = None,
    person: Annotated[str | None, typer.Option(help=PERSON_HELP)] = None,
    limit: int = 100,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """When people gained or lost tags, by rule refresh or by hand, and who did it (newest first)."""
    person_id = _person(person) if person is not None else None
    with transaction() as session:
        rows = [
            {
                "tag": tag_name,
                "person_id": change.person_id,
                "change": change.change,
                "source": change.source,
                "by": change.actor,
                "at": change.at.isoformat(),
                "note": change.note,
            }
            for change, tag_name in tags.history(session, name=name, person_id=person_id, limit=limit)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "tag history",
        ["tag", "person", "change", "source", "by", "at", "note"],
        [list(r.values()) for r in rows],
    )


# --------------------------------------------------------------------------------------- segment


@segment_app.command("preview")
@reports_errors
def segment_preview(
    expression: Annotated[str, typer.Argument(help=EXPRESSION_HELP)], as_of: AsOfOption = None
) -> None:
    """Count who an expression selects, without saving anything."""
    svc = services()
    with transaction() as session:
        people = segments.preview(
            svc.engine,
            session,
            expression,
            time_zone=svc.settings.time_zone,
            as_of=as_of.date() if as_of else None,
        )
    typer.echo(f"{people:,} people")


def _refresh_segments(names: list[str]) -> list[Refreshed]:
    svc = services()
    results: list[Refreshed] = []
    for name in track(names, description="refreshing segments", console=errors, transient=True):
        results += segments.refresh(
            svc.engine, svc.sessions, [name], time_zone=svc.settings.time_zone, actor=CLI_ACTOR
        )
    return results


@segment_app.command("create")
@reports_errors
def segment_create(
    name: str,
    expression: Annotated[str, typer.Argument(help=EXPRESSION_HELP)],
    refresh: Annotated[str, typer.Option(help="daily | hourly | manual")] = "daily",
    description: Annotated[str, typer.Option(help="what the segment is for")] = "",
) -> None:
    """Save a segment and fill it (members entering emit segment.entered)."""
    with transaction() as session:
        segments.define_segment(
            session, name, expression, refresh=refresh, description=description, actor=CLI_ACTOR
        )
    [result] = _refresh_segments([name])
    typer.echo(f"segment {name!r} saved (refresh {refresh}): {result.holders:,} people")


@segment_app.command("ready-made")
@reports_errors
def segment_ready_made() -> None:
    """Define and fill the ready-made segments (sleeping Gold, one-time buyers, expired plans, KOC)."""
    with transaction() as session:
        names = [segment.name for segment in segments.define_ready_made(session, actor=CLI_ACTOR)]
    _print_refreshed("ready-made segments", _refresh_segments(names), OutputFormat.TABLE)


@segment_app.command("list")
@reports_errors
def segment_list(output: FormatOption = OutputFormat.TABLE) -> None:
    """List segments with their size, schedule and next refresh."""
    with transaction() as session:
        rows = [
            {
                "name": s.name,
                "expression": s.expression,
                "refresh": s.refresh,
                "size": s.size,
                "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
                "next_refresh_at": s.next_refresh_at.isoformat() if s.next_refresh_at else None,
                "description": s.description,
            }
            for s in segments.list_segments(session)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "segments",
        ["name", "expression", "refresh", "size", "refreshed", "next"],
        [
            [r["name"], r["expression"], r["refresh"], r["size"], r["refreshed_at"], r["next_refresh_at"]]
            for r in rows
        ],
    )


@segment_app.command("refresh")
@reports_errors
def segment_refresh(
    name: Annotated[str | None, typer.Argument(help="the segment to refresh")] = None,
    due: Annotated[
        bool, typer.Option("--due", help="refresh every scheduled segment that is due (for cron)")
    ] = False,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Refresh one segment, or (--due) every daily/hourly one whose time has come."""
    if (name is None) == (not due):
        errors.print("[red]error[/red]: give a segment name or --due (not both)")
        raise typer.Exit(2)
    if name is not None:
        with transaction() as session:
            segments.find_segment(session, name)
        names = [name]
    else:
        with unit_of_work(services().sessions) as session:
            names = segments.due(session)
    _print_refreshed("segments refreshed", _refresh_segments(names), output)


@segment_app.command("history")
@reports_errors
def segment_history(
    name: str,
    person: Annotated[str | None, typer.Option(help=PERSON_HELP)] = None,
    limit: int = 100,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Who entered and left a segment, and when (newest first)."""
    person_id = _person(person) if person is not None else None
    with transaction() as session:
        rows = [
            {"person_id": c.person_id, "change": c.change, "at": c.at.isoformat(), "by": c.actor}
            for c in segments.history(session, name, person_id=person_id, limit=limit)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(f"history of {name}", ["person", "change", "at", "by"], [list(r.values()) for r in rows])


@segment_app.command("export")
@reports_errors
def segment_export(
    name: str,
    file: Annotated[Path, typer.Argument(help="CSV file to write (UTF-8)")],
    reveal: Annotated[
        bool, typer.Option(help="write identifiers in clear (recorded in the audit log)")
    ] = False,
) -> None:
    """Export a segment's members to CSV (identifiers masked unless --reveal)."""
    svc = services()
    with transaction() as session, file.open("w", encoding="utf-8", newline="") as out:
        rows = segments.export_csv(
            session, name, out, vault=svc.vault, reveal=reveal, actor=CLI_ACTOR, via="cli"
        )
    console.print(f"{rows:,} rows written to {file} ({'clear' if reveal else 'masked'} identifiers)")
