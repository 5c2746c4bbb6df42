"""The "magic number": retention by the number of purchases made, and the count after which people stay.

Purchases are purchase days (``base.orders``; several orders on one business day are one
purchase), numbered per person over everything known at the end of the period. For each n, the
people whose n-th purchase day lies in the period are counted (``reached``); those whose stay
window (``MagicSettings.window_days``) has fully passed by the period's end are ``judged``, and
of them those who purchased again within the window ``stayed``. The stay rate is stayed ÷
judged, and the magic number is the smallest n whose stay rate reaches the threshold with
enough judged people (``kpi_rules.magic_number``). Counts at or above ``max_purchases`` share
the last row.

One ranked query (``row_number`` and ``lead`` per person) and one grouped query on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import ibis

from memberops.insight import base
from memberops.insight.kpi_rules import MagicSettings, magic_number
from memberops.insight.periods import Period, day_number, period_heading
from memberops.insight.rules import decimal_text, ratio
from memberops.insight.source import Source


@dataclass(frozen=True)
class PurchaseCount:
    """People at their n-th purchase in the period, judged and stayed."""

    purchases: int
    reached: int
    judged: int
    stayed: int
    last: bool

    @property
    def stay_rate(self) -> Fraction | None:
        return ratio(self.stayed, self.judged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "purchases": self.purchases,
            "label": f"{self.purchases}+" if self.last else str(self.purchases),
            "reached": self.reached,
            "judged": self.judged,
            "stayed": self.stayed,
            "stay_rate": decimal_text(self.stay_rate),
        }


@dataclass(frozen=True)
class MagicReport:
    as_of: date
    period: Period
    time_zone: str
    settings: MagicSettings
    counts: tuple[PurchaseCount, ...]
    magic_number: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "time_zone": self.time_zone,
            "window_days": self.settings.window_days,
            "threshold": decimal_text(self.settings.threshold),
            "min_people": self.settings.min_people,
            "counts": [count.as_dict() for count in self.counts],
            "magic_number": self.magic_number,
        }


def report(source: Source, clock: base.Clock, period: Period, settings: MagicSettings) -> MagicReport:
    """Compute the stay rate per purchase count and the magic number for ``period``."""
    end_clock = clock.on(period.end)
    days = base.purchase_days_at(source, end_clock).select("person_id", "day")
    order = ibis.window(group_by=days.person_id, order_by=days.day)
    numbered = days.mutate(
        purchases=(ibis.row_number().over(order) + 1).cast("int64"),
        next_day=days.day.lead().over(order),
    )
    numbered = numbered.filter(
        numbered.day >= day_number(period.start), numbered.day <= day_number(period.end)
    )
    window = settings.window_days
    judged = numbered.day + window <= end_clock.day
    stayed = judged & numbered.next_day.notnull() & (numbered.next_day - numbered.day <= window)
    flagged = numbered.select(
        purchases=ibis.least(numbered.purchases, settings.max_purchases).cast("int64"),
        judged=ibis.ifelse(judged, 1, 0),
        stayed=ibis.ifelse(stayed, 1, 0),
    )
    grouped = flagged.group_by("purchases").agg(
        reached=flagged.count(), judged=flagged.judged.sum(), stayed=flagged.stayed.sum()
    )
    found = {int(row["purchases"]): row for row in grouped.to_pyarrow().to_pylist()}
    counts = tuple(
        PurchaseCount(
            purchases=count,
            reached=int(found[count]["reached"]),
            judged=int(found[count]["judged"] or 0),
            stayed=int(found[count]["stayed"] or 0),
            last=count == settings.max_purchases,
        )
        for count in sorted(found)
    )
    rates = {count.purchases: (count.judged, count.stayed) for count in counts}
    return MagicReport(
        as_of=clock.as_of,
        period=period,
        time_zone=clock.time_zone,
        settings=settings,
        counts=counts,
        magic_number=magic_number(rates, settings),
    )
