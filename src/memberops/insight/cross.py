"""Cross tables: any two dimensions against each other, one measure per cell (tier × store type …).

Dimensions and measures are those of ``kpi_rules``: ``members`` counts the members at the end of
the period by their home (store, store type and join field of the spell they hold) and tier;
``buyers``, ``orders``, ``sales`` and ``aov`` count the period's purchases by where they were
placed and the buyer's tier at the period's end (``non_member`` for everyone else, guests
included in orders and sales, not in buyers). Cells, row totals, column totals and the grand
total are four grouped queries, so a buyer who bought in two store types counts once in a
column total and once in each cell.

The person dimensions (``city``, ``stage``, ``rfm``, ``layer``, ``preferred``, ``plan``) group
members, or the buyers of the period's orders, by that attribute on the as-of date exactly as a
tag or segment expression reads it (``compiler.attribute_values``, the brand's thresholds), so
the ``sleeping`` row of a stage × tier table counts the people ``stage = "sleeping"`` selects.
People without the attribute, and guest orders, are in the ``none`` group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import ibis.expr.types as ir

from memberops.insight import base, compiler, dimensions
from memberops.insight.config import BrandSettings
from memberops.insight.kpi_rules import (
    NO_VALUE,
    PERSON_DIMENSIONS,
    Dimension,
    InvalidOption,
    Measure,
    average_fen,
    yuan_text,
)
from memberops.insight.kpis import group_order
from memberops.insight.periods import Period, day_number, period_heading
from memberops.insight.source import Source
from memberops.kit.money import fen_to_yuan

#: The ready-made view.
DEFAULT_ROWS = Dimension.TIER
DEFAULT_COLUMNS = Dimension.STORE_TYPE
DEFAULT_MEASURE = Measure.MEMBERS


@dataclass(frozen=True)
class Cell:
    """The counts behind one cell (or total); ``value`` picks the measure."""

    people: int = 0
    orders: int = 0
    sales_fen: int = 0

    def value(self, measure: Measure) -> int | str | None:
        if measure in (Measure.MEMBERS, Measure.BUYERS):
            return self.people
        if measure is Measure.ORDERS:
            return self.orders
        if measure is Measure.SALES:
            return fen_to_yuan(self.sales_fen)
        return yuan_text(average_fen(self.sales_fen, self.orders))


@dataclass(frozen=True)
class CrossReport:
    """One measure over two dimensions for a period."""

    as_of: date
    period: Period
    time_zone: str
    rows: Dimension
    columns: Dimension
    measure: Measure
    row_groups: tuple[str, ...]
    column_groups: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]
    row_totals: dict[str, Cell]
    column_totals: dict[str, Cell]
    total: Cell

    def value(self, row: str, column: str) -> int | str | None:
        return self.cells.get((row, column), Cell()).value(self.measure)

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "time_zone": self.time_zone,
            "rows": self.rows.value,
            "columns": self.columns.value,
            "measure": self.measure.value,
            "row_groups": list(self.row_groups),
            "column_groups": list(self.column_groups),
            "cells": [
                {"row": row, "column": column, "value": cell.value(self.measure)}
                for (row, column), cell in sorted(self.cells.items(), key=self._position)
            ],
            "row_totals": {group: self.row_totals[group].value(self.measure) for group in self.row_groups},
            "column_totals": {
                group: self.column_totals[group].value(self.measure) for group in self.column_groups
            },
            "total": self.total.value(self.measure),
        }

    def _position(self, item: tuple[tuple[str, str], Cell]) -> tuple[int, int]:
        (row, column), _ = item
        return self.row_groups.index(row), self.column_groups.index(column)


def _cells(table: ir.Table, keys: list[str], people: bool) -> dict[tuple[str, ...], Cell]:
    """One grouped query over ``keys`` (empty: the grand total)."""
    measures: dict[str, ir.Value] = {
        "people": table.person_id.nunique() if not people else table.count(),
    }
    if not people:
        measures["orders"] = table.count()
        measures["sales_fen"] = table.net_fen.sum()
    grouped = table.group_by([table[key] for key in keys]).agg(**measures) if keys else table.agg(**measures)
    found = {}
    for row in grouped.to_pyarrow().to_pylist():
        found[tuple(str(row[key]) for key in keys)] = Cell(
            people=int(row["people"] or 0),
            orders=int(row.get("orders") or 0),
            sales_fen=int(row.get("sales_fen") or 0),
        )
    return found


def _with_attribute(table: ir.Table, scope: compiler.Scope, dimension: Dimension) -> ir.Table:
    """Add column ``dimension``: each row's person's attribute on the as-of date (``none`` without)."""
    values = compiler.attribute_values(scope, dimension.value)
    values = values.select(attribute_pid=values.person_id, attribute=values.value.cast("string"))
    joined = table.left_join(values, table.person_id == values.attribute_pid)
    return joined.select(
        *(joined[column] for column in table.columns),
        **{dimension.value: joined.attribute.fill_null(NO_VALUE)},
    )


def report(
    source: Source,
    clock: base.Clock,
    period: Period,
    tiers: tuple[str, ...],
    rows: Dimension = DEFAULT_ROWS,
    columns: Dimension = DEFAULT_COLUMNS,
    measure: Measure = DEFAULT_MEASURE,
    settings: BrandSettings | None = None,
) -> CrossReport:
    """Cross ``rows`` with ``columns`` for ``period``, counting ``measure`` in every cell.

    ``settings`` are the brand's thresholds the person dimensions are judged by (default DOMAIN's).
    """
    if rows is columns:
        raise InvalidOption(f"rows and columns are both {rows.value}: pick two different dimensions")
    end_clock = clock.on(period.end)
    members = dimensions.members_with_tier(source, end_clock.end_epoch, tiers)
    if measure is Measure.MEMBERS:
        table = source.keep(members)
    else:
        sold = dimensions.sales(source, end_clock, since=period.start)
        sold = sold.filter(sold.day >= day_number(period.start), sold.day <= day_number(period.end))
        table = source.keep(dimensions.buyer_tiers(sold, source.keep(members)))
        if measure is Measure.BUYERS:
            table = table.filter(table.person_id.notnull())
    wanted = [item for item in (rows, columns) if item in PERSON_DIMENSIONS]
    if wanted:
        scope = compiler.brand_scope(source, clock, settings or BrandSettings())
        for item in wanted:
            table = _with_attribute(table, scope, item)
        table = source.keep(table)
    people = measure is Measure.MEMBERS
    row_key, column_key = rows.value, columns.value
    cells = {(key[0], key[1]): cell for key, cell in _cells(table, [row_key, column_key], people).items()}
    row_totals = {key[0]: cell for key, cell in _cells(table, [row_key], people).items()}
    column_totals = {key[0]: cell for key, cell in _cells(table, [column_key], people).items()}
    total = _cells(table, [], people).get((), Cell())
    return CrossReport(
        as_of=clock.as_of,
        period=period,
        time_zone=clock.time_zone,
        rows=rows,
        columns=columns,
        measure=measure,
        row_groups=tuple(group_order(row_key, set(row_totals), tiers)),
        column_groups=tuple(group_order(column_key, set(column_totals), tiers)),
        cells=cells,
        row_totals=row_totals,
        column_totals=column_totals,
        total=total,
    )
