"""The API describes itself offline: OpenAPI, Swagger UI and ReDoc with no CDN; health; errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from memberops.access.rules import Role
from memberops.api.app import create_app, openapi_document
from memberops.kit.crypto import IdentifierVault, get_vault
from memberops.kit.db import make_engine, unit_of_work
from memberops.kit.settings import Settings, get_settings
from memberops.models import Channel
from memberops.wiring import Services, build_services
from tests.conftest import sqlite_engine

from .test_api_support import Api, error_of, start_api


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: what these tests check does not depend on the database."""
    yield from sqlite_engine(tmp_path)


@pytest.fixture
def api(services: Services) -> Api:
    return start_api(services)


def test_openapi_names_the_package_and_every_endpoint(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()

    assert schema["info"]["title"] == "memberops"
    assert schema["info"]["version"] == version("memberops")
    operations = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert operations == {
        ("GET", "/healthz"),
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/refunds"),
        ("POST", "/api/v1/events"),
        ("POST", "/api/v1/members"),
        ("GET", "/api/v1/persons/lookup"),
        ("GET", "/api/v1/persons/{person_id}"),
        ("POST", "/api/v1/persons/{person_id}/split"),
        ("GET", "/api/v1/identity/merges"),
        ("POST", "/api/v1/identity/merges/{merge_id}/undo"),
        ("POST", "/api/v1/api-keys"),
        ("GET", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/api-keys/{name}"),
        ("PUT", "/api/v1/programme"),
        ("POST", "/api/v1/programme"),
        ("GET", "/api/v1/programme"),
        ("GET", "/api/v1/members/{person}/points"),
        ("GET", "/api/v1/members/{person}/points/history"),
        ("POST", "/api/v1/members/{person}/points/adjustments"),
        ("POST", "/api/v1/members/{person}/points/redemptions"),
        ("GET", "/api/v1/members/{person}/tier"),
        ("POST", "/api/v1/members/{person}/tasks/{task}"),
        ("POST", "/api/v1/checkout/quote"),
        ("POST", "/api/v1/checkout/settle"),
        ("GET", "/api/v1/checkout/{settlement_id}"),
        ("POST", "/api/v1/checkout/{settlement_id}/cancel"),
        ("POST", "/api/v1/checkout/{settlement_id}/refunds"),
        ("POST", "/api/v1/coupons/issue"),
        ("GET", "/api/v1/members/{person}/coupons"),
        ("GET", "/api/v1/coupons/{coupon}"),
        ("POST", "/api/v1/coupons/{coupon}/redeem"),
        ("POST", "/api/v1/coupons/{coupon}/void"),
        ("GET", "/api/v1/rewards"),
        ("POST", "/api/v1/rewards/{reward}/redeem"),
        ("POST", "/api/v1/reward-redemptions/{redemption_id}/cancel"),
        ("POST", "/api/v1/members/{person}/plan/purchases"),
        ("POST", "/api/v1/members/{person}/plan/renewals"),
        ("POST", "/api/v1/members/{person}/plan/refunds"),
        ("GET", "/api/v1/members/{person}/plan"),
        ("GET", "/api/v1/reports/points"),
        ("GET", "/api/v1/reports/tiers"),
        ("GET", "/api/v1/reports/coupons"),
        ("GET", "/api/v1/insight/rfm"),
        ("GET", "/api/v1/insight/rfm/people"),
        ("GET", "/api/v1/insight/lifecycle"),
        ("GET", "/api/v1/insight/lifecycle/people"),
        ("GET", "/api/v1/insight/layers"),
        ("GET", "/api/v1/insight/layers/people"),
        ("GET", "/api/v1/insight/kpis"),
        ("GET", "/api/v1/insight/cross"),
        ("GET", "/api/v1/insight/cohorts"),
        ("GET", "/api/v1/insight/magic-number"),
        ("GET", "/api/v1/insight/preferences"),
        ("GET", "/api/v1/insight/preferences/people"),
        ("GET", "/api/v1/tags"),
        ("POST", "/api/v1/tags"),
        ("POST", "/api/v1/tags/refresh"),
        ("GET", "/api/v1/tags/{name}/history"),
        ("PUT", "/api/v1/tags/{name}/persons/{person_id}"),
        ("DELETE", "/api/v1/tags/{name}/persons/{person_id}"),
        ("GET", "/api/v1/persons/{person_id}/tags"),
        ("POST", "/api/v1/segments/preview"),
        ("GET", "/api/v1/segments"),
        ("POST", "/api/v1/segments"),
        ("POST", "/api/v1/segments/refresh-due"),
        ("POST", "/api/v1/segments/{name}/refresh"),
        ("GET", "/api/v1/segments/{name}/history"),
        ("GET", "/api/v1/segments/{name}/export"),
    }
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    amount = schema["components"]["schemas"]["OrderRequest"]["properties"]["amount"]
    assert amount["type"] == "string"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_nothing_from_outside(api: Api, page: str) -> None:
    response = api.client.get(page)

    assert response.status_code == 200
    html = response.text
    assert re.findall(r"https?://", html) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = api.client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 0
    assert "/openapi.json" in html


def test_unknown_route_and_method_use_the_error_envelope(api: Api) -> None:
    assert error_of(api.get("/nothing-here")) == (404, "not_found")
    assert error_of(api.client.put("/api/v1/orders", headers=api.headers(None))) == (
        405,
        "method_not_allowed",
    )


def test_malformed_json_is_a_validation_error(api: Api) -> None:
    before = api.counts()

    response = api.client.post(
        "/api/v1/orders",
        content=b"{not json",
        headers={**api.headers(Role.ADMIN), "Content-Type": "application/json"},
    )

    assert error_of(response) == (422, "validation_failed")
    assert api.counts() == before


def test_the_document_is_available_without_a_database(api: Api) -> None:
    assert openapi_document() == api.client.get("/openapi.json").json()


def test_health_reports_an_unreachable_database(tmp_path: Path) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'memberops.db'}")
    vault = IdentifierVault.from_secret(b"0" * 32)
    services = build_services(Settings(database_url=str(broken.url)), engine=broken, vault=vault)
    client = TestClient(create_app(services))

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}


def test_without_services_the_app_wires_and_migrates_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMBEROPS_DATABASE_URL", f"sqlite:///{tmp_path / 'configured.db'}")
    monkeypatch.setenv("MEMBEROPS_SECRET_FILE", str(tmp_path / "memberops.secret"))
    get_settings.cache_clear()
    get_vault.cache_clear()
    try:
        app = create_app()
        response = TestClient(app).get("/healthz")
        with unit_of_work(app.state.services.read_sessions) as session:
            channels = session.scalar(select(func.count()).select_from(Channel))
    finally:
        get_settings.cache_clear()
        get_vault.cache_clear()

    assert response.status_code == 200
    assert channels == 9
    assert (tmp_path / "configured.db").exists()
