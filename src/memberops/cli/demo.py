"""``memberops demo``: generate the FreshHours fruit chain, load it, score OneID, and serve."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from memberops.access import service as access
from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    console,
    errors,
    print_json,
    reports_errors,
    services,
)
from memberops.cli.imports import run_import
from memberops.kit.clock import utc_now, zone
from memberops.kit.db import unit_of_work
from memberops.wiring import Services

identity_accuracy_help = "the demo's truth.parquet (written by `memberops demo`)"


def _yesterday(time_zone: str) -> date:
    return utc_now().astimezone(zone(time_zone)).date() - timedelta(days=1)


def _reset_embedded_database(url: str) -> None:
    if not url.startswith("sqlite:///"):
        raise typer.BadParameter(
            "--reset only deletes the embedded SQLite database; drop a server database yourself"
        )
    path = Path(url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@reports_errors
def demo(
    members: Annotated[int, typer.Option(help="how many registered members to generate")] = 20_000,
    seed: Annotated[
        int, typer.Option(help="random seed: the same seed and end date give the same brand")
    ] = 7,
    end_date: Annotated[
        str | None, typer.Option(help="last day of history, YYYY-MM-DD (default: yesterday)")
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", help="where the generated files go")] = Path(
        "demo-data"
    ),
    reset: Annotated[bool, typer.Option(help="start from an empty embedded database")] = True,
    serve: Annotated[bool, typer.Option(help="serve the API when loaded")] = True,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Generate a realistic fresh-fruit chain, import it as a brand would, and serve the API."""
    from memberops.demo.generator import generate_demo
    from memberops.demo.scoring import score_oneid
    from memberops.kit.settings import get_settings

    settings = get_settings()
    if reset and settings.database_url.startswith("sqlite:///"):
        _reset_embedded_database(settings.database_url)
    last_day = date.fromisoformat(end_date) if end_date else _yesterday(settings.time_zone)
    with Progress(
        TextColumn("[bold]generate[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

        manifest = generate_demo(directory, members=members, seed=seed, end_date=last_day, progress=progress)
    console.print(
        f"generated {manifest.persons:,} people ({manifest.members:,} members), {manifest.orders:,} orders, "
        f"{manifest.events:,} events, {manifest.malformed_rows:,} malformed rows in {directory}/"
    )
    svc = services()
    for item in manifest.files:
        summary = run_import(item.path, item.kind, profile=item.profile or "canonical")
        console.print(
            f"  {item.path.name}: {summary.imported:,} imported, {summary.duplicates:,} already there, "
            f"{summary.rejected:,} rejected"
            + (f" (see {summary.reject_path})" if summary.reject_path else "")
        )
    accuracy = score_oneid(svc, manifest.truth_path)
    (directory / "oneid-accuracy.json").write_text(json.dumps(accuracy.__dict__, indent=2) + "\n")
    console.print(
        f"OneID against the truth file: precision {accuracy.precision:.4%}, recall {accuracy.recall:.4%} "
        f"over {accuracy.records:,} records"
    )
    _run_programme(svc, seed=seed)
    _show_insight(svc, as_of=last_day, directory=directory)
    with unit_of_work(svc.sessions) as session:
        stamp = utc_now().strftime("%Y%m%d%H%M%S")
        _, key = access.create_key(session, f"demo-admin-{stamp}", "admin", actor=CLI_ACTOR)
    console.print("\n[bold]API key (role admin)[/bold], shown once — use it as 'Authorization: Bearer …':")
    typer.echo(key)
    console.print(
        f"\nTry:  curl -H 'Authorization: Bearer {key}' "
        f"'http://{host}:{port}/api/v1/persons/lookup?q=person:1'\n"
        f"Docs: http://{host}:{port}/docs    CLI: memberops person show person:1"
    )
    if serve:
        from memberops.cli.serve import serve as run_server

        console.print(f"serving on http://{host}:{port} (Ctrl+C to stop)")
        run_server(host, port, svc)


def _show_insight(svc: Services, *, as_of: date, directory: Path) -> None:
    """Compute every analysis, the demo's tags and the ready-made segments; print the headlines.

    The demo brand's insight settings are written to ``insight.toml`` beside its files and used
    by this process (the insight step and the API it serves) unless ``MEMBEROPS_INSIGHT_FILE``
    already names a file of the user's.
    """
    from memberops.demo.insight_run import run_insight, write_insight_settings

    settings_file = write_insight_settings(directory)
    if "MEMBEROPS_INSIGHT_FILE" not in os.environ:
        os.environ["MEMBEROPS_INSIGHT_FILE"] = str(settings_file.resolve())
        console.print(
            f"insight settings: {settings_file} (for other commands: "
            f"export MEMBEROPS_INSIGHT_FILE={settings_file.resolve()})"
        )

    console.print(
        "the nightly insight run (memberops analyze nightly): every analysis, the demo's tags "
        "and the ready-made segments"
    )
    summary = run_insight(svc, actor=CLI_ACTOR, as_of=as_of)
    rfm, stages = summary.analyses["rfm"], summary.analyses["lifecycle"]["stages"]
    layers, kpis = summary.analyses["layers"], summary.analyses["kpis"]["overall"]
    classes = sorted(rfm["classes"], key=lambda figures: -int(figures["people"]))[:3]
    console.print(
        f"RFM {rfm['start']}..{rfm['end']} ({rfm['people']:,} buyers): "
        + ", ".join(f"{c['name']} {int(c['people']):,}" for c in classes)
        + f"\nlifecycle on {as_of}: "
        + ", ".join(f"{stage} {int(people):,}" for stage, people in stages.items())
        + f"\nlayers {layers['period']}: "
        + ", ".join(f"{layer} {int(people):,}" for layer, people in layers["layers"].items())
        + f"; capital {layers['capital']:,}, conversion {layers['conversion']}"
        + f"\nKPIs {summary.analyses['kpis']['period']}: members {int(kpis['members']):,}, "
        f"active {int(kpis['active_members']):,}, repurchase rate {kpis['repurchase_rate']}, "
        f"churn rate {kpis['churn_rate']}; magic number {summary.analyses['magic-number']['magic_number']}"
        + "\ntags: "
        + ", ".join(f"{name} {people:,}" for name, people in summary.tags.items())
        + "\nsegments: "
        + ", ".join(f"{name} {people:,}" for name, people in summary.segments.items())
        + "\n(memberops analyze nightly|rfm|lifecycle|layers|kpis|cross|cohorts|magic-number|preferences, "
        "memberops segment list, memberops tag show PERSON)"
    )


def _run_programme(svc: Services, *, seed: int) -> None:
    """Apply the fruit-chain programme and replay the history through it, then show what it did.

    A brand loading its history does the same: import first, then apply the programme and replay,
    so every order earns in payment order with the tier its member had at the time. The demo also
    weaves in what members did with the programme meanwhile (``memberops.demo.programme_run``):
    paid plans bought, coupons issued and used, points spent in the mall and at checkout.
    """
    from memberops.demo.programme_run import run_programme
    from memberops.loyalty.plan_service import plan_statuses
    from memberops.loyalty.programme import demo_programme
    from memberops.loyalty.reports import coupon_report, points_economics, tier_report
    from memberops.models import PaidPlanTerm

    with unit_of_work(svc.sessions) as session:
        active, _ = svc.loyalty.apply_programme(session, demo_programme(), actor=CLI_ACTOR)
    console.print(
        f"programme {active.version!r} applied; replaying the history through it with the members' activity"
    )
    with Progress(
        TextColumn("[bold]loyalty[/bold] replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as bar:
        task = bar.add_task("replay", total=None)
        now = utc_now()
        run = run_programme(
            svc,
            seed=seed,
            now=now,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    report, activity = run.replay, run.activity
    time_zone = svc.settings.time_zone
    with unit_of_work(svc.read_sessions) as session:
        problems = svc.loyalty.check(session)
        today = now.astimezone(zone(time_zone)).date()
        start = today - timedelta(days=364)
        economics = points_economics(session, start=start, end=today, time_zone=time_zone)
        tiers = tier_report(session, on=today, start=start, end=today, time_zone=time_zone)
        coupons = coupon_report(session, start=start, end=today, time_zone=time_zone).total
        holders = session.scalars(select(PaidPlanTerm.person_id).distinct()).all()
        statuses = Counter(
            status.status
            for status in plan_statuses(session, holders, time_zone=zone(time_zone), at=now).values()
        )
    figures = economics.as_dict()
    console.print(
        f"{report.earned:,} orders earned points; {report.refunds:,} refunds took them back; "
        f"ledger check: {'no problem' if not problems else f'{len(problems)} problems'}\n"
        f"activity: {activity.plan_terms:,} plan terms bought ({activity.plan_renewals:,} renewals), "
        f"{activity.rewards_redeemed:,} rewards redeemed ({activity.rewards_cancelled:,} cancelled), "
        f"{activity.points_uses:,} orders paid partly with points, "
        f"{activity.coupon_uses:,} coupons used on orders, {activity.birthday_gifts:,} birthday gifts\n"
        f"last 12 months: issued {figures['issued']:,}, burned {figures['burned']:,}, expired "
        f"{figures['expired']:,}, outstanding {figures['outstanding_points']:,} points "
        f"(liability ¥{figures['liability']}, redemption rate {figures['redemption_rate'] or '-'}); "
        f"coupons issued {coupons.issued:,}, redeemed {coupons.redeemed:,}, expired {coupons.expired:,}\n"
        f"members by tier today: "
        + ", ".join(f"{count['tier']} {count['members']:,}" for count in tiers.as_dict()["distribution"])
        + "; paid-plan holders today: "
        + ", ".join(f"{name} {statuses.get(name, 0):,}" for name in ("active", "expiring", "expired"))
        + "\n(memberops report points|tiers|coupons for the whole reports)"
    )


@reports_errors
def identity_accuracy(
    truth: Annotated[Path, typer.Option(help=identity_accuracy_help)] = Path("demo-data/truth.parquet"),
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Report OneID merge precision and recall against the demo's truth file."""
    from memberops.demo.scoring import score_oneid
    from memberops.kit.errors import NotFound

    if not truth.is_file():
        raise NotFound(f"{truth} does not exist; run `memberops demo` first")
    accuracy = score_oneid(services(), truth)
    if output is OutputFormat.JSON:
        print_json(accuracy.__dict__)
        return
    a = accuracy
    console.print(f"records   {a.records:,}")
    console.print(
        f"precision {a.precision:.4%} ({a.true_predicted_pairs:,} of {a.predicted_pairs:,} merged pairs)"
    )
    console.print(
        f"recall    {a.recall:.4%} ({a.recovered_pairs:,} of {a.recoverable_pairs:,} recoverable pairs)"
    )
