"""``memberops db …`` and ``memberops apikey …``."""

from __future__ import annotations

from typing import Annotated

import typer

from memberops.access import service as access
from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    print_json,
    print_table,
    reports_errors,
    services,
    transaction,
)

db_app = typer.Typer(help="The operational store.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the current schema (runs automatically before other commands)."""
    settings = services().settings
    typer.echo(f"database at {settings.database_url.split('@')[-1]} is up to date")


@apikey_app.command("create")
@reports_errors
def apikey_create(
    name: Annotated[str, typer.Option(help="a name for the key, e.g. the system that uses it")],
    role: Annotated[str, typer.Option(help="admin | operator | analyst | guide")],
) -> None:
    """Create an API key and print it once (it is stored only as a hash)."""
    with transaction() as session:
        row, clear = access.create_key(session, name, role, actor=CLI_ACTOR)
    typer.echo(f"created key {row.name!r} with role {row.role}; keep it safe, it is not shown again:")
    typer.echo(clear)


@apikey_app.command("list")
def apikey_list(output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE) -> None:
    """List API keys (prefixes only)."""
    with transaction() as session:
        keys = [
            {
                "name": key.name,
                "role": key.role,
                "prefix": key.prefix,
                "created_at": key.created_at.isoformat(),
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in access.list_keys(session)
        ]
    if output is OutputFormat.JSON:
        print_json(keys)
    else:
        print_table(
            "API keys", ["name", "role", "prefix", "created", "revoked"], [list(k.values()) for k in keys]
        )


@apikey_app.command("revoke")
@reports_errors
def apikey_revoke(name: str) -> None:
    """Revoke the key called NAME; requests with it are refused from now on."""
    with transaction() as session:
        access.revoke_key(session, name, actor=CLI_ACTOR)
    typer.echo(f"revoked key {name!r}")


channel_app = typer.Typer(
    help="Channels and fields (场域) that orders and events come from.", no_args_is_help=True
)


@channel_app.command("list")
def channel_list(output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE) -> None:
    """List the channels orders' source and events' field may name."""
    from memberops.ingest.channels import list_channels

    with transaction() as session:
        rows = [{"code": c.code, "name": c.name, "kind": c.kind} for c in list_channels(session)]
    if output is OutputFormat.JSON:
        print_json(rows)
    else:
        print_table("channels", ["code", "name", "kind"], [list(r.values()) for r in rows])


@channel_app.command("add")
@reports_errors
def channel_add(
    code: Annotated[str, typer.Argument(help="lower-case code, e.g. jd or xiaohongshu")],
    name: Annotated[str, typer.Option(help="display name, e.g. 京东 / JD.com")],
    kind: Annotated[str, typer.Option(help="sales | social | both")] = "both",
) -> None:
    """Register a channel so orders and events from it are accepted."""
    from memberops.ingest.channels import add_channel

    with transaction() as session:
        add_channel(session, code, name, kind, actor=CLI_ACTOR)
    typer.echo(f"added channel {code!r}")
