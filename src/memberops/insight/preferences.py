"""Product-category preference per person, from what they bought in the period.

Spend per category comes from the order lines of the person's purchases in the period
(``base.orders``: live persons, paid by the period's end, net of the refunds made by then; an
order refunded in full is none). Refunds are recorded per order, so an order's net payment is
spread over its lines in proportion to their amounts, rounded down to the fen
(``kpi_rules.line_net_fen``). A person's **top category** is the one they spent most on (ties go
to the category name that sorts first) and its **share** is its spend ÷ their spend; they
**prefer** it when the share reaches ``PreferenceSettings.min_share``, else they are ``mixed``.

The per-person table (CSV) streams from the engine; the summary is grouped on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base
from memberops.insight.kpi_rules import MIXED, SHARE_BUCKETS, PreferenceSettings, bucket_labels
from memberops.insight.periods import Period, day_number, period_heading
from memberops.insight.rules import decimal_text, ratio
from memberops.insight.source import Source
from memberops.kit.money import fen_to_yuan


def category_spend(
    source: Source, clock: base.Clock, period: Period, settings: PreferenceSettings | None = None
) -> ir.Table:
    """Return ``person_id, category, spend_fen`` (net, > 0) for the period's buyers.

    Categories the brand says are not products (``settings.excluded_categories``) are left out.
    """
    end_clock = clock.on(period.end)
    facts = base.orders(source, end_clock)
    facts = facts.filter(facts.day >= day_number(period.start), facts.day <= day_number(period.end))
    lines = source.table("order_lines")
    totals = lines.group_by(total_oid=lines.order_id).agg(lines_fen=lines.amount_fen.sum())
    excluded = settings.excluded_categories if settings is not None else ()
    if excluded:
        # The order's net is still spread over all its lines; the excluded ones' shares just
        # drop out (a plan bought with fruit leaves the fruit its own share, not the plan's).
        lines = lines.filter(~lines.category.isin(excluded))
    joined = facts.inner_join(lines, facts.order_id == lines.order_id).inner_join(
        totals, facts.order_id == totals.total_oid
    )
    spread = joined.select(
        person_id=joined.person_id,
        category=joined.category,
        net_fen=(joined.amount_fen * joined.net_fen // joined.lines_fen).cast("int64"),
    )
    spend = spread.group_by(["person_id", "category"]).agg(spend_fen=spread.net_fen.sum().cast("int64"))
    return spend.filter(spend.spend_fen > 0)


def _reaches(top: ir.IntegerValue, total: ir.IntegerValue, share: Fraction) -> ir.BooleanValue:
    """top ÷ total ≥ share, in whole numbers."""
    return top * share.denominator >= total * share.numerator


def people(
    source: Source,
    clock: base.Clock,
    period: Period,
    settings: PreferenceSettings,
    spend: ir.Table | None = None,
) -> ir.Table:
    """Return per buyer: ``person_id, preferred, top_category, top_fen, spend_fen, categories, bucket``.

    Two grouped queries rather than a ranking window: the totals and the highest spend per
    person, then, among the categories at that spend, the name sorting first (the tie rule).
    ``spend`` is ``category_spend`` of the same period, when the caller has it already.
    """
    spend = spend if spend is not None else source.keep(category_spend(source, clock, period, settings))
    # Kept, so the join below is between two tables: SQLite then indexes it on the fly instead of
    # scanning the totals once per row of the spend.
    totals = source.keep(
        spend.group_by(total_pid=spend.person_id).agg(
            spend_total=spend.spend_fen.sum(),
            categories=spend.category.count(),
            top_fen=spend.spend_fen.max(),
        )
    )
    at_top = spend.inner_join(
        totals, [spend.person_id == totals.total_pid, spend.spend_fen == totals.top_fen]
    )
    top = at_top.group_by(at_top.person_id).agg(
        category=at_top.category.min(),
        spend_fen=at_top.top_fen.max(),
        spend_total=at_top.spend_total.max(),
        categories=at_top.categories.max(),
    )
    bucket: ir.IntegerValue = ibis.literal(0, type="int64")
    for bound in SHARE_BUCKETS:
        bucket = bucket + ibis.ifelse(_reaches(top.spend_fen, top.spend_total, bound), 1, 0)
    return top.select(
        person_id=top.person_id,
        preferred=ibis.ifelse(
            _reaches(top.spend_fen, top.spend_total, settings.min_share), top.category, MIXED
        ),
        top_category=top.category,
        top_fen=top.spend_fen,
        spend_fen=top.spend_total.cast("int64"),
        categories=top.categories.cast("int64"),
        bucket=bucket.cast("int64"),
    )


def kept_people(source: Source, clock: base.Clock, period: Period, settings: PreferenceSettings) -> ir.Table:
    """``people`` kept as a table, once per run on a sharing source.

    The report and the ``preferred`` leaf of tag and segment expressions read the same table, so
    a nightly run groups the year's order lines by person and category once, not once for each.
    """
    key = ("preferences", clock.time_zone, clock.end_epoch, period.start, period.end, settings)
    return source.keep(
        source.once(
            key, lambda: people(source, clock, period, settings, _kept_spend(source, clock, period, settings))
        )
    )


def _kept_spend(source: Source, clock: base.Clock, period: Period, settings: PreferenceSettings) -> ir.Table:
    """``category_spend`` kept as a table, once per run on a sharing source."""
    excluded = settings.excluded_categories
    key = ("category_spend", clock.time_zone, clock.end_epoch, period.start, period.end, excluded)
    return source.keep(source.once(key, lambda: category_spend(source, clock, period, settings)))


@dataclass(frozen=True)
class CategoryFigures:
    """One category: its spend, the people whose top category it is, the people who prefer it."""

    category: str
    spend_fen: int
    top_people: int
    preferring: int


@dataclass(frozen=True)
class PreferenceReport:
    as_of: date
    period: Period
    time_zone: str
    settings: PreferenceSettings
    buyers: int
    spend_fen: int
    mixed: int
    categories: tuple[CategoryFigures, ...]
    buckets: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "time_zone": self.time_zone,
            "min_share": decimal_text(self.settings.min_share),
            "excluded_categories": list(self.settings.excluded_categories),
            "buyers": self.buyers,
            "spend": fen_to_yuan(self.spend_fen),
            "mixed": self.mixed,
            "categories": [
                {
                    "category": item.category,
                    "spend": fen_to_yuan(item.spend_fen),
                    "spend_share": decimal_text(ratio(item.spend_fen, self.spend_fen)),
                    "top_people": item.top_people,
                    "preferring": item.preferring,
                    "preferring_share": decimal_text(ratio(item.preferring, self.buyers)),
                }
                for item in self.categories
            ],
            "top_share_buckets": dict(zip(bucket_labels(), self.buckets, strict=True)),
        }


def report(
    source: Source, clock: base.Clock, period: Period, settings: PreferenceSettings
) -> PreferenceReport:
    """Summarise the preferences: per category spend, top and preferring people; share buckets."""
    spend = _kept_spend(source, clock, period, settings)
    per_person = kept_people(source, clock, period, settings)
    by_category = {
        str(row["category"]): int(row["spend_fen"])
        for row in spend.group_by("category").agg(spend_fen=spend.spend_fen.sum()).to_pyarrow().to_pylist()
    }
    tops = {
        str(row["top_category"]): int(row["people"])
        for row in per_person.group_by("top_category").agg(people=per_person.count()).to_pyarrow().to_pylist()
    }
    preferred = {
        str(row["preferred"]): int(row["people"])
        for row in per_person.group_by("preferred").agg(people=per_person.count()).to_pyarrow().to_pylist()
    }
    buckets = {
        int(row["bucket"]): int(row["people"])
        for row in per_person.group_by("bucket").agg(people=per_person.count()).to_pyarrow().to_pylist()
    }
    categories = tuple(
        CategoryFigures(name, by_category[name], tops.get(name, 0), preferred.get(name, 0))
        for name in sorted(by_category, key=lambda name: (-by_category[name], name))
    )
    return PreferenceReport(
        as_of=clock.as_of,
        period=period,
        time_zone=clock.time_zone,
        settings=settings,
        buyers=sum(tops.values()),
        spend_fen=sum(by_category.values()),
        mixed=preferred.get(MIXED, 0),
        categories=categories,
        buckets=tuple(buckets.get(index, 0) for index in range(len(SHARE_BUCKETS) + 1)),
    )
