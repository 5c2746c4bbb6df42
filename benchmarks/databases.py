"""Fresh, migrated benchmark databases: a new SQLite file, or a PostgreSQL database dropped and recreated.

Every measured run starts from an empty database so no run inherits another's indexes, caches or
bloat. PostgreSQL databases are created through a psycopg autocommit connection to the ``test``
maintenance database (``CREATE DATABASE`` cannot run inside a transaction).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import psycopg

from memberops.kit import migrate
from memberops.kit.crypto import IdentifierVault
from memberops.kit.db import make_engine

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
PG_MAINTENANCE_DB = os.environ.get("BENCH_PG_MAINTENANCE_DB", "test")
#: A fixed secret, so digests are comparable between runs; it protects nothing but benchmark data.
BENCH_SECRET = base64.b64encode(b"memberops-benchmark-secret-32byt").decode()


def bench_vault() -> IdentifierVault:
    """The vault for ``BENCH_SECRET`` (passed explicitly: ``get_vault`` would read the process settings)."""
    return IdentifierVault.from_secret(base64.b64decode(BENCH_SECRET))


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_MAINTENANCE_DB, autocommit=True
    )


def postgres_url(name: str) -> str:
    """Return the SQLAlchemy URL of the benchmark database ``name``."""
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def recreate_postgres(name: str) -> str:
    """Drop (forcing out any session) and create the database ``name``; return its URL."""
    with _admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_url(name)


def drop_postgres(name: str) -> None:
    """Drop the database ``name`` if it exists."""
    with _admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def checkpoint_postgres() -> None:
    """Flush the server's dirty buffers now, so the next run does not pay for the previous one's."""
    with _admin() as connection:
        connection.execute("CHECKPOINT")


def postgres_settings() -> dict[str, str]:
    """Return the server settings that matter for write throughput (reported with the figures)."""
    names = (
        "server_version",
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "wal_level",
        "max_wal_size",
        "autovacuum",
    )
    with _admin() as connection:
        return {name: str(connection.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


def recreate_sqlite(path: Path) -> str:
    """Remove the SQLite file ``path`` (and its WAL and shared-memory files); return its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def fresh_database(backend: str, name: str, workdir: Path) -> str:
    """Return the URL of a new, migrated database ``name`` on ``backend`` (``sqlite`` or ``postgres``)."""
    url = recreate_sqlite(workdir / f"{name}.db") if backend == "sqlite" else recreate_postgres(name)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return url


def drop_database(backend: str, name: str, workdir: Path) -> None:
    """Remove a benchmark database once its figures are taken (they are large)."""
    if backend == "sqlite":
        recreate_sqlite(workdir / f"{name}.db")
    else:
        drop_postgres(name)
