"""``memberops webhook …``: subscribe receivers to domain events, run the dispatcher, handle dead letters."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    console,
    print_json,
    print_table,
    reports_errors,
    services,
    transaction,
)
from memberops.events.webhooks import (
    DEFAULT_BATCH,
    UrllibClient,
    add_subscription,
    dead_deliveries,
    deliver_due,
    delivery_counts,
    list_subscriptions,
    redeliver,
)
from memberops.kit.clock import utc_now

webhook_app = typer.Typer(
    help="Webhooks: signed deliveries of domain events (points, tiers, coupons…) to other systems.",
    no_args_is_help=True,
)


@webhook_app.command("add")
@reports_errors
def webhook_add(
    name: Annotated[str, typer.Option(help="a name for the receiver, e.g. crm")],
    url: Annotated[str, typer.Option(help="http(s) URL the events are POSTed to")],
    topics: Annotated[
        str, typer.Option(help="comma-separated topics or patterns: points.earned,tier.*  (* for all)")
    ],
    secret: Annotated[
        str | None, typer.Option(help="signing secret (16+ characters); made up and shown once if omitted")
    ] = None,
) -> None:
    """Subscribe URL to TOPICS; events emitted from now on are delivered, signed with the secret."""
    svc = services()
    with transaction() as session:
        subscription, clear = add_subscription(
            session, svc.vault, name=name, url=url, topics=topics.split(","), secret=secret, actor=CLI_ACTOR
        )
    typer.echo(f"added webhook {subscription.name!r} for {', '.join(subscription.topics)}")
    if secret is None:
        typer.echo("signing secret (give it to the receiver; it is not shown again):")
        typer.echo(clear)


@webhook_app.command("list")
def webhook_list(output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE) -> None:
    """List webhooks with how many of their deliveries are pending, delivered and dead."""
    with transaction() as session:
        counts = delivery_counts(session)
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "url": s.url,
                "topics": s.topics,
                "active": s.active,
                "pending": counts.get(s.id, {}).get("pending", 0),
                "delivered": counts.get(s.id, {}).get("delivered", 0),
                "dead": counts.get(s.id, {}).get("dead", 0),
                "created_at": s.created_at.isoformat(),
            }
            for s in list_subscriptions(session)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "webhooks",
        ["id", "name", "url", "topics", "active", "pending", "delivered", "dead", "created"],
        [[",".join(v) if isinstance(v, list) else v for v in row.values()] for row in rows],
    )


@webhook_app.command("deliver")
def webhook_deliver(
    once: Annotated[bool, typer.Option("--once", help="deliver what is due now, then stop")] = False,
    limit: Annotated[int, typer.Option(help="deliveries claimed per round")] = DEFAULT_BATCH,
    interval: Annotated[float, typer.Option(help="seconds to wait when nothing is due")] = 5.0,
    timeout: Annotated[float, typer.Option(help="seconds to wait for a receiver")] = 10.0,
) -> None:
    """Run the dispatcher: POST due events to their webhooks, retrying with backoff (Ctrl-C stops)."""
    svc = services()
    client = UrllibClient(timeout=timeout)
    totals = {"delivered": 0, "retrying": 0, "dead": 0}
    try:
        while True:
            report = deliver_due(svc, client, utc_now(), limit)
            totals["delivered"] += report.delivered
            totals["retrying"] += report.retrying
            totals["dead"] += report.dead
            if report.handled:
                console.print(f"delivered {report.delivered}, retrying {report.retrying}, dead {report.dead}")
            if report.handled < limit:
                if once:
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    typer.echo(
        f"total: delivered {totals['delivered']}, retrying {totals['retrying']}, dead {totals['dead']}"
    )


@webhook_app.command("dead")
def webhook_dead(
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
    limit: Annotated[int, typer.Option(help="how many to list, oldest first")] = 100,
) -> None:
    """List dead letters: deliveries that ran out of attempts (requeue one with ``redeliver ID``)."""
    with transaction() as session:
        rows = [
            {
                "delivery_id": d.delivery_id,
                "webhook": d.subscription,
                "event_id": d.event_id,
                "topic": d.topic,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "last_error": d.last_error,
            }
            for d in dead_deliveries(session, limit=limit)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
    else:
        print_table(
            "dead webhook deliveries",
            ["delivery", "webhook", "event", "topic", "attempts", "status", "error"],
            [list(r.values()) for r in rows],
        )


@webhook_app.command("redeliver")
@reports_errors
def webhook_redeliver(
    delivery_id: Annotated[int, typer.Argument(help="the delivery id `dead` lists")],
) -> None:
    """Requeue a dead delivery: due now, with a fresh set of attempts."""
    with transaction() as session:
        redeliver(session, delivery_id, actor=CLI_ACTOR)
    typer.echo(f"requeued delivery {delivery_id}; `memberops webhook deliver` sends it")
