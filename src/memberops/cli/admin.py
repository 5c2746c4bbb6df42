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
