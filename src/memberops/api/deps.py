"""What endpoints receive: the wired services, the authenticated caller, and transactions.

Each request is one transaction: writes run in ``unit_of_work(services.sessions)`` (committed
when the endpoint returns, rolled back on any error), reads in ``services.read_sessions`` so
they never take SQLite's write lock. Endpoints are plain ``def``: the database layer is
synchronous and FastAPI runs such endpoints in its thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from memberops.access.rules import Permission, may
from memberops.access.service import Caller, authenticate, trusted_caller
from memberops.ingest.intake import OrderIntake
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Forbidden
from memberops.wiring import Services

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `memberops apikey create` or `POST /api/v1/api-keys`: "
    "`Authorization: Bearer mo_…`.",
)


async def get_services(request: Request) -> Services:
    """Return the services the app was created with."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_intake(request: Request) -> OrderIntake:
    """Return the app's order intake (one writer thread per app, see ``ingest.intake``)."""
    return cast(OrderIntake, request.app.state.order_intake)


IntakeDep = Annotated[OrderIntake, Depends(get_intake)]


@contextmanager
def writing(services: Services) -> Iterator[Session]:
    """Run the block as the request's one writing transaction."""
    with unit_of_work(services.sessions) as session:
        yield session


@contextmanager
def reading(services: Services) -> Iterator[Session]:
    """Run the block in a read-only transaction (deferred on SQLite, so it never blocks a writer)."""
    with unit_of_work(services.read_sessions) as session:
        yield session


def _authenticate(services: Services, presented: str | None) -> Caller:
    with reading(services) as session:
        return authenticate(session, presented)


async def current_caller(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """Return who is calling, or raise ``Unauthenticated`` (401) for a missing or revoked key.

    Async on purpose: FastAPI runs every plain ``def`` dependency in its thread pool, a hand-off
    that costs more than the check itself when the key was trusted moments ago. Only a key not
    checked recently goes to the database, in the thread pool.
    """
    presented = credentials.credentials if credentials else None
    trusted = trusted_caller(str(services.engine.url), presented)
    if trusted is not None:
        return trusted
    return await run_in_threadpool(_authenticate, services, presented)


def require(permission: Permission) -> Callable[[Caller], Awaitable[Caller]]:
    """Return a dependency that admits callers whose role holds ``permission`` (else 403)."""

    async def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not may(caller.role, permission):
            raise Forbidden(
                f"role {caller.role.value!r} may not {permission.value.replace('_', ' ')}",
                permission=permission.value,
                role=caller.role.value,
            )
        return caller

    dependency.__name__ = f"require_{permission.value}"
    return dependency


Ingestor = Annotated[Caller, Depends(require(Permission.INGEST))]
PersonReader = Annotated[Caller, Depends(require(Permission.READ_PERSONS))]
IdentityManager = Annotated[Caller, Depends(require(Permission.MANAGE_IDENTITY))]
KeyManager = Annotated[Caller, Depends(require(Permission.MANAGE_KEYS))]
