"""Shared helpers of the API tests (a module, not a conftest, so it stays with the files it serves).

It holds no tests; each API test module builds its ``api`` fixture with ``start_api``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from memberops.access.rules import Role
from memberops.access.service import create_key
from memberops.api.app import create_app
from memberops.kit.clock import utc_now
from memberops.kit.db import unit_of_work
from memberops.models import (
    ApiKey,
    AuditEntry,
    Consent,
    Event,
    Identifier,
    IdentityMerge,
    Membership,
    Order,
    OrderLine,
    Person,
    Refund,
    Store,
)
from memberops.wiring import Services

#: Every table a rejected request must leave alone.
COUNTED = {
    "persons": Person,
    "identifiers": Identifier,
    "orders": Order,
    "order_lines": OrderLine,
    "refunds": Refund,
    "events": Event,
    "memberships": Membership,
    "consents": Consent,
    "merges": IdentityMerge,
    "api_keys": ApiKey,
    "audit": AuditEntry,
}


@dataclass
class Api:
    """A test client on the app, with one key per role."""

    client: TestClient
    services: Services
    keys: dict[Role, str]

    def headers(self, role: Role | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}

    def post(self, path: str, body: Any, role: Role | None = Role.ADMIN) -> httpx.Response:
        return self.client.post(f"/api/v1{path}", json=body, headers=self.headers(role))

    def get(self, path: str, role: Role | None = Role.ADMIN, **params: Any) -> httpx.Response:
        return self.client.get(f"/api/v1{path}", params=params, headers=self.headers(role))

    def delete(self, path: str, role: Role | None = Role.ADMIN) -> httpx.Response:
        return self.client.delete(f"/api/v1{path}", headers=self.headers(role))

    def counts(self) -> dict[str, int]:
        """Return the row count of every table a request can change."""
        with unit_of_work(self.services.read_sessions) as session:
            return {
                name: int(session.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in COUNTED.items()
            }

    def audit_actions(self) -> list[tuple[str, str, str]]:
        """Return ``(actor, action, subject_id)`` of every audit entry, oldest first."""
        with unit_of_work(self.services.read_sessions) as session:
            rows = session.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject_id).order_by(AuditEntry.id)
            )
            return [(actor, action, subject) for actor, action, subject in rows]


def start_api(services: Services) -> Api:
    """Create the app on ``services``, a store ``SH001`` and a key for every role (named after it)."""
    keys: dict[Role, str] = {}
    with unit_of_work(services.sessions) as session:
        session.add(
            Store(
                code="SH001", name="上海徐汇社区店", city="上海", store_type="community", created_at=utc_now()
            )
        )
        for role in Role:
            _, keys[role] = create_key(session, role.value, role.value, actor="test")
    return Api(TestClient(create_app(services)), services, keys)


def error_of(response: httpx.Response) -> tuple[int, str]:
    """Return the status and the error code of an error response (asserting the envelope)."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return response.status_code, body["error"]["code"]


def order(external_id: str = "POS-1", **fields: Any) -> dict[str, Any]:
    """A valid canonical POS order of 36.80 yuan paid at 12:30 Shanghai time; ``fields`` override."""
    body: dict[str, Any] = {
        "source": "pos",
        "external_id": external_id,
        "paid_at": "2026-03-01T12:30:00+08:00",
        "amount": "36.80",
        "phone": "13800138000",
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}
