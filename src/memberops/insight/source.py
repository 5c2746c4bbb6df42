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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend
from sqlalchemy import Engine

from memberops.insight.periods import SECONDS_PER_DAY, OffsetSegment

#: The store tables the analyses read.
TABLES = ("persons", "orders", "refunds", "order_lines", "memberships", "events", "consents")


@dataclass(frozen=True)
class Source:
    """An Ibis backend holding the store's tables (or tables of the same shape)."""

    backend: BaseBackend

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
        name = f"insight_{uuid.uuid4().hex[:12]}"
        return self.backend.create_table(name, expression, temp=True)

    def json_text(self, value: ir.Value) -> ir.StringValue:
        """Return a JSON string member as plain text (engines disagree on whether quotes stay)."""
        return value.cast("string").replace('"', "")


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
