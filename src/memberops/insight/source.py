"""Bind the store's tables as Ibis tables, and the base relations every analysis starts from.

The analyses read through the application's own SQLAlchemy engine: a raw DBAPI connection is
taken from it and detached from the pool (Ibis sets the session time zone to UTC on PostgreSQL,
which must not leak into pooled connections), so the analysis sees the same database, schema and
SQLite pragmas as the application, and nothing here ever writes.

Only two things depend on the engine, and both live here: how a timestamp becomes whole epoch
seconds (SQLite keeps text and rounds fractional seconds to the millisecond in its date
functions, so its text is cut to whole seconds first) and how JSON text is unquoted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
from ibis.backends import BaseBackend
from sqlalchemy import Engine

from memberops.insight.periods import SECONDS_PER_DAY, OffsetSegment

#: The store tables the analyses read.
TABLES = ("persons", "orders", "refunds", "order_lines", "memberships", "events", "consents")

T = TypeVar("T")
#: The name prefix of the temporary tables ``Source.keep`` makes.
_KEPT = "insight_"


@dataclass(frozen=True)
class Source:
    """An Ibis backend holding the store's tables (or tables of the same shape).

    ``shared`` is None for a single analysis. A run that computes many analyses on one
    connection (the nightly run) opens ``sharing()`` instead: then the relations every analysis
    starts from (purchases known on a date, members at an instant, the layers of a period…) are
    built and kept once per key and read by every later analysis, instead of being recomputed
    from the raw tables by each. The data must not change under such a run's feet: the tables
    the shared relations read (orders, refunds, memberships…) are never written by insight.
    """

    backend: BaseBackend
    shared: dict[Hashable, Any] | None = field(default=None, compare=False, repr=False)
    kept: list[str] = field(default_factory=list, compare=False, repr=False)

    def sharing(self) -> Source:
        """Return this source with a memory of shared relations (see the class docstring)."""
        return Source(self.backend, {})

    def once(self, key: Hashable, build: Callable[[], ir.Table]) -> ir.Table:
        """Return the relation ``build`` makes, kept as a table once per ``key`` on a sharing source.

        ``key`` must name everything the relation depends on (the instant, the period, the
        settings). Without sharing this is just ``build()``, so a single analysis is unchanged.
        """
        if self.shared is None:
            return build()
        if key not in self.shared:
            self.shared[key] = self.keep(build())
        found: ir.Table = self.shared[key]
        return found

    def remember(self, key: Hashable, build: Callable[[], T]) -> T:
        """Return what ``build`` returns (not a table: cut points, an analysis), once per ``key``."""
        if self.shared is None:
            return build()
        if key not in self.shared:
            self.shared[key] = build()
        found: T = self.shared[key]
        return found

    @property
    def name(self) -> str:
        return str(self.backend.name)

    def table(self, name: str) -> ir.Table:
        return self.backend.table(name)

    def epoch_seconds(self, column: ir.TimestampValue) -> ir.IntegerValue:
        """Return whole UTC epoch seconds of a stored timestamp, rounded down on every engine."""
        if self.name == "sqlite":
            whole = column.cast("string").substr(0, 19).cast("timestamp")
            return whole.epoch_seconds().cast("int64")
        return column.epoch_seconds().floor().cast("int64")

    def keep(self, expression: ir.Table) -> ir.Table:
        """Materialize an intermediate result as a temporary table of this connection.

        An analysis keeps what several later steps read (the layers of a period, the stages on a
        date) so the engine computes it once, and so no query nests deeper than SQLite's parser
        allows (it refuses about a dozen nested sub-selects). Temporary tables vanish with the
        connection and never touch the store's own tables.
        """
        operation = expression.op()
        if isinstance(operation, ops.DatabaseTable) and operation.name.startswith(_KEPT):
            return expression  # already kept (a shared relation): copying it again buys nothing
        name = f"{_KEPT}{uuid.uuid4().hex[:12]}"
        if self.name == "pyspark":
            # Spark has no temporary tables: a temporary view, cached now, is computed once too.
            table = self.backend.create_view(name, expression)
            self.backend.raw_sql(f"CACHE TABLE `{name}`")
        else:
            table = self.backend.create_table(name, expression, temp=True)
        self.kept.append(name)
        return table

    def release(self) -> None:
        """Drop the temporary tables this source kept and forget the shared relations.

        A connection's temporary tables live as long as it does; a long-lived connection (a
        warehouse copy a scheduler keeps open, a benchmark running two nights) would otherwise
        hold every night's intermediate results in memory.
        """
        for name in reversed(self.kept):
            if self.name == "pyspark":
                self.backend.raw_sql(f"UNCACHE TABLE IF EXISTS `{name}`")
                self.backend.raw_sql(f"DROP VIEW IF EXISTS `{name}`")
            else:
                self.backend.raw_sql(f'DROP TABLE IF EXISTS "{name}"')
        self.kept.clear()
        if self.shared is not None:
            self.shared.clear()

    def json_member(self, document: ir.Value, key: str) -> ir.StringValue:
        """Return member ``key`` of a JSON object column as plain text (null when it is missing).

        Engines disagree on whether quotes stay, so they are taken off. Spark keeps JSON as a
        string column with no JSON type, and reads a member with its own ``get_json_object``.
        """
        if self.name == "pyspark":
            return _get_json_object(document.cast("string"), f"$.{key}")
        return document[key].cast("string").replace('"', "")


@ibis.udf.scalar.builtin(name="get_json_object")  # type: ignore[untyped-decorator]
def _get_json_object(document: str, path: str) -> str:  # type: ignore[empty-body]
    """Spark SQL's ``get_json_object`` (a builtin: Ibis only names it)."""


