"""``memberops person …`` and ``memberops identity …``: OneID from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from memberops.access.service import audit
from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    print_json,
    print_table,
    reports_errors,
    services,
    transaction,
)
from memberops.identity.queries import merges_of, person_profile, resolve_reference
from memberops.kit.errors import NotFound

person_app = typer.Typer(help="Look up, inspect and split persons (OneID).", no_args_is_help=True)
identity_app = typer.Typer(help="OneID merges and their accuracy.", no_args_is_help=True)

PERSON_HELP = (
    "a person id (person:42) or any identifier: 13800138000, member_no:M1, unionid:oU…, openid:APP:oX…, "
    "platform_user_id:tmall:t1"
)


@person_app.command("show")
@reports_errors
def person_show(
    person: Annotated[str, typer.Argument(help=PERSON_HELP)],
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
    reveal: Annotated[
        bool, typer.Option(help="show identifiers in clear (recorded in the audit log)")
    ] = False,
    orders: Annotated[int, typer.Option(help="how many recent orders to list")] = 50,
) -> None:
    """Show a person with identifiers, membership and orders (with their source and external id)."""
    svc = services()
    with transaction() as session:
        person_id = resolve_reference(session, svc.identity, person)
        if person_id is None:
            raise NotFound(f"no person is known by {person!r}")
        profile = person_profile(session, svc.identity, person_id, reveal=reveal, order_limit=orders)
        assert profile is not None
        if reveal:
            audit(session, CLI_ACTOR, "person.identifiers_revealed", "person", str(person_id), {})
    if output is OutputFormat.JSON:
        print_json(profile)
        return
    membership = profile["membership"]
    typer.echo(
        f"person {profile['person_id']}: "
        + (
            f"member {membership['member_no'] or ''} since {membership['joined_at']}"
            if membership["is_member"]
            else "not a member"
        )
        + f"; {profile['orders_summary']['count']} orders, paid {profile['orders_summary']['paid']} yuan"
    )
    print_table(
        "identifiers",
        ["id", "type", "namespace", "value", "source"],
        [[i["id"], i["type"], i["namespace"], i["value"], i["source"]] for i in profile["identifiers"]],
    )
    print_table(
        "orders",
        ["source", "external id", "paid at", "amount", "refunded", "store"],
        [
            [o["source"], o["external_id"], o["paid_at"], o["amount"], o["refunded"], o["store"]]
            for o in profile["orders"]
        ],
    )


@person_app.command("split")
@reports_errors
def person_split(
    person: Annotated[str, typer.Argument(help=PERSON_HELP)],
    identifiers: Annotated[str, typer.Option(help="comma-separated identifier ids to move to a new person")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
) -> None:
    """Split identifiers (and the records attributed by them) off into a new person."""
    svc = services()
    ids = [int(part) for part in identifiers.split(",") if part.strip()]
    with transaction() as session:
        person_id = resolve_reference(session, svc.identity, person)
        if person_id is None:
            raise NotFound(f"no person is known by {person!r}")
        new_person = svc.identity.split(session, person_id, ids, actor=CLI_ACTOR, reason=reason)
    typer.echo(f"split identifiers {ids} off person {person_id} into new person {new_person}")


@identity_app.command("merges")
@reports_errors
def identity_merges(
    person: Annotated[str | None, typer.Option(help=PERSON_HELP)] = None,
    limit: int = 50,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """List recent merges, or those of one person."""
    svc = services()
    with transaction() as session:
        person_id = None
        if person is not None:
            person_id = resolve_reference(session, svc.identity, person)
            if person_id is None:
                raise NotFound(f"no person is known by {person!r}")
        rows = [
            {
                "id": m.id,
                "survivor_id": m.survivor_id,
                "absorbed_id": m.absorbed_id,
                "identifier_type": m.identifier_kind,
                "actor": m.actor,
                "at": m.created_at.isoformat(),
                "undone_at": m.undone_at.isoformat() if m.undone_at else None,
            }
            for m in merges_of(session, person_id, limit)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
    else:
        print_table("merges", list(rows[0]) if rows else ["id"], [list(r.values()) for r in rows])


@identity_app.command("undo")
@reports_errors
def identity_undo(
    merge_id: int,
    reason: Annotated[str, typer.Option(help="why the merge was wrong (kept in the audit log)")],
) -> None:
    """Split a wrong merge: the absorbed person gets back its identifiers and records."""
    svc = services()
    with transaction() as session:
        merge = svc.identity.undo_merge(session, merge_id, actor=CLI_ACTOR, reason=reason)
    typer.echo(
        f"merge {merge.id} undone: person {merge.absorbed_id} is separate from {merge.survivor_id} again"
    )
