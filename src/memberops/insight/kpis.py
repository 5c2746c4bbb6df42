"""Member KPIs of a period, overall and by store, store type, channel and tier (DOMAIN.md §5).

Every figure is taken at the end of the period (the as-of date unless the period ends earlier):
purchases are net of the refunds made by then, members and tiers are those held then. People
figures break down by the member's **home** (the store and field of the membership spell they
hold) and tier; sales figures by **where the order was placed** (its store and source channel)
and by the buyer's tier at the period's end (``non_member`` for everyone else, guests included).

- **members**: members at the period's end; **new members**: those whose spell began in it.
- **active members**: members with a purchase in the period; **engaged members**: members with a
  purchase or any event (visit, share, review, follow, group activity…) in it. ``activity_rate``
  and ``engagement_rate`` divide them by the members.
- **repurchase rate**: purchasers with purchases on 2+ distinct days ÷ purchasers (identified
  persons, members or not; by store: days bought at that store).
- **churn rate**: members at the previous period's end who purchased in it and do not purchase in
  this one ÷ those previously active members (grouped by their home and tier at that time).
- **tier transition rate**: members at the period's start whose tier at its end ranks above
  (``tier_up_rate``) or below (``tier_down_rate``) their tier at its start ÷ members at its start
  (ranks of the programme in force at the period's end; a retired tier ranks lowest).
- **member share of sales**: net sales of member orders (the buyer held a membership when
  paying) ÷ all net sales, guest orders included; **member / non-member average order value**:
  net sales ÷ orders of each kind.

Each breakdown is a handful of grouped queries on the engine; only the per-group counts return.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base, dimensions
from memberops.insight.kpi_rules import ALL, KPI_DIMENSIONS, NO_VALUE, NON_MEMBER, average_fen, yuan_text
from memberops.insight.periods import Period, day_end_epoch, day_number, period_heading
from memberops.insight.rules import LAYER_ORDER, STAGE_ORDER, RfmClass, decimal_text, ratio
from memberops.insight.source import Source, live_persons
from memberops.kit.money import fen_to_yuan

#: The column that puts everyone in one group (the overall figures).
EVERYONE = "everyone"


@dataclass
class KpiFigures:
    """The counts of one group; the rates follow from them (``as_dict``)."""

    members: int = 0
    new_members: int = 0
    active_members: int = 0
    engaged_members: int = 0
    members_at_start: int = 0
    previous_active_members: int = 0
    churned_members: int = 0
    moved_up: int = 0
    moved_down: int = 0
    purchasers: int = 0
    repeat_purchasers: int = 0
    orders: int = 0
    sales_fen: int = 0
    member_orders: int = 0
    member_sales_fen: int = 0

    def as_dict(self) -> dict[str, Any]:
        non_member_orders = self.orders - self.member_orders
        non_member_sales = self.sales_fen - self.member_sales_fen
        return {
            "members": self.members,
            "new_members": self.new_members,
            "active_members": self.active_members,
            "activity_rate": decimal_text(ratio(self.active_members, self.members)),
            "engaged_members": self.engaged_members,
            "engagement_rate": decimal_text(ratio(self.engaged_members, self.members)),
            "purchasers": self.purchasers,
            "repeat_purchasers": self.repeat_purchasers,
            "repurchase_rate": decimal_text(ratio(self.repeat_purchasers, self.purchasers)),
            "previous_active_members": self.previous_active_members,
            "churned_members": self.churned_members,
            "churn_rate": decimal_text(ratio(self.churned_members, self.previous_active_members)),
            "members_at_start": self.members_at_start,
            "moved_up": self.moved_up,
            "moved_down": self.moved_down,
            "tier_up_rate": decimal_text(ratio(self.moved_up, self.members_at_start)),
            "tier_down_rate": decimal_text(ratio(self.moved_down, self.members_at_start)),
            "orders": self.orders,
            "sales": fen_to_yuan(self.sales_fen),
            "member_orders": self.member_orders,
            "member_sales": fen_to_yuan(self.member_sales_fen),
            "member_sales_share": decimal_text(ratio(self.member_sales_fen, self.sales_fen)),
            "non_member_orders": non_member_orders,
            "non_member_sales": fen_to_yuan(non_member_sales),
            "member_aov": yuan_text(average_fen(self.member_sales_fen, self.member_orders)),
            "non_member_aov": yuan_text(average_fen(non_member_sales, non_member_orders)),
        }


@dataclass(frozen=True)
class KpiReport:
    """The KPIs of a period, overall and per group of every dimension."""

    as_of: date
    period: Period
    previous: Period
    time_zone: str
    tiers: tuple[str, ...]
    overall: KpiFigures
    breakdowns: dict[str, dict[str, KpiFigures]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **period_heading(self.as_of, self.period),
            "previous_period": self.previous.label,
            "time_zone": self.time_zone,
            "tiers": list(self.tiers),
            "overall": self.overall.as_dict(),
            "by": {
                dimension: [{"group": group, **figures.as_dict()} for group, figures in groups.items()]
                for dimension, groups in self.breakdowns.items()
            },
        }


#: Groups of a person dimension in the order they deepen or decline, not alphabetically.
_NATURAL_ORDER: dict[str, tuple[str, ...]] = {
    "stage": tuple(stage.value for stage in STAGE_ORDER),
    "layer": tuple(layer.code for layer in LAYER_ORDER),
    "rfm": tuple(item.value for item in RfmClass),
}


def group_order(dimension: str, groups: set[str], tiers: tuple[str, ...]) -> list[str]:
    """Order groups for display: tiers lowest first then non-members, stages, layers and RFM
    classes in their own order, others alphabetically; ``none`` (no value) last."""
    if dimension == "tier":
        known = [tier for tier in tiers if tier in groups]
        rest = sorted(groups - set(known) - {NON_MEMBER})
        return known + rest + ([NON_MEMBER] if NON_MEMBER in groups else [])
    natural = _NATURAL_ORDER.get(dimension, ())
    known = [group for group in natural if group in groups]
    rest = sorted(groups - set(known) - {NO_VALUE})
    return known + rest + ([NO_VALUE] if NO_VALUE in groups else [])


def _grouped(table: ir.Table, key: str, **measures: ir.Value) -> dict[str, dict[str, int]]:
    """Run one grouped query; return group → measure → whole number (nulls as 0)."""
    grouped = table.group_by(table[key].name(key)).agg(**measures)
    return {
        str(row[key]): {name: int(row[name] or 0) for name in measures}
        for row in grouped.to_pyarrow().to_pylist()
    }


def _flag(condition: ir.BooleanValue) -> ir.IntegerValue:
    return ibis.ifelse(condition, 1, 0).cast("int64")


def _events_in(source: Source, start_epoch: int, end_epoch: int) -> ir.Table:
    """The live persons with any event in [start, end): ``event_pid``."""
    events = source.table("events")
    events = events.filter(events.person_id.notnull()).mutate(epoch=source.epoch_seconds(events.occurred_at))
    events = events.filter(events.epoch >= start_epoch, events.epoch < end_epoch)
    persons = live_persons(source)
    joined = events.inner_join(persons, events.person_id == persons.id)
    return joined.select(event_pid=joined.person_id_right).distinct()


def report(source: Source, clock: base.Clock, period: Period, tiers: tuple[str, ...]) -> KpiReport:
    """Compute the KPIs of ``period`` (see the module docstring); ``tiers`` lowest first."""
    end_clock = clock.on(period.end)
    previous = period.previous()
    start_epoch = day_end_epoch(period.start - timedelta(days=1), clock.time_zone)
    first, last = day_number(period.start), day_number(period.end)

    sold = source.keep(dimensions.sales(source, end_clock, since=previous.start))
    members_now = source.keep(dimensions.members_with_tier(source, end_clock.end_epoch, tiers))
    starting = dimensions.with_tier(dimensions.homes(source, start_epoch), source, start_epoch, tiers, "tier")
    starting = source.keep(dimensions.with_tier(starting, source, end_clock.end_epoch, tiers, "tier_end"))

    identified = sold.filter(sold.person_id.notnull())
    in_period = identified.filter(identified.day >= first, identified.day <= last)
    buyers = source.keep(
        in_period.group_by(buyer_pid=in_period.person_id).agg(purchase_days=in_period.day.nunique())
    )
    before = identified.filter(
        identified.day >= day_number(previous.start), identified.day <= day_number(previous.end)
    )
    previous_buyers = before.select(previous_pid=before.person_id).distinct()
    engaged = _events_in(source, start_epoch, end_clock.end_epoch)

    now = members_now.left_join(buyers, members_now.person_id == buyers.buyer_pid).left_join(
        engaged, members_now.person_id == engaged.event_pid
    )
    # ``now``, ``then`` and ``placed`` are each read by four grouped queries per dimension: kept,
    # their joins run once.
    now = source.keep(
        now.select(
            *(now[column] for column in members_now.columns),
            new=_flag(now.joined >= start_epoch),
            active=_flag(now.buyer_pid.notnull()),
            engaged=_flag(now.buyer_pid.notnull() | now.event_pid.notnull()),
        ).mutate(**{EVERYONE: ibis.literal(ALL)})
    )

    then = starting.left_join(previous_buyers, starting.person_id == previous_buyers.previous_pid).left_join(
        buyers, starting.person_id == buyers.buyer_pid
    )
    rank_start = dimensions.tier_rank(then.tier, tiers)
    rank_end = dimensions.tier_rank(then.tier_end, tiers)
    then = source.keep(
        then.select(
            *(then[column] for column in starting.columns),
            previously_active=_flag(then.previous_pid.notnull()),
            churned=_flag(then.previous_pid.notnull() & then.buyer_pid.isnull()),
            up=_flag(rank_end > rank_start),
            down=_flag(rank_end < rank_start),
        ).mutate(**{EVERYONE: ibis.literal(ALL)})
    )

    placed = dimensions.buyer_tiers(sold.filter(sold.day >= first, sold.day <= last), members_now)
    placed = source.keep(placed.mutate(**{EVERYONE: ibis.literal(ALL)}))

    figures: dict[str, dict[str, KpiFigures]] = {}
    for key in (EVERYONE, *(dimension.value for dimension in KPI_DIMENSIONS)):
        groups: dict[str, KpiFigures] = {}

        def add(found: dict[str, dict[str, int]], groups: dict[str, KpiFigures] = groups) -> None:
            for group, values in found.items():
                target = groups.setdefault(group, KpiFigures())
                for name, value in values.items():
                    setattr(target, name, value)

        add(
            _grouped(
                now,
                key,
                members=now.count(),
                new_members=now.new.sum(),
                active_members=now.active.sum(),
                engaged_members=now.engaged.sum(),
            )
        )
        add(
            _grouped(
                then,
                key,
                members_at_start=then.count(),
                previous_active_members=then.previously_active.sum(),
                churned_members=then.churned.sum(),
                moved_up=then.up.sum(),
                moved_down=then.down.sum(),
            )
        )
        add(
            _grouped(
                placed,
                key,
                orders=placed.count(),
                sales_fen=placed.net_fen.sum(),
                member_orders=_flag(placed.member_order).sum(),
                member_sales_fen=ibis.ifelse(placed.member_order, placed.net_fen, 0).sum(),
            )
        )
        known = placed.filter(placed.person_id.notnull())
        per_person = known.group_by([known[key], known.person_id]).agg(days=known.day.nunique())
        add(
            _grouped(
                per_person,
                key,
                purchasers=per_person.count(),
                repeat_purchasers=_flag(per_person.days >= 2).sum(),
            )
        )
        figures[key] = {group: groups[group] for group in group_order(key, set(groups), tiers)}

    overall = figures.pop(EVERYONE).get(ALL, KpiFigures())
    return KpiReport(
        as_of=clock.as_of,
        period=period,
        previous=previous,
        time_zone=clock.time_zone,
        tiers=tiers,
        overall=overall,
        breakdowns=figures,
    )


#: The figure names, in the order tables and CSV show them.
FIGURE_NAMES = tuple(KpiFigures().as_dict())
#: The counting fields (for tests and exports that want raw numbers).
COUNT_FIELDS = tuple(item.name for item in fields(KpiFigures))
