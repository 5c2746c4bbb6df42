"""Database engine, sessions and the column types every table shares.

One request or job is one transaction: services never commit, the entry point does (``unit_of_work``).
SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` for writers so two writers queue instead of
failing half-way; PostgreSQL gets row and advisory locks where a read-modify-write needs them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVarTuple, cast, overload

import sqlalchemy
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Executable,
    Integer,
    Result,
    Table,
    bindparam,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.types import TypeDecorator

from memberops.kit.settings import get_settings

#: Primary keys: 64-bit on PostgreSQL, SQLite's rowid alias (which must be spelled INTEGER).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite keeps no offset, so naive values would come back ambiguous; this type refuses naive
    input and re-attaches UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: SQLite's own default: copy the write-ahead log back into the database file every 1,000 pages.
WAL_PAGES = 1000
#: For bulk jobs (see ``bulk``): every 16,384 pages (64 MiB of log).
BULK_WAL_PAGES = 16384


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that later writes can
        # fail with "database is locked" after doing half its work. Readers (see ``read_only``)
        # begin deferred so they never wait for, or block, a writer under WAL.
        options = connection.get_execution_options()
        wal_pages = options.get("memberops_wal_pages", WAL_PAGES)
        info = connection.connection.info  # lives as long as the DBAPI connection
        if info.get("wal_pages") != wal_pages:
            connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={int(wal_pages)}")
            info["wal_pages"] = wal_pages
        connection.exec_driver_sql(
            "BEGIN" if options.get("memberops_read_only", False) else "BEGIN IMMEDIATE"
        )


def make_engine(url: str | None = None, **options: Any) -> Engine:
    """Create an engine for ``url`` (default: the configured database) with our settings."""
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        engine = create_engine(url, **options)
        _configure_sqlite(engine)
        return engine
    # As many pooled connections as the API's thread pool runs requests (AnyIO's default is 40),
    # so a busy server never opens and closes overflow connections per request.
    options.setdefault("pool_size", 40)
    options.setdefault("max_overflow", 10)
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


def read_only(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions only read (same pool, deferred begin on SQLite)."""
    return engine.execution_options(memberops_read_only=True)


