"""What endpoints receive: the wired services, the authenticated caller, and transactions.

Each request is one transaction: writes run in ``unit_of_work(services.sessions)`` (committed
when the endpoint returns, rolled back on any error), reads in ``services.read_sessions`` so
they never take SQLite's write lock. Endpoints are plain ``def``: the database layer is
synchronous and FastAPI runs such endpoints in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from memberops.access.rules import Permission, may
from memberops.access.service import Caller, authenticate
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Forbidden
from memberops.wiring import Services

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `memberops apikey create` or `POST /api/v1/api-keys`: "
    "`Authorization: Bearer mo_…`.",
)


def get_services(request: Request) -> Services:
    """Return the services the app was created with."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


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


def current_caller(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """Return who is calling, or raise ``Unauthenticated`` (401) for a missing or revoked key."""
    with reading(services) as session:
        return authenticate(session, credentials.credentials if credentials else None)


def require(permission: Permission) -> Callable[[Caller], Caller]:
    """Return a dependency that admits callers whose role holds ``permission`` (else 403)."""

    def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
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
