"""The "magic number": retention by the number of purchases made, and the count after which people stay.

Purchases are purchase days (``base.orders``; several orders on one business day are one
purchase), numbered per person over everything known on the as-of date (nothing after it is
read). For each n, the people whose n-th purchase day lies in the period are counted
(``reached``); those whose stay window (``MagicSettings.window_days``) has fully passed by the
**as-of date** are ``judged`` (the n-th day + the window ≤ the as-of date, which may lie well
after the period's end), and of them those who purchased again on a later day within the window
``stayed``. The stay rate is stayed ÷ judged, and the magic number is the smallest n whose stay
rate reaches the threshold with enough judged people (``kpi_rules.magic_number``).

The last row, N+ (N = ``max_purchases``), counts people, each once: those whose N-th purchase day
lies in the period, judged and stayed by the window after that N-th day. It is row N with its
own label (everyone in it has made N purchases or more); purchases after the N-th make no row and
count nobody twice. As in every row n, its people all made an (n-1)-th purchase too; row n-1
misses only those whose (n-1)-th purchase came before the period's start.

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
    """People at their n-th purchase in the period, judged and stayed (``last``: the N+ row)."""

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
    days = base.purchase_days_at(source, clock).select("person_id", "day")
    order = ibis.window(group_by=days.person_id, order_by=days.day)
    numbered = days.mutate(
        purchases=(ibis.row_number().over(order) + 1).cast("int64"),
        next_day=days.day.lead().over(order),
    )
    # Each person at most once per row: purchases past the last row's count are left out.
    numbered = numbered.filter(
        numbered.day >= day_number(period.start),
        numbered.day <= day_number(period.end),
        numbered.purchases <= settings.max_purchases,
    )
    window = settings.window_days
    judged = numbered.day + window <= clock.day
    stayed = judged & numbered.next_day.notnull() & (numbered.next_day - numbered.day <= window)
    flagged = numbered.select(
        purchases=numbered.purchases,
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
