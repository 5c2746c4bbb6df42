"""Lifecycle stages against the brand's repurchase cycle, and the flows between two dates.

The population on a date is every live person who purchased by then and every member who has not
(``registered``). The stage of a purchaser follows from the business days since their first and
last purchase (``rules.stage``); the flows compare the stage at the end of the previous period
with the stage on the as-of date, person by person, in one outer join on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base
from memberops.insight.periods import Period, period_heading
from memberops.insight.rules import STAGE_ORDER, LifecycleSettings, Stage
from memberops.insight.source import Source

#: The ``from``/``to`` of a flow for a person outside the population on that date.
OUTSIDE = "none"


def _stage(
    days_since_first: ir.IntegerValue, days_since_last: ir.IntegerValue, settings: LifecycleSettings
) -> ir.StringValue:
    """The query form of ``rules.stage``."""
    return ibis.cases(
        (days_since_last.isnull(), Stage.REGISTERED.value),
        (days_since_first < settings.new_days, Stage.NEW.value),
        (days_since_last < settings.active_days, Stage.ACTIVE.value),
        (days_since_last < settings.silent_days, Stage.SILENT.value),
        (days_since_last < settings.sleeping_days, Stage.SLEEPING.value),
        else_=Stage.CHURNED.value,
    )


def stages(source: Source, clock: base.Clock, settings: LifecycleSettings) -> ir.Table:
    """Return ``person_id, days_since_first, days_since_last, stage`` on the clock's as-of date."""
    key = ("stages", clock.time_zone, clock.end_epoch, settings)
    return source.once(key, lambda: _stages(source, clock, settings))


def _stages(source: Source, clock: base.Clock, settings: LifecycleSettings) -> ir.Table:
    facts = base.orders(source, clock)
    bought = facts.group_by(facts.person_id).agg(first_day=facts.day.min(), last_day=facts.day.max())
    members = base.members_at(source, clock.end_epoch)
    today = ibis.literal(clock.day, type="int64")
    everyone = members.select("person_id").union(bought.select("person_id"), distinct=True)
    joined = everyone.left_join(bought, "person_id")
    people = joined.select(
        person_id=joined.person_id,
        days_since_first=(today - joined.first_day).cast("int64"),
        days_since_last=(today - joined.last_day).cast("int64"),
    )
    return people.mutate(stage=_stage(people.days_since_first, people.days_since_last, settings))


@dataclass(frozen=True)
class LifecycleReport:
    """People per stage on the as-of date and the flows from the end of the previous period."""

    as_of: date
    period: Period
    previous_as_of: date
    time_zone: str
    settings: LifecycleSettings
    counts: dict[Stage, int]
    previous_counts: dict[Stage, int]
    flows: dict[tuple[str, str], int]

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "previous_as_of": self.previous_as_of.isoformat(),
            "time_zone": self.time_zone,
            "cycle_days": self.settings.cycle_days,
            "bounds_days": {
                "new": self.settings.new_days,
                "active": self.settings.active_days,
                "silent": self.settings.silent_days,
                "sleeping": self.settings.sleeping_days,
            },
            "stages": {stage.value: self.counts[stage] for stage in STAGE_ORDER},
            "previous_stages": {stage.value: self.previous_counts[stage] for stage in STAGE_ORDER},
            "flows": [
                {"from": source, "to": target, "people": people}
                for (source, target), people in sorted(self.flows.items(), key=_flow_order)
            ],
        }


_POSITION = {name: index for index, name in enumerate([OUTSIDE, *(stage.value for stage in STAGE_ORDER)])}


def _flow_order(item: tuple[tuple[str, str], int]) -> tuple[int, int]:
    (source, target), _ = item
    return _POSITION[source], _POSITION[target]


def report(source: Source, clock: base.Clock, period: Period, settings: LifecycleSettings) -> LifecycleReport:
    """Count the stages on the as-of date and at the end of the day before the period began."""
    previous_clock = clock.on(period.start - timedelta(days=1))
    now = source.keep(stages(source, clock, settings))
    before = source.keep(stages(source, previous_clock, settings))
    everyone = before.select("person_id").union(now.select("person_id"), distinct=True)
    joined = everyone.left_join(before.select("person_id", source_stage="stage"), "person_id").left_join(
        now.select("person_id", target_stage="stage"), "person_id"
    )
    paired = joined.select(
        source_stage=joined.source_stage.fill_null(OUTSIDE),
        target_stage=joined.target_stage.fill_null(OUTSIDE),
    )
    grouped = paired.group_by(["source_stage", "target_stage"]).agg(people=paired.count())
    flows = {
        (row["source_stage"], row["target_stage"]): int(row["people"])
        for row in grouped.to_pyarrow().to_pylist()
    }
    counts = dict.fromkeys(STAGE_ORDER, 0)
    previous = dict.fromkeys(STAGE_ORDER, 0)
    for (source_stage, target_stage), people in flows.items():
        if target_stage != OUTSIDE:
            counts[Stage(target_stage)] += people
        if source_stage != OUTSIDE:
            previous[Stage(source_stage)] += people
    return LifecycleReport(
        as_of=clock.as_of,
        period=period,
        previous_as_of=previous_clock.as_of,
        time_zone=clock.time_zone,
        settings=settings,
        counts=counts,
        previous_counts=previous,
        flows=flows,
    )
