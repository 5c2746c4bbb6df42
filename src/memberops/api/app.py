"""The FastAPI application: ``/api/v1`` routers, one error shape, docs that work offline.

The interactive docs (``/docs``, ``/redoc``) load Swagger UI and ReDoc from files shipped in the
``fastapi-offline`` package, never from a CDN, so they work on an air-gapped brand server.
"""

from __future__ import annotations

import gc
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from memberops.api import events, identity, keys, loyalty, members, orders, persons
from memberops.api.checkout import router as checkout_router
from memberops.api.deps import ServicesDep, reading
from memberops.api.errors import install_error_handlers
from memberops.api.insight import router as insight_router
from memberops.api.offers import router as offers_router
from memberops.api.reports import router as reports_router
from memberops.api.tags import router as tags_router
from memberops.ingest.intake import OrderIntake
from memberops.wiring import Services, build_services

API_PREFIX = "/api/v1"

DESCRIPTION = """\
memberops: private-domain member operations (私域会员运营): OneID, loyalty, insight, journeys.

**Authentication**: every endpoint but `/healthz` needs `Authorization: Bearer <API key>`; create
keys with `memberops apikey create` or `POST /api/v1/api-keys`. What a key may do depends on its
role (admin, operator, analyst, guide).

**Conventions**: money is a string of yuan with at most two decimals (`"36.80"`), never a number;
instants are ISO 8601 with a UTC offset (`2026-03-01T12:30:00+08:00`) and are returned in UTC.
Writes are idempotent on their natural key: a replay answers 200 with the first result and changes
nothing. Errors have one shape: `{"error": {"code", "message", "details"}}`.
"""

TAGS = [
    {"name": "ingest", "description": "Orders, refunds and events from every channel."},
    {"name": "members", "description": "Registration in the membership programme."},
    {"name": "persons", "description": "OneID profiles: identifiers, membership, orders."},
    {"name": "identity", "description": "OneID merges and how to undo a wrong one."},
    {"name": "loyalty", "description": "The programme document, members' points and tiers."},
    {"name": "checkout", "description": "Quote a cart; settle coupons and points at once; cancel, refund."},
    {"name": "coupons", "description": "Issue, list, redeem and void coupons."},
    {"name": "rewards", "description": "The rewards catalogue (积分商城): redeem with points, cancel."},
    {"name": "plans", "description": "Paid plans (付费会员): buy, renew, refund, status."},
    {"name": "reports", "description": "Points economics, tier distribution and moves, coupon use."},
    {"name": "tags and segments", "description": "Rule and manual tags, segments, preview, history, export."},
    {"name": "api keys", "description": "Keys for this API (admin only)."},
    {"name": "health", "description": "Liveness for load balancers and monitors."},
]


class Health(BaseModel):
    """The process is up and its database answers."""

    status: str
    database: str


health_router = APIRouter(tags=["health"])


@health_router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "the database does not answer"}},
    summary="Health check",
)
def healthz(services: ServicesDep) -> Health | JSONResponse:
    """Answer ``ok`` once the database answers ``SELECT 1`` (no key needed)."""
    try:
        with reading(services) as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
    return Health(status="ok", database="ok")


def _operation_id(route: APIRoute) -> str:
    """Name operations after their function (``create_order``), which reads well in client code."""
    return route.name


def _assemble() -> FastAPI:
    """Build the application (routes, handlers, docs) without binding it to services."""
    app = FastAPIOffline(
        title="memberops",
        version=version("memberops"),
        description=DESCRIPTION,
        openapi_tags=TAGS,
        generate_unique_id_function=_operation_id,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    for module in (orders, events, members, persons, identity, keys, loyalty):
        app.include_router(module.router, prefix=API_PREFIX)
    for router in (checkout_router, offers_router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(reports_router, prefix=API_PREFIX)
    app.include_router(insight_router, prefix=API_PREFIX)
    app.include_router(tags_router, prefix=API_PREFIX)
    return app


def create_app(services: Services | None = None) -> FastAPI:
    """Return the API for ``services`` (default: wired from the settings, database migrated)."""
    if services is None:
        from memberops.kit import migrate

        services = build_services()
        migrate.upgrade(services.engine)
    app = _assemble()
    app.state.services = services
    app.state.order_intake = OrderIntake(services.sessions, services.ingest)
    # What exists now (modules, routes, models, pydantic validators) lives as long as the process:
    # freeze it, so the cyclic collector, which request handling sets off again and again, never
    # walks it (gc.freeze is made for this; it frees nothing that is still garbage-collectable).
    gc.freeze()
    return app


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document without touching a database (for client generators and tests)."""
    return _assemble().openapi()
