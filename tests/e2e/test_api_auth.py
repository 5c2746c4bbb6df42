"""Every endpoint but /healthz needs a valid key, and each role may do only what it is granted."""

from __future__ import annotations

from typing import Any

import pytest

from memberops.access.rules import Role
from memberops.wiring import Services

from .test_api_support import Api, error_of, order, start_api


@pytest.fixture
def api(services: Services) -> Api:
    return start_api(services)


#: One request per permission: (method, path, body).
INGEST = ("POST", "/orders", order())
READ_PERSONS = ("GET", "/persons/1", None)
MANAGE_IDENTITY = ("POST", "/identity/merges/1/undo", {"reason": "test"})
MANAGE_KEYS = ("GET", "/api-keys", None)
MANAGE_PROGRAMME = ("PUT", "/programme", {"version": "x"})
MANAGE_POINTS = ("POST", "/members/1/points/adjustments", {"points": 1, "reason": "test"})
MANAGE_OFFERS = ("POST", "/coupons/%23999/void", {"reason": "test"})
CHECKOUT = ("POST", "/checkout/999/cancel", {"reason": "test"})


def call(api: Api, request: tuple[str, str, Any], role: Role | None, **headers: str) -> Any:
    method, path, body = request
    return api.client.request(method, f"/api/v1{path}", json=body, headers={**api.headers(role), **headers})


def test_no_key_or_a_wrong_key_is_401_and_changes_nothing(api: Api, subtests: pytest.Subtests) -> None:
    before = api.counts()
    for request in (INGEST, READ_PERSONS, MANAGE_IDENTITY, MANAGE_KEYS):
        with subtests.test(msg=f"no key: {request[0]} {request[1]}"):
            response = call(api, request, None)

            assert error_of(response) == (401, "unauthenticated")
            assert response.headers["WWW-Authenticate"] == "Bearer"
    for authorization in (
        "Bearer mo_not-a-real-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "mo_no_scheme",
        "Bearer x",
    ):
        with subtests.test(msg=f"wrong key: {authorization}"):
            response = call(api, INGEST, None, Authorization=authorization)

            assert error_of(response) == (401, "unauthenticated")
    assert api.counts() == before


def test_health_needs_no_key(api: Api) -> None:
    response = api.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


GRANTED = {
    Role.ADMIN: {"ingest", "read", "identity", "keys", "programme", "points", "offers", "checkout"},
    Role.OPERATOR: {"ingest", "read", "identity", "points", "offers", "checkout"},
    Role.ANALYST: {"read"},
    Role.GUIDE: {"read", "checkout"},
}
REQUESTS = {
    "ingest": INGEST,
    "read": READ_PERSONS,
    "identity": MANAGE_IDENTITY,
    "keys": MANAGE_KEYS,
    "programme": MANAGE_PROGRAMME,
    "points": MANAGE_POINTS,
    "offers": MANAGE_OFFERS,
    "checkout": CHECKOUT,
}


def test_each_role_gets_403_exactly_where_it_lacks_the_permission(
    api: Api, subtests: pytest.Subtests
) -> None:
    for role in Role:
        for name, request in REQUESTS.items():
            with subtests.test(msg=f"{role} {name}"):
                before = api.counts()
                response = call(api, request, role)
                if name in GRANTED[role]:
                    # Admitted: whatever the answer (201, 200 replay, 404 nobody there), not 401/403.
                    assert response.status_code not in {401, 403}, response.json()
                else:
                    assert error_of(response) == (403, "forbidden")
                    assert api.counts() == before


def test_forbidden_says_which_permission(api: Api) -> None:
    body = call(api, INGEST, Role.ANALYST).json()

    assert body == {
        "error": {
            "code": "forbidden",
            "message": "role 'analyst' may not ingest",
            "details": {"permission": "ingest", "role": "analyst"},
        }
    }


def test_key_lifecycle_create_use_list_revoke(api: Api) -> None:
    created = api.post("/api-keys", {"name": "pos-sync", "role": "operator"})

    assert created.status_code == 201
    new = created.json()
    assert new["name"] == "pos-sync"
    assert new["role"] == "operator"
    assert new["revoked_at"] is None
    assert new["key"].startswith("mo_")
    assert new["prefix"] == new["key"][:11]
    headers = {"Authorization": f"Bearer {new['key']}"}
    stored = api.client.post("/api/v1/orders", json=order("POS-KEY"), headers=headers)
    assert stored.status_code == 201

    listed = api.get("/api-keys").json()["keys"]
    assert [(k["name"], k["role"], k["revoked_at"]) for k in listed] == [
        ("pos-sync", "operator", None),
        ("guide", "guide", None),
        ("analyst", "analyst", None),
        ("operator", "operator", None),
        ("admin", "admin", None),
    ]
    assert all("key" not in k and "key_hash" not in k for k in listed)

    revoked = api.delete("/api-keys/pos-sync")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    before = api.counts()
    refused = api.client.post("/api/v1/orders", json=order("POS-KEY-2"), headers=headers)
    assert error_of(refused) == (401, "unauthenticated")
    assert api.counts() == before

    again = api.delete("/api-keys/pos-sync")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert [a for a in api.audit_actions() if a[0] == "admin"] == [
        ("admin", "apikey.created", "5"),
        ("admin", "apikey.revoked", "5"),
    ]


def test_key_refusals_change_nothing(api: Api) -> None:
    before = api.counts()

    assert error_of(api.post("/api-keys", {"name": "admin", "role": "analyst"})) == (409, "conflict")
    assert error_of(api.post("/api-keys", {"name": "x", "role": "root"})) == (422, "validation_failed")
    assert error_of(api.post("/api-keys", {"name": "", "role": "guide"})) == (422, "validation_failed")
    assert error_of(api.post("/api-keys", {"name": "x" * 101, "role": "guide"})) == (422, "validation_failed")
    assert error_of(api.delete("/api-keys/nobody")) == (404, "not_found")
    assert error_of(api.post("/api-keys", {"name": "x", "role": "guide"}, role=Role.OPERATOR)) == (
        403,
        "forbidden",
    )
    assert api.counts() == before
