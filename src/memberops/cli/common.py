"""What every command shares: services, output formats and how errors are reported."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from memberops.identity.queries import resolve_reference
from memberops.kit.errors import MemberOpsError, NotFound
from memberops.wiring import Services, build_services

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

#: Exit status for bad input or a refused action (typer uses 2 for usage errors as well).
EXIT_REFUSED = 2
#: The actor recorded in audit entries for actions taken from this command line.
CLI_ACTOR = "cli"

P = ParamSpec("P")
R = TypeVar("R")


class OutputFormat(StrEnum):
    """How a command prints its result."""

    TABLE = "table"
    JSON = "json"


_services: Services | None = None


def services() -> Services:
    """Return the wired services, migrating the database to the current schema first."""
    global _services
    if _services is None:
        from memberops.kit import migrate

        _services = build_services()
        migrate.upgrade(_services.engine)
    return _services


@contextmanager
def transaction() -> Iterator[Any]:
    """One command, one transaction."""
    from memberops.kit.db import unit_of_work

    with unit_of_work(services().sessions) as session:
        yield session


def reports_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into a clear message and a non-zero exit instead of a traceback."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except MemberOpsError as error:
            errors.print(f"[red]error[/red] ({error.code}): {error.message}")
            raise typer.Exit(EXIT_REFUSED) from None

    return wrapper


def print_json(data: Any) -> None:
    """Print ``data`` as JSON (UTF-8, not escaped) on standard output."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a Rich table."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)


def person_of(session: Session, reference: str) -> int:
    """Return the person a command's person argument names (``cli.persons.PERSON_HELP``), or raise.

    Every command that takes a person reads the reference the same way and refuses an unknown one
    with the same ``not_found`` message; a merged person's id leads to the survivor.
    """
    person_id = resolve_reference(session, services().identity, reference)
    if person_id is None:
        raise NotFound(f"no person is known by {reference!r}")
    return person_id
