"""``memberops programme|points|tier|loyalty …``: the programme document, the points ledger, tiers, jobs."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
from memberops.kit.clock import parse_instant, utc_now
from memberops.kit.errors import NotFound, ValidationFailed
from memberops.loyalty.jobs import CHUNK
from memberops.loyalty.programme import load_programme
from memberops.loyalty.queries import entry_view
from memberops.loyalty.tasks import complete_task
from memberops.loyalty.versions import require_programme

programme_app = typer.Typer(
    help="The membership programme document (tiers, earn rules, expiry…).", no_args_is_help=True
)
points_app = typer.Typer(
    help="Members' points: balance, history, adjustments, redemptions.", no_args_is_help=True
)
tier_app = typer.Typer(help="Members' tiers and growth value.", no_args_is_help=True)
loyalty_app = typer.Typer(
    help="Loyalty jobs: check the ledger, expire points, evaluate tiers, replay.", no_args_is_help=True
)

#: Exit status of ``loyalty check`` when the ledger breaks an invariant.
EXIT_PROBLEMS = 1

PersonArgument = Annotated[str, typer.Argument(help=PERSON_HELP)]
FormatOption = Annotated[OutputFormat, typer.Option("--format")]
OperatorOption = Annotated[str, typer.Option("--operator", help="who is doing this (kept on the entry)")]


# --- programme -------------------------------------------------------------------------------------


@programme_app.command("apply")
@reports_errors
def programme_apply(
    file: Annotated[Path, typer.Argument(help="the programme document: .toml or .json")],
    operator: OperatorOption = CLI_ACTOR,
) -> None:
    """Validate FILE and make it the active programme (every problem is listed with its path)."""
    if not file.is_file():
        raise NotFound(f"{file} does not exist")
    suffix = file.suffix.lower()
    if suffix not in {".toml", ".json"}:
        raise ValidationFailed(f"{file.name}: a programme document is a .toml or .json file")
    programme = load_programme(file.read_text(encoding="utf-8"), "toml" if suffix == ".toml" else "json")
    with transaction() as session:
        active, changed = services().loyalty.apply_programme(session, programme, actor=operator)
    state = "applied" if changed else "already active, nothing changed"
    typer.echo(f"programme {active.version} ({active.digest[:12]}) {state}; version id {active.version_id}")


@programme_app.command("show")
@reports_errors
def programme_show(output: FormatOption = OutputFormat.TABLE) -> None:
    """Show the active programme: its version, digest, and (as JSON) the whole document."""
    with transaction() as session:
        active = require_programme(session)
    if output is OutputFormat.JSON:
        print_json(
            {
                "version_id": active.version_id,
                "version": active.version,
                "digest": active.digest,
                "applied_at": active.applied_at.isoformat(),
                "applied_by": active.applied_by,
                "document": active.programme.model_dump(mode="json", by_alias=True),
            }
        )
        return
    rules = active.programme
    typer.echo(
        f"{rules.name}: version {active.version} (id {active.version_id}, digest {active.digest[:12]}), "
        f"applied {active.applied_at.isoformat()} by {active.applied_by}"
    )
    print_table("tiers", ["code", "name", "threshold"], [[t.code, t.name, t.threshold] for t in rules.tiers])
    typer.echo(
        f"earn {rules.earn.base.points} point(s) per {rules.earn.base.per_fen / 100:g} yuan; "
        f"expiry {rules.expiry.policy}; refund shortfall {rules.refunds.shortfall}"
    )


# --- points ----------------------------------------------------------------------------------------


@points_app.command("balance")
@reports_errors
def points_balance(person: PersonArgument, output: FormatOption = OutputFormat.TABLE) -> None:
    """Show a member's balance, what they can spend now, any debt and points expiring soon."""
    svc = services()
    with transaction() as session:
        summary = svc.loyalty.points_summary(session, person_of(session, person))
    if output is OutputFormat.JSON:
        print_json(summary)
        return
    typer.echo(
        f"person {summary['person_id']}: balance {summary['balance']} points, "
        f"spendable {summary['spendable']}" + (f", owes {summary['debt']}" if summary["debt"] else "")
    )
    if summary["expiring"]:
        print_table(
            f"expiring within {summary['expiring_within_days']} days",
            ["expires at", "points"],
            [[item["expires_at"], item["points"]] for item in summary["expiring"]],
        )


