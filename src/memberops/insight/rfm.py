"""RFM: recency, frequency and monetary per person over a period, scored and put in eight classes.

R is the business days from the last purchase in the period to the as-of date (0 = bought that
day), F the distinct purchase days in the period, M the net spend in the period in fen. Cut points
are nearest-rank quantiles of the period's purchasers (or the brand's thresholds); each is one
small ranked query, and the scoring and classes are one more, all on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base
from memberops.insight.periods import Period, day_number, period_heading
from memberops.insight.rules import (
    RFM_CLASS_NAMES,
    RFM_CLASS_OF,
    RfmClass,
    RfmCuts,
    RfmSettings,
    decimal_text,
    nearest_rank,
    ratio,
)
from memberops.insight.source import Source
from memberops.kit.money import fen_to_yuan


def rfm_values(source: Source, clock: base.Clock, period: Period) -> ir.Table:
    """Return ``person_id, recency_days, frequency, monetary_fen`` for everyone who bought in the period."""
    facts = base.orders(source, clock)
    facts = facts.filter(facts.day >= day_number(period.start), facts.day <= day_number(period.end))
    grouped = facts.group_by(facts.person_id).agg(
        last_day=facts.day.max(), frequency=facts.day.nunique(), monetary_fen=facts.net_fen.sum()
    )
    return grouped.select(
        person_id=grouped.person_id,
        recency_days=(ibis.literal(clock.day, type="int64") - grouped.last_day).cast("int64"),
        frequency=grouped.frequency.cast("int64"),
        monetary_fen=grouped.monetary_fen.cast("int64"),
    )


def quantile_cuts(
    values: ir.Table, column: str, quantiles: tuple[Fraction, ...], population: int
) -> tuple[int, ...]:
    """Return the nearest-rank quantiles of one column, in the order of ``quantiles``."""
    if population == 0:
        return tuple(0 for _ in quantiles)
    ranks = [nearest_rank(quantile, population) - 1 for quantile in quantiles]
    ranked = values.mutate(position=ibis.row_number().over(order_by=[values[column], values.person_id]))
    picked = ranked.filter(ranked.position.isin(sorted(set(ranks)))).select("position", column)
    found = {int(row["position"]): int(row[column]) for row in picked.to_pyarrow().to_pylist()}
    return tuple(found[rank] for rank in ranks)


def _score(value: ir.IntegerValue, cuts: tuple[int, ...], *, lower_is_better: bool) -> ir.IntegerValue:
    """The query form of ``rules.score``."""
    total: ir.IntegerValue = ibis.literal(1, type="int64")
    for cut in cuts:
        beats = value < cut if lower_is_better else value > cut
        total = total + ibis.ifelse(beats, 1, 0)
    return total.cast("int64")


def _class(values: ir.Table, cuts: RfmCuts) -> ir.StringValue:
    """The query form of ``rules.rfm_class``."""
    recent = values.recency_days < cuts.recency_days
    frequent = values.frequency > cuts.frequency
    spending = values.monetary_fen > cuts.monetary_fen
    branches = [
        (
            (recent if r else ~recent) & (frequent if f else ~frequent) & (spending if m else ~spending),
            code.value,
        )
        for (r, f, m), code in RFM_CLASS_OF.items()
    ]
    return ibis.cases(*branches)


@dataclass(frozen=True)
class RfmClassFigures:
    """One class: how many people, their spend and purchase days in the period."""

    rfm_class: RfmClass
    people: int
    share: Fraction | None
    monetary_fen: int
    purchase_days: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": self.rfm_class.value,
            "name": RFM_CLASS_NAMES[self.rfm_class],
            "people": self.people,
            "share": decimal_text(self.share),
            "monetary": fen_to_yuan(self.monetary_fen),
            "purchase_days": self.purchase_days,
        }


@dataclass(frozen=True)
class RfmReport:
    """The RFM analysis of a period as of a date."""

    as_of: date
    period: Period
    time_zone: str
    people: int
    recency_score_cuts: tuple[int, ...]
    frequency_score_cuts: tuple[int, ...]
    monetary_score_cuts: tuple[int, ...]
    class_cuts: RfmCuts
    classes: tuple[RfmClassFigures, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "time_zone": self.time_zone,
            "people": self.people,
            "score_cuts": {
                "recency_days": list(self.recency_score_cuts),
                "frequency": list(self.frequency_score_cuts),
                "monetary": [fen_to_yuan(cut) for cut in self.monetary_score_cuts],
            },
            "class_cuts": {
                "recency_days": self.class_cuts.recency_days,
                "frequency": self.class_cuts.frequency,
                "monetary": fen_to_yuan(self.class_cuts.monetary_fen),
            },
            "classes": [figures.as_dict() for figures in self.classes],
        }


@dataclass(frozen=True)
class RfmAnalysis:
    """The scored per-person expression and the cuts it was scored with."""

    scored: ir.Table
    people: int
    recency_score_cuts: tuple[int, ...]
    frequency_score_cuts: tuple[int, ...]
    monetary_score_cuts: tuple[int, ...]
    class_cuts: RfmCuts


def analyse(source: Source, clock: base.Clock, period: Period, settings: RfmSettings) -> RfmAnalysis:
    """Build the scored RFM expression: the per-person values, 1–n scores and the class."""
    values = source.keep(rfm_values(source, clock, period))
    people = int(values.count().to_pyarrow().as_py())

    def cuts(column: str, given: tuple[int, ...] | None, quantiles: tuple[Fraction, ...]) -> tuple[int, ...]:
        return given if given is not None else quantile_cuts(values, column, quantiles, people)

    recency = cuts("recency_days", settings.recency_score_cuts, settings.score_quantiles)
    frequency = cuts("frequency", settings.frequency_score_cuts, settings.score_quantiles)
    monetary = cuts("monetary_fen", settings.monetary_score_cuts, settings.score_quantiles)
    class_cuts = settings.class_cuts or RfmCuts(
        *(quantile_cuts(values, column, (settings.class_quantile,), people)[0] for column in _COLUMNS)
    )
    scored = values.mutate(
        r_score=_score(values.recency_days, recency, lower_is_better=True),
        f_score=_score(values.frequency, frequency, lower_is_better=False),
        m_score=_score(values.monetary_fen, monetary, lower_is_better=False),
        rfm_class=_class(values, class_cuts),
    )
    return RfmAnalysis(scored, people, recency, frequency, monetary, class_cuts)


_COLUMNS = ("recency_days", "frequency", "monetary_fen")


def report(source: Source, clock: base.Clock, period: Period, settings: RfmSettings) -> RfmReport:
    """Run the RFM analysis and return the per-class figures (every class, also empty ones)."""
    analysis = analyse(source, clock, period, settings)
    scored = analysis.scored
    grouped = scored.group_by(scored.rfm_class).agg(
        people=scored.count(), monetary_fen=scored.monetary_fen.sum(), purchase_days=scored.frequency.sum()
    )
    found = {row["rfm_class"]: row for row in grouped.to_pyarrow().to_pylist()}
    classes = tuple(
        RfmClassFigures(
            rfm_class=code,
            people=int(found[code.value]["people"]) if code.value in found else 0,
            share=ratio(int(found[code.value]["people"]) if code.value in found else 0, analysis.people),
            monetary_fen=int(found[code.value]["monetary_fen"]) if code.value in found else 0,
            purchase_days=int(found[code.value]["purchase_days"]) if code.value in found else 0,
        )
        for code in RfmClass
    )
    return RfmReport(
        as_of=clock.as_of,
        period=period,
        time_zone=clock.time_zone,
        people=analysis.people,
        recency_score_cuts=analysis.recency_score_cuts,
        frequency_score_cuts=analysis.frequency_score_cuts,
        monetary_score_cuts=analysis.monetary_score_cuts,
        class_cuts=analysis.class_cuts,
        classes=classes,
    )
