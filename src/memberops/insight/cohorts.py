"""Cohort retention by first-purchase month.

A person's cohort is the calendar month (brand time) of their first purchase ever, known at the
end of the period; the cohorts reported are the people whose first purchase day lies in the
period. Month ``k`` of a cohort is the k-th calendar month after its own, and its retention is
the share of the cohort who purchased in that month (month 0 is 1 by definition). The months run
to the period's end, so the last one may be a month to date. Purchases are those of
``base.orders`` (live persons, net of refunds, an order refunded in full is none).

The month of a business day is one CASE over the first day numbers of the months involved
(``kpi_rules.month_starts``), so no engine does date arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base
from memberops.insight.kpi_rules import label_of_month, month_index, month_starts
from memberops.insight.periods import Period, day_number, period_heading
from memberops.insight.rules import decimal_text, ratio
from memberops.insight.source import Source


def month_of(day: ir.IntegerValue, starts: tuple[tuple[int, int], ...]) -> ir.IntegerValue:
    """The query form of ``kpi_rules.month_of_day`` (days before the first month get the first)."""
    branches = [(day >= first_day, index) for index, first_day in reversed(starts[1:])]
    if not branches:
        return ibis.literal(starts[0][0], type="int64")
    return ibis.cases(*branches, else_=starts[0][0]).cast("int64")


@dataclass(frozen=True)
class Cohort:
    """One first-purchase month: its people and how many bought in each month since."""

    month: int
    people: int
    buyers: tuple[int, ...]

    def retention(self, offset: int) -> Fraction | None:
        return ratio(self.buyers[offset], self.people)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cohort": label_of_month(self.month),
            "people": self.people,
            "months": [
                {
                    "month": offset,
                    "label": label_of_month(self.month + offset),
                    "people": buyers,
                    "share": decimal_text(self.retention(offset)),
                }
                for offset, buyers in enumerate(self.buyers)
            ],
        }


@dataclass(frozen=True)
class CohortReport:
    as_of: date
    period: Period
    time_zone: str
    cohorts: tuple[Cohort, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "time_zone": self.time_zone,
            "cohorts": [cohort.as_dict() for cohort in self.cohorts],
        }


def report(source: Source, clock: base.Clock, period: Period) -> CohortReport:
    """Compute the retention of every first-purchase month that starts in ``period``."""
    end_clock = clock.on(period.end)
    starts = month_starts(period.start, period.end)
    days = base.purchase_days_at(source, end_clock).select("person_id", "day")
    first = days.group_by(first_pid=days.person_id).agg(first_day=days.day.min())
    first = first.filter(
        first.first_day >= day_number(period.start), first.first_day <= day_number(period.end)
    )
    first = source.keep(first.mutate(cohort=month_of(first.first_day, starts)))
    active = days.inner_join(first, days.person_id == first.first_pid)
    active = active.select(
        person_id=active.person_id, cohort=active.cohort, month=month_of(active.day, starts)
    )
    active = active.distinct()
    grouped = active.group_by(["cohort", "month"]).agg(buyers=active.count())
    sizes = first.group_by("cohort").agg(people=first.count())
    size_of = {int(row["cohort"]): int(row["people"]) for row in sizes.to_pyarrow().to_pylist()}
    buyers_of = {
        (int(row["cohort"]), int(row["month"])): int(row["buyers"])
        for row in grouped.to_pyarrow().to_pylist()
    }
    last = month_index(period.end)
    cohorts = tuple(
        Cohort(
            month=month,
            people=size_of[month],
            buyers=tuple(buyers_of.get((month, month + offset), 0) for offset in range(last - month + 1)),
        )
        for month in sorted(size_of)
    )
    return CohortReport(as_of=clock.as_of, period=period, time_zone=clock.time_zone, cohorts=cohorts)
