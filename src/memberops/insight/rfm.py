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
    key = ("rfm_values", clock.time_zone, clock.end_epoch, period.start, period.end)
    return source.once(key, lambda: _rfm_values(source, clock, period))


def _rfm_values(source: Source, clock: base.Clock, period: Period) -> ir.Table:
    # From the purchase days (one row per person and day): F is a count, not a distinct count,
    # and a nightly run shares those days with the lifecycle, cohorts and the magic number.
    days = base.purchase_days_at(source, clock)
    days = days.filter(days.day >= day_number(period.start), days.day <= day_number(period.end))
    grouped = days.group_by(days.person_id).agg(
        last_day=days.day.max(), frequency=days.count(), monetary_fen=days.amount_fen.sum()
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
    """Return the nearest-rank quantiles of one column, in the order of ``quantiles``.

    The value at rank r of the sorted column is the smallest value whose running count of people
    (values ascending) reaches r. Counting per distinct value first means the engine sorts the
    distinct values (a few hundred days or purchase counts, at most as many amounts as people)
    instead of ranking every person, and all the cuts of a column come from one query.
    """
    if population == 0:
        return tuple(0 for _ in quantiles)
    ranks = [nearest_rank(quantile, population) for quantile in quantiles]
    counted = values.group_by(value=values[column]).agg(people=values.count())
    running = counted.mutate(
        reached=counted.people.sum().over(ibis.window(order_by=counted.value, rows=(None, 0)))
    )
    picks = running.agg(
        **{
            f"rank_{rank}": ibis.ifelse(running.reached >= rank, running.value, None).min()
            for rank in set(ranks)
        }
    )
    found = picks.to_pyarrow().to_pylist()[0]
    return tuple(int(found[f"rank_{rank}"]) for rank in ranks)


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
    """Build the scored RFM expression: the per-person values, 1–n scores and the class.

    A sharing source builds it once per date, period and settings (the report and the ``rfm``
    of tag and segment expressions read the same one).
    """
    key = ("rfm", clock.time_zone, clock.end_epoch, period.start, period.end, settings)
    return source.remember(key, lambda: _analyse(source, clock, period, settings))


def _analyse(source: Source, clock: base.Clock, period: Period, settings: RfmSettings) -> RfmAnalysis:
    values = source.keep(rfm_values(source, clock, period))
    people = int(values.count().to_pyarrow().as_py())
    given = dict(
        zip(
            _COLUMNS,
            (settings.recency_score_cuts, settings.frequency_score_cuts, settings.monetary_score_cuts),
            strict=True,
        )
    )
    found: dict[str, dict[Fraction, int]] = {}
    for column in _COLUMNS:
        # The score cuts and the class cut of a column in one query (those the brand did not fix).
        wanted = (() if given[column] is not None else settings.score_quantiles) + (
            () if settings.class_cuts is not None else (settings.class_quantile,)
        )
        if wanted:
            found[column] = dict(zip(wanted, quantile_cuts(values, column, wanted, people), strict=True))

    def score_cuts(column: str) -> tuple[int, ...]:
        fixed = given[column]
        return fixed if fixed is not None else tuple(found[column][q] for q in settings.score_quantiles)

    recency, frequency, monetary = (score_cuts(column) for column in _COLUMNS)
    class_cuts = settings.class_cuts or RfmCuts(
        *(found[column][settings.class_quantile] for column in _COLUMNS)
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