def bulk(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Return a session factory like ``sessions`` for a bulk job's long run of transactions.

    On SQLite its transactions copy the write-ahead log back into the database file every
    ``BULK_WAL_PAGES`` pages instead of every 1,000. A job that touches members all over the
    file (a replay of history) dirties pages of every index in each transaction; checkpointing
    after each of them writes the same pages to the file again and again (about a tenth of a
    replay's time). The log grows to about 64 MiB meanwhile; readers are not affected. The
    setting is per connection and is put back by the next ordinary transaction on it.
    Elsewhere nothing changes.
    """
    engine = sessions.kw["bind"]
    return session_factory(engine.execution_options(memberops_wal_pages=BULK_WAL_PAGES))


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """Return the process-wide engine for ``url`` (one pool per database)."""
    return make_engine(url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (objects stay readable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Run one transaction: commit when the block ends normally, roll back on any exception."""
    session = factory()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


#: Up to this many rows an INSERT … RETURNING is one round trip and the cheapest way to get ids.
_RETURNING_LIMIT = 32


def _reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve ``count`` primary keys of ``table`` for an insert without RETURNING.

    PostgreSQL draws them from the table's sequence; SQLite continues after the largest id, which
    is safe because a writer holds the database's write lock (``BEGIN IMMEDIATE``) until commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count},
        )
        return [int(row[0]) for row in rows]
    start = int(session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table.name}")).scalar_one()) + 1
    return list(range(start, start + count))


def insert_with_ids(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` through SQLAlchemy Core and return their new ids, in order.

    A few rows (an API request) go in with INSERT … RETURNING, one round trip; a batch gets its
    ids reserved first and goes in through ``insert_rows`` (one executemany, or COPY on
    PostgreSQL), several times faster than RETURNING row by row, which is what SQLAlchemy falls
    back to when it must keep the order of ids.
    """
    if not rows:
        return []
    if len(rows) <= _RETURNING_LIMIT:
        statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return [int(row[0]) for row in session.connection().execute(statement, rows)]
    ids = _reserve_ids(session, table, len(rows))
    insert_rows(session, table, [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
    return ids


def one_of(column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """Return ``column IN (values)``, written ``column = value`` when there is only one.

    SQLAlchemy renders an IN list into the SQL text on every execution (its length varies); an
    equality is compiled once and cached. An API request looks up one order and one or two
    identifiers, so on that path the difference is most of the lookup's client cost.
    """
    if len(values) == 1:
        return cast("ColumnElement[bool]", column == values[0])
    return cast("ColumnElement[bool]", column.in_(values))


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with one executemany through SQLAlchemy Core (no ids wanted back).

    (A multi-row ``INSERT … VALUES`` looks cheaper for an API request's two lines, but SQLAlchemy
    compiles it afresh for every call; the executemany's statement is compiled once.) A batch
    bound for PostgreSQL goes in by ``COPY`` instead (see ``_copy_rows``).
    """
    if not rows:
        return
    connection = session.connection()
    if len(rows) >= _SET_BASED_FROM and connection.dialect.name == "postgresql" and _copyable(table, rows[0]):
        _copy_rows(connection, table, rows)
        return
    connection.execute(table.insert(), rows)


def update_rows(session: Session, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Set the columns each row names on the row of ``table`` whose ``key`` column equals its ``key``.

    Every row names the same columns. SQLite runs one executemany (in-process, cheap per row).
    PostgreSQL gets a batch as **one** ``UPDATE … FROM unnest(arrays)``: an executemany would have
    the server plan and run an UPDATE per row, about as costly as the inserts of a replay batch.
    Values go through the columns' bind processing first, as in any other statement.
    """
    if not rows:
        return
    connection = session.connection()
    names = [name for name in rows[0] if name != key]
    if len(rows) < _SET_BASED_FROM or connection.dialect.name != "postgresql":
        statement = (
            sqlalchemy.update(table)
            .where(table.c[key] == bindparam(f"_{key}"))
            .values({name: bindparam(f"_{name}") for name in names})
        )
        connection.execute(statement, [{f"_{name}": value for name, value in row.items()} for row in rows])
        return
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    columns = [key, *names]
    arrays: dict[str, list[Any]] = {}
    casts: list[str] = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        values = [row[name] for row in rows]
        if isinstance(column_type, sqlalchemy.JSON):
            arrays[f"a{index}"] = [json.dumps(value) for value in values]
            casts.append(f"CAST(CAST(:a{index} AS text[]) AS json[])")
            continue
        [process] = _bind_processors(table, [name], dialect)
        arrays[f"a{index}"] = values if process is None else [process(value) for value in values]
        casts.append(f"CAST(:a{index} AS {column_type.compile(dialect)}[])")
    assignments = ", ".join(f"{quote(name)} = v.{quote(name)}" for name in names)
    source = f"unnest({', '.join(casts)}) AS v({', '.join(quote(name) for name in columns)})"
    match = f"t.{quote(key)} = v.{quote(key)}"
    sql = f"UPDATE {quote(table.name)} AS t SET {assignments} FROM {source} WHERE {match}"
    connection.execute(text(sql), arrays)


#: From this many rows on, PostgreSQL takes a batch by COPY (inserts) or one UPDATE … FROM unnest.
_SET_BASED_FROM = 64


def _bind_processors(table: Table, names: list[str], dialect: Dialect) -> list[Any]:
    """The bind processing an INSERT or UPDATE would apply to each named column (None: none)."""
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


def _copyable(table: Table, row: dict[str, Any]) -> bool:
    """Whether ``COPY`` stores what an INSERT would: no column left out has a client-side default."""
    return all(column.default is None or column.name in row for column in table.columns)


def _copy_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into a PostgreSQL ``table`` with ``COPY … FROM STDIN``, in this transaction.

    An executemany makes the server plan and run one INSERT per row (psycopg pipelines them, so
    the round trips are few, but not the work); COPY parses a stream of rows into the table at a
    fraction of that cost. Values go through the columns' SQLAlchemy bind processing (UTC
    timestamps, JSON) exactly as in an INSERT, and a failure surfaces as the same SQLAlchemy
    error (``IntegrityError`` for a duplicate key) the executemany would raise.
    """
    dialect = connection.dialect
    names = list(rows[0])
    processors = _bind_processors(table, names, dialect)
    quote = dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(name) for name in names)}) FROM STDIN"
    driver = cast(Any, connection.connection).driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(
                    [
                        value if process is None else process(value)
                        for value, process in zip((row[name] for name in names), processors, strict=True)
                    ]
                )
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(statement, None, error, dialect.loaded_dbapi.Error) from error


_Columns = TypeVarTuple("_Columns")


@overload
def fetch(session: Session, statement: TypedReturnsRows[*_Columns]) -> Result[*_Columns]: ...
@overload
def fetch(session: Session, statement: Executable) -> Result[*tuple[Any, ...]]: ...
def fetch(session: Session, statement: Executable) -> Result[*tuple[Any, ...]]:
    """Run a Core read on the session's connection, after writing out pending ORM changes.

    ``session.execute`` sends even a plain column select through the ORM's result machinery, which
    costs about twice the client CPU of the driver rows for the thousands of rows a batch reads;
    the set-based writers read columns, never objects, so they take the rows straight from the
    connection. Flushing first keeps what ``session.execute`` would have seen (autoflush).
    """
    session.flush()
    return session.connection().execute(statement)


def refresh_statistics(engine: Engine, tables: Iterable[str]) -> None:
    """Have PostgreSQL re-sample ``tables`` (ANALYZE), so lookups during a bulk load stay index seeks.

    Without fresh statistics the planner takes a growing table for an empty one and scans it for
    every batch, which makes a big import slower the further it gets. SQLite needs nothing.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            connection.exec_driver_sql(f"ANALYZE {table}")


def _lock_number(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def lock_keys(session: Session, keys: Iterable[str], *, shared: Iterable[str] = ()) -> None:
    """Take transaction-scoped advisory locks: ``shared`` ones first, then ``keys`` exclusively.

    PostgreSQL only (SQLite already serialises writers). One statement takes them all, in a fixed
    order (shared, then exclusive, each sorted), so two transactions wanting overlapping keys
    cannot deadlock, and a request pays one round trip however many keys it locks.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    calls: list[str] = []
    values: dict[str, int] = {}
    for function, group in (("pg_advisory_xact_lock_shared", shared), ("pg_advisory_xact_lock", keys)):
        for key in sorted(set(group)):
            name = f"k{len(values)}"
            values[name] = _lock_number(key)
            calls.append(f"{function}(:{name})")
    if calls:
        session.connection().execute(text(f"SELECT {', '.join(calls)}"), values)
