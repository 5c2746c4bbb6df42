"""Shared fixtures: a migrated database per test on SQLite and on PostgreSQL, and wired services.

Integration and end-to-end tests that take ``services`` run once per backend. PostgreSQL is
required, not optional: if it cannot be reached the PostgreSQL runs fail (set
MEMBEROPS_SKIP_POSTGRES=1 to deselect them knowingly on a machine without it).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from memberops.kit import migrate
from memberops.kit.crypto import IdentifierVault
from memberops.kit.db import make_engine
from memberops.kit.settings import Settings
from memberops.models import Base
from memberops.wiring import Services, build_services

POSTGRES_URL = os.environ.get(
    "MEMBEROPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_SECRET = base64.b64encode(b"memberops-test-secret-32-bytes!!").decode()
#: Reference data seeded by the migrations; kept between tests.
KEPT_TABLES = {"channels"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MEMBEROPS_SKIP_POSTGRES") == "1":
        skip = pytest.mark.skip(reason="MEMBEROPS_SKIP_POSTGRES=1")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A private schema in the test database, migrated once for the whole run."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in KEPT_TABLES]
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


def sqlite_engine(directory: Path) -> Iterator[Engine]:
    """A fresh, migrated SQLite file in ``directory``, disposed of afterwards."""
    sqlite = make_engine(f"sqlite:///{directory / 'memberops.db'}")
    migrate.upgrade(sqlite)
    yield sqlite
    sqlite.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: a fresh SQLite file, or the PostgreSQL schema truncated."""
    if request.param == "sqlite":
        yield from sqlite_engine(tmp_path)
        return
    postgres: Engine = request.getfixturevalue("postgres_engine")
    _truncate(postgres)
    yield postgres  # noqa: PT022 - the SQLite branch yields from a generator, so this one must yield too


def settings_for(database_url: str, **overrides: object) -> Settings:
    """Settings for a test database with a fixed secret (so digests are stable across runs)."""
    return Settings(database_url=database_url, secret_key=TEST_SECRET, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def services(engine: Engine) -> Services:
    """Wired services on the test database."""
    settings = settings_for(engine.url.render_as_string(hide_password=False))
    vault = IdentifierVault.from_secret(base64.b64decode(TEST_SECRET))
    return build_services(settings, engine=engine, vault=vault)


@pytest.fixture
def postgres_services(postgres_engine: Engine) -> Services:
    """Wired services on the (truncated) PostgreSQL schema only: for race tests."""
    _truncate(postgres_engine)
    settings = settings_for(postgres_engine.url.render_as_string(hide_password=False))
    vault = IdentifierVault.from_secret(base64.b64decode(TEST_SECRET))
    return build_services(settings, engine=postgres_engine, vault=vault)