@points_app.command("history")
@reports_errors
def points_history(
    person: PersonArgument,
    limit: Annotated[int, typer.Option(help="how many entries, newest first")] = 50,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List a member's ledger entries, newest first."""
    svc = services()
    with transaction() as session:
        rows = svc.loyalty.points_history(session, person_of(session, person), limit=limit)
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "points history",
        ["id", "at", "kind", "delta", "balance", "reason", "source", "by"],
        [
            [
                r["entry_id"],
                r["created_at"],
                r["kind"],
                r["delta"],
                r["balance_after"],
                r["reason"],
                r["source"],
                r["actor"],
            ]
            for r in rows
        ],
    )


@points_app.command("adjust")
@reports_errors
def points_adjust(
    person: PersonArgument,
    amount: Annotated[
        int, typer.Argument(help="points to add; to remove, put the options first: --reason R -- PERSON -50")
    ],
    reason: Annotated[str, typer.Option(help="why (kept on the entry)")],
    key: Annotated[
        str | None, typer.Option(help="idempotency key: running again with it changes nothing")
    ] = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Add or remove points by hand, with a reason and the operator's name."""
    svc = services()
    with transaction() as session:
        entry = svc.loyalty.adjust(
            session,
            person_of(session, person),
            amount,
            reason=reason,
            actor=operator,
            key=f"adjust:{key or uuid.uuid4()}",
        )
        view = entry_view(entry)
    if output is OutputFormat.JSON:
        print_json(view)
    else:
        typer.echo(
            f"entry {view['entry_id']}: {view['delta']:+d} points, "
            f"balance {view['balance_after']} ({view['reason']})"
        )


@points_app.command("redeem")
@reports_errors
def points_redeem(
    person: PersonArgument,
    amount: Annotated[int, typer.Argument(help="points to redeem")],
    key: Annotated[str, typer.Option(help="idempotency key: running again with it changes nothing")],
    reason: Annotated[str, typer.Option(help="what the points are for")] = "redemption",
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Redeem points (soonest-expiring first); beyond the balance it fails and changes nothing."""
    svc = services()
    with transaction() as session:
        entry = svc.loyalty.spend(
            session,
            person_of(session, person),
            amount,
            key=f"redeem:{key}",
            reason=reason,
            source="redemption",
            actor=operator,
        )
        view = entry_view(entry)
    if output is OutputFormat.JSON:
        print_json(view)
    else:
        typer.echo(
            f"entry {view['entry_id']}: redeemed {-view['delta']} points, balance {view['balance_after']}"
        )


# --- tiers -----------------------------------------------------------------------------------------


@tier_app.command("show")
@reports_errors
def tier_show(person: PersonArgument, output: FormatOption = OutputFormat.TABLE) -> None:
    """Show a member's tier, growth, "N to next tier" and "will downgrade on D unless N more growth"."""
    svc = services()
    with transaction() as session:
        summary = svc.loyalty.tier_summary(session, person_of(session, person))
    if output is OutputFormat.JSON:
        print_json(summary)
        return
    if summary["programme"] is None:
        typer.echo(f"person {summary['person_id']}: no programme is applied")
        return
    typer.echo(
        f"person {summary['person_id']}: {summary['tier_name']} ({summary['tier']}), "
        f"{summary['window_growth']} growth in the window, {summary['growth_total']} in all"
        + (f", floor {summary['floor']}" if summary["floor"] else "")
    )
    upcoming = summary["next_tier"]
    if upcoming is None:
        typer.echo("top tier reached")
    else:
        typer.echo(f"{upcoming['growth_needed']} to next tier ({upcoming['tier']})")
    warning = summary["downgrade_warning"]
    if warning is not None:
        typer.echo(
            f"will downgrade on {warning['on']} unless {warning['growth_needed']} more growth "
            f"(to {warning['to_tier']})"
        )


@tier_app.command("floor")
@reports_errors
def tier_floor(
    person: PersonArgument,
    tier: Annotated[
        str | None, typer.Argument(help="the lowest tier the member may have; omit to clear")
    ] = None,
    reason: Annotated[str, typer.Option(help="why (kept in the tier history)")] = "",
    operator: OperatorOption = CLI_ACTOR,
) -> None:
    """Set or clear a member's manual tier floor (a floor above their tier raises them at once)."""
    svc = services()
    with transaction() as session:
        now_tier = svc.loyalty.set_floor(
            session, person_of(session, person), tier, actor=operator, reason=reason
        )
    typer.echo(f"floor {'set to ' + tier if tier else 'cleared'}; tier now {now_tier}")


@tier_app.command("task")
@reports_errors
def tier_task(
    person: PersonArgument,
    task: Annotated[str, typer.Argument(help="the growth task's code in the programme")],
    key: Annotated[str, typer.Option(help="idempotency key: the same key again rewards nothing")],
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Reward a growth task the member completed (once per the task's limit; past it: exit 1)."""
    svc = services()
    with transaction() as session:
        result = complete_task(
            session,
            person_of(session, person),
            task,
            key=f"cli:{key}",
            actor=operator,
            time_zone=svc.loyalty.time_zone,
        )
    if output is OutputFormat.JSON:
        print_json(
            {
                "person_id": result.person_id,
                "task": result.task,
                "growth": result.growth,
                "points": result.points,
                "created": result.created,
            }
        )
    else:
        verb = "rewarded" if result.created else "already rewarded (nothing changed)"
        typer.echo(f"task {task} {verb}: {result.growth} growth, {result.points} points")


# --- jobs ------------------------------------------------------------------------------------------


@loyalty_app.command("check")
@reports_errors
def loyalty_check(output: FormatOption = OutputFormat.TABLE) -> None:
    """Prove every cached balance equals its entries and no invariant is broken (exit 1 if one is)."""
    svc = services()
    with transaction() as session:
        found = svc.loyalty.check(session)
    if output is OutputFormat.JSON:
        print_json([{"invariant": p.invariant, "subject": p.subject, "message": p.message} for p in found])
    elif found:
        for problem in found:
            errors.print(f"[red]{problem}[/red]")
    else:
        console.print("[green]ledger ok[/green]: balances, lots, growth and take-backs equal their entries")
    if found:
        raise typer.Exit(EXIT_PROBLEMS)


@loyalty_app.command("expire")
@reports_errors
def loyalty_expire(
    at: Annotated[str | None, typer.Option(help="as of this instant (ISO 8601; default now)")] = None,
    notify_days: Annotated[
        int, typer.Option(help="also send points.expiring for this many days ahead (0: none)")
    ] = 30,
) -> None:
    """Expire points past their expiry (one transaction per chunk of members) and send expiring notices."""
    svc = services()
    now = parse_instant(at) if at else utc_now()
    members = points = 0
    while True:
        with transaction() as session:
            report = svc.loyalty.expire_due(session, now, limit=CHUNK)
        members, points = members + report.members, points + report.points
        if report.members == 0:
            break
    notices = 0
    if notify_days > 0:
        with transaction() as session:
            notices = svc.loyalty.notify_expiring(session, now, within=timedelta(days=notify_days))
    typer.echo(f"expired {points} points of {members} members; {notices} expiring notices sent")


@loyalty_app.command("evaluate-tiers")
@reports_errors
def loyalty_evaluate_tiers(
    on: Annotated[str | None, typer.Option(help="the business date, YYYY-MM-DD (default today)")] = None,
) -> None:
    """Decide the downgrades due and warn members whose downgrade date is near."""
    svc = services()
    today: date | None = date.fromisoformat(on) if on else None
    evaluated = downgraded = warned = 0
    while True:
        with transaction() as session:
            report = svc.loyalty.evaluate_tiers(session, today, limit=CHUNK)
        evaluated += report.evaluated
        downgraded += report.downgraded
        warned += report.warned
        if report.evaluated == 0:
            break
    typer.echo(f"evaluated {evaluated} members: {downgraded} went down; {warned} downgrade warnings sent")


@loyalty_app.command("replay")
@reports_errors
def loyalty_replay(
    batch_size: Annotated[int, typer.Option(help="orders per transaction")] = 2000,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Earn for every order not earned yet, in payment order, with expiry and tier evaluation on the way."""
    svc = services()
    started = datetime.now()
    with Progress(
        TextColumn("[bold]replay[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
    ) as bar:
        task = bar.add_task("orders", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = svc.loyalty.replay(svc.sessions, batch_size=batch_size, progress=progress)
    summary = {**report.__dict__, "seconds": round((datetime.now() - started).total_seconds(), 1)}
    if output is OutputFormat.JSON:
        print_json(summary)
    else:
        typer.echo(
            f"{report.orders} orders replayed, {report.earned} earned, {report.refunds} refunds taken back; "
            f"{report.expired_points} points expired, {report.downgraded} downgrades over "
            f"{report.checkpoints} evaluation dates"
        )
