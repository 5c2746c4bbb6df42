"""Property-based fuzzing of the whole API from its own OpenAPI schema: no input makes a 5xx.

Schemathesis generates valid and invalid requests for every operation (path, query and body),
sends them with an admin key (so they get past authentication into the endpoints), and checks
that the answer is never a server error and matches what the schema documents. It runs on
SQLite only and is bounded per operation to keep the suite quick; a failure prints a
reproducible request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from memberops.access.rules import Role
from memberops.api.app import openapi_document
from memberops.wiring import Services
from tests.conftest import sqlite_engine

from .test_api_support import Api, order, start_api

#: Loaded from the document (no database needed at import); each test sends to its own app.
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: the fuzzer looks for unhandled input, which both backends share."""
    yield from sqlite_engine(tmp_path)


@pytest.fixture
def api(services: Services) -> Api:
    """The app with some data the schema's examples point at (a person, an order, a merge)."""
    api = start_api(services)
    api.post("/orders", order("MP-1", source="mini_program", phone=None, openid="oX1a2b3c"))
    api.post("/orders", order("POS-20260301-0001", store="SH001"))
    api.post("/members", {"phone": "13800138000", "openid": "oX1a2b3c", "member_no": "M0001"})
    return api


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_a_server_error(case: schemathesis.Case, api: Api) -> None:
    case.call_and_validate(
        app=api.client.app,
        headers=api.headers(Role.ADMIN),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