@contextmanager
def open_source(engine: Engine) -> Iterator[Source]:
    """Open an Ibis backend on a connection of the application's engine; close it afterwards."""
    raw = engine.raw_connection()
    connection: Any = raw.driver_connection
    raw.detach()
    try:
        if engine.dialect.name == "sqlite":
            yield Source(ibis.sqlite.from_connection(connection))
        elif engine.dialect.name == "postgresql":
            connection.autocommit = True
            yield Source(ibis.postgres.from_connection(connection))
        else:
            raise ValueError(f"no analytics binding for the {engine.dialect.name} dialect")
    finally:
        raw.close()


def copy_tables(source: Source, names: Sequence[str], target: BaseBackend) -> Source:
    """Copy ``names`` from ``source`` into ``target`` (a DuckDB database); return the copy as a source.

    What a brand that points its analytics at a warehouse copy does (ADR 0009): the copy holds
    tables of the store's names and shapes, so every analysis runs on it unchanged. JSON columns
    travel as text and are turned back into JSON, so ``attributes["sku"]`` reads the same.
    Existing tables of those names in ``target`` are replaced.
    """
    for name in names:
        table = source.table(name)
        json_columns = [column for column, dtype in table.schema().items() if dtype.is_json()]
        if json_columns:
            table = table.mutate(**{column: table[column].cast("string") for column in json_columns})
        target.create_table(name, table.to_pyarrow(), overwrite=True)
        for column in json_columns:
            target.raw_sql(f'ALTER TABLE {name} ALTER "{column}" TYPE JSON')
    return Source(target)


def business_day(epoch: ir.IntegerValue, segments: tuple[OffsetSegment, ...]) -> ir.IntegerValue:
    """Return the business day number of epoch seconds (mirrors ``periods.local_day_of``)."""
    offset: ir.IntegerValue = ibis.literal(segments[0].offset_seconds, type="int64")
    if len(segments) > 1:
        branches = [
            (epoch >= segment.since_epoch, ibis.literal(segment.offset_seconds, type="int64"))
            for segment in reversed(segments[1:])
        ]
        offset = ibis.cases(*branches, else_=offset)
    return ((epoch + offset) // SECONDS_PER_DAY).cast("int64")


def live_persons(source: Source) -> ir.Table:
    """Map every person id to the live person it stands for now (``id`` → ``person_id``)."""
    # A view per use: Ibis must see two uses in one query as two relations to join them apart.
    persons = source.table("persons").view()
    return persons.select(id=persons.id, person_id=persons.merged_into_id.fill_null(persons.id))
