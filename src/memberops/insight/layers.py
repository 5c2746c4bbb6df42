"""The five relationship layers per person for a period, and the four health metrics (FAST+).

Definitions are DOMAIN.md §2, word for word: membership and reachability are judged at the end of
the period, purchases and propagation inside it. Propagation is a positive review of a product
the person bought (by the period's end), or a share of theirs that another person's order in the
period carried. Every figure is a grouped query on the engine; only counts come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base
from memberops.insight.periods import Period, day_end_epoch, day_number
from memberops.insight.rules import LAYER_ORDER, Layer, LayerSettings, decimal_text, ratio
from memberops.insight.source import Source, live_persons
from memberops.kit.money import fen_to_yuan

#: The ``from``/``to`` of a transition for a person who holds no layer.
NO_LAYER = "none"


def _events_in(source: Source, kind: str | None, start_epoch: int, end_epoch: int) -> ir.Table:
    """Events of one kind (``None``: of every kind) inside [start, end), re-pointed to live persons."""
    events = source.table("events")
    if kind is not None:
        events = events.filter(events.kind == kind)
    events = events.mutate(epoch=source.epoch_seconds(events.occurred_at))
    events = events.filter(events.epoch >= start_epoch, events.epoch < end_epoch)
    persons = live_persons(source)
    return events.inner_join(persons, events.person_id == persons.id).select(
        person_id=persons.person_id,
        field=events.field,
        share_id=events.share_id,
        attributes=events.attributes,
    )


def propagators(
    source: Source, clock: base.Clock, period: Period, settings: LayerSettings, facts: ir.Table
) -> ir.Table:
    """Return the live persons who propagated successfully in the period: ``person_id``.

    ``facts`` are the purchases known at the period's end (``base.orders`` on its clock): a
    review counts for a product the reviewer bought by then.
    """
    start_epoch = day_end_epoch(period.start - timedelta(days=1), clock.time_zone)
    reviews = _events_in(source, "review", start_epoch, clock.end_epoch)
    reviews = reviews.select(
        person_id=reviews.person_id,
        sku=source.json_member(reviews.attributes, "sku"),
        rating=source.json_member(reviews.attributes, "rating"),
    )
    reviews = reviews.filter(reviews.rating.isin([str(rating) for rating in settings.positive_ratings]))
    # Only the reviewers' own purchases can make a review count: their orders are picked first,
    # so the lines read are theirs, not the lines of the whole history. The pieces are kept as
    # tables so SQLite indexes each join and semi join on the fly (as sub-selects it compared
    # every share with every carried order: seconds at 20,000 members).
    reviewers = source.keep(reviews.select(reviewer_id=reviews.person_id).distinct())
    theirs = facts.inner_join(reviewers, facts.person_id == reviewers.reviewer_id)
    lines = source.table("order_lines")
    bought = source.keep(
        theirs.inner_join(lines, theirs.order_id == lines.order_id).select(
            person_id=theirs.person_id, sku=lines.sku
        )
    )
    reviewed = reviews.semi_join(
        bought, [reviews.person_id == bought.person_id, reviews.sku == bought.sku]
    ).select("person_id")

    shares = _events_in(source, "share", start_epoch, clock.end_epoch)
    shares = shares.filter(shares.share_id.notnull()).select("person_id", "share_id")
    # "Another person placed an order carrying the share": a guest's order counts too (nobody
    # knows who they are, but they are not the sharer), so this reads every paid order, not only
    # the purchases of known persons; an order refunded in full by the period's end is none.
    paid = base.paid_orders(source, clock)
    paid = paid.filter(paid.share_id.notnull(), paid.day >= day_number(period.start))
    net = base.known_net(source, clock, paid)
    carried = source.keep(net.select(buyer_id=net.person_id, share_id=net.share_id))
    shared = shares.semi_join(
        carried,
        [
            shares.share_id == carried.share_id,
            carried.buyer_id.isnull() | (shares.person_id != carried.buyer_id),
        ],
    ).select("person_id")
    return reviewed.union(shared, distinct=True)


def layers(
    source: Source, clock: base.Clock, period: Period, settings: LayerSettings, known: ir.Table | None = None
) -> ir.Table:
    """Return ``person_id, layer`` (1–5, see ``rules.Layer``) for everyone holding a layer.

    ``clock`` is the period's end: membership and reachability are judged then. ``known`` are the
    purchases known then (``base.orders`` on that clock), when the caller has them already.
    """
    key = ("layers", clock.time_zone, clock.end_epoch, period.start, period.end, settings)
    return source.once(key, lambda: _layers(source, clock, period, settings, known))


def _layers(
    source: Source, clock: base.Clock, period: Period, settings: LayerSettings, known: ir.Table | None
) -> ir.Table:
    members = base.members_at(source, clock.end_epoch).mutate(member=ibis.literal(True))
    reachable = base.reachable_at(
        source,
        clock.end_epoch,
        follow_kinds=settings.follow_kinds,
        group_kinds=settings.group_kinds,
        consent_channels=settings.reach_consent_channels,
    ).mutate(connected=ibis.literal(True))
    known = known if known is not None else source.keep(base.orders(source, clock))
    facts = known.filter(known.day >= day_number(period.start))
    days = facts.group_by(facts.person_id).agg(purchase_days=facts.day.nunique())
    spread = propagators(source, clock, period, settings, known).mutate(propagated=ibis.literal(True))
    members, reachable, days, spread = (source.keep(part) for part in (members, reachable, days, spread))
    everyone = members.select("person_id").union(reachable.select("person_id"), distinct=True)
    joined = (
        everyone.left_join(members, "person_id")
        .left_join(reachable, "person_id")
        .left_join(days, "person_id")
        .left_join(spread, "person_id")
    )
    joined = joined.select(
        person_id=joined.person_id,
        member=joined.member.fill_null(False),
        connected=joined.connected.fill_null(False),
        purchase_days=joined.purchase_days.fill_null(0),
        propagated=joined.propagated.fill_null(False),
    )
    purchase_days = joined.purchase_days
    member = joined.member
    repurchased = member & (purchase_days >= 2)
    return joined.select(
        person_id=joined.person_id,
        layer=ibis.cases(
            (repurchased & joined.propagated, int(Layer.KOC)),
            (repurchased, int(Layer.REPURCHASE)),
            (member & (purchase_days == 1), int(Layer.PURCHASED)),
            (member, int(Layer.MEMBER_NOT_PURCHASED)),
            else_=int(Layer.CONNECTED),
        ).cast("int64"),
    )


@dataclass(frozen=True)
class FieldConnection:
    """Visitors of one field in the period, and how many of them hold a layer at its end."""

    field: str
    visitors: int
    held: int

    @property
    def connection(self) -> Fraction | None:
        return ratio(self.held, self.visitors)


@dataclass(frozen=True)
class LayersReport:
    """Layers, Capital, Conversion, Connection and CLV's transaction part for a period."""

    as_of: date
    period: Period
    previous: Period
    time_zone: str
    counts: dict[Layer, int]
    previous_capital: int
    deepened: int
    fields: tuple[FieldConnection, ...]
    transaction_value_fen: int
    transitions: dict[tuple[str, str], int]

    @property
    def capital(self) -> int:
        return sum(self.counts.values())

    @property
    def conversion(self) -> Fraction | None:
        return ratio(self.deepened, self.previous_capital)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period.label,
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "time_zone": self.time_zone,
            "layers": {layer.code: self.counts[layer] for layer in LAYER_ORDER},
            "capital": self.capital,
            "previous_period": self.previous.label,
            "previous_capital": self.previous_capital,
            "deepened": self.deepened,
            "conversion": decimal_text(self.conversion),
            "connection": {item.field: decimal_text(item.connection) for item in self.fields},
            "visitors": {item.field: {"visitors": item.visitors, "held": item.held} for item in self.fields},
            "clv_transaction_value": fen_to_yuan(self.transaction_value_fen),
            "transitions": [
                {"from": source, "to": target, "people": people}
                for (source, target), people in sorted(self.transitions.items(), key=_transition_order)
            ],
        }


_RANK = {NO_LAYER: 0} | {layer.code: int(layer) for layer in LAYER_ORDER}


def _transition_order(item: tuple[tuple[str, str], int]) -> tuple[int, int]:
    (source, target), _ = item
    return _RANK[source], _RANK[target]


def layer_code(layer: ir.IntegerValue) -> ir.StringValue:
    """Return the layer's code (``repurchase``…) for its rank, ``none`` for no layer."""
    return ibis.cases(*((layer == int(item), item.code) for item in LAYER_ORDER), else_=NO_LAYER)


def people(source: Source, clock: base.Clock, period: Period, settings: LayerSettings) -> ir.Table:
    """Return ``person_id, layer, transaction_value_fen`` for everyone holding a layer at the period's end.

    ``layer`` is the code (``koc``…); ``transaction_value_fen`` is the person's own part of CLV:
    their net spend to the period's end (0 when none). ``report``'s ``transaction_value_fen`` is
    the sum of these values.
    """
    end_clock = clock.on(period.end)
    known = source.keep(base.orders(source, end_clock))
    held = transaction_values(source, known, layers(source, end_clock, period, settings, known))
    return held.select(
        person_id=held.person_id,
        layer=layer_code(held.layer),
        transaction_value_fen=held.transaction_value_fen,
    )


def transaction_values(source: Source, known: ir.Table, held: ir.Table) -> ir.Table:
    """Add ``transaction_value_fen`` to ``held`` (``layers``): each holder's net spend in ``known``."""
    # Kept, so the join is between two tables SQLite indexes on the fly: as a semi join it
    # checked every purchase against every person (minutes at 20,000 members).
    spent = source.keep(
        known.group_by(spender_id=known.person_id).agg(value_fen=known.net_fen.sum().cast("int64"))
    )
    joined = held.left_join(spent, held.person_id == spent.spender_id)
    return joined.select(
        person_id=joined.person_id,
        layer=joined.layer,
        transaction_value_fen=joined.value_fen.fill_null(0).cast("int64"),
    )


def field_visitors(source: Source, clock: base.Clock, start_epoch: int) -> ir.Table:
    """Return ``field, person_id`` (distinct): who visited each field from ``start_epoch`` to the clock.

    A person visited a field (DOMAIN.md's 场域: store POS, mini program, Tmall, live room, group
    chat…) when anything they did there was recorded — an event of any kind in that field, or an
    order placed through that channel (refunded or not: they came). Connection is the share of a
    field's visitors who hold a layer; counting only ``visit`` events would leave out the fields
    where people meet the brand by buying or chatting, a chain's stores first of all.
    """
    events = _events_in(source, None, start_epoch, clock.end_epoch)
    events = events.select(field=events.field.cast("string"), person_id=events.person_id.cast("int64"))
    paid = base.paid_orders(source, clock)
    paid = paid.filter(paid.person_id.notnull(), paid.epoch >= start_epoch, paid.epoch < clock.end_epoch)
    # Cast alike: the store's column types differ in length (a union needs equal schemas).
    ordered = paid.select(field=paid.channel.cast("string"), person_id=paid.person_id.cast("int64"))
    return events.union(ordered, distinct=True)


def report(source: Source, clock: base.Clock, period: Period, settings: LayerSettings) -> LayersReport:
    """Compute the layers and the four metrics for ``period`` (ending by the clock's as-of date)."""
    end_clock = clock.on(period.end)
    previous = period.previous()
    known = source.keep(base.orders(source, end_clock))
    now = source.keep(layers(source, end_clock, period, settings, known))
    before = source.keep(layers(source, clock.on(previous.end), previous, settings))

    everyone = before.select("person_id").union(now.select("person_id"), distinct=True)
    joined = everyone.left_join(before.select("person_id", source_layer="layer"), "person_id").left_join(
        now.select("person_id", target_layer="layer"), "person_id"
    )
    paired = joined.select(
        source_layer=joined.source_layer.fill_null(0), target_layer=joined.target_layer.fill_null(0)
    )
    grouped = paired.group_by(["source_layer", "target_layer"]).agg(people=paired.count())
    grouped = grouped.select(
        source_code=layer_code(grouped.source_layer),
        target_code=layer_code(grouped.target_layer),
        people=grouped.people,
    )
    rows = grouped.to_pyarrow().to_pylist()
    transitions = {(row["source_code"], row["target_code"]): int(row["people"]) for row in rows}
    counts = dict.fromkeys(LAYER_ORDER, 0)
    previous_capital = deepened = 0
    for (source_code, target_code), people in transitions.items():
        if target_code != NO_LAYER:
            counts[Layer[target_code.upper()]] += people
        if source_code != NO_LAYER:
            previous_capital += people
            if _RANK[target_code] > _RANK[source_code]:
                deepened += people

    start_epoch = day_end_epoch(period.start - timedelta(days=1), clock.time_zone)
    visits = field_visitors(source, end_clock, start_epoch)
    held = visits.left_join(now, visits.person_id == now.person_id)
    by_field = held.group_by(held.field).agg(
        visitors=held.count(), held=ibis.ifelse(held.layer.notnull(), 1, 0).sum()
    )
    fields = tuple(
        FieldConnection(str(row["field"]), int(row["visitors"]), int(row["held"] or 0))
        for row in sorted(by_field.to_pyarrow().to_pylist(), key=lambda row: str(row["field"]))
    )

    valued = transaction_values(source, known, now)
    transaction_value = valued.transaction_value_fen.sum().to_pyarrow().as_py()
    return LayersReport(
        as_of=clock.as_of,
        period=period,
        previous=previous,
        time_zone=clock.time_zone,
        counts=counts,
        previous_capital=previous_capital,
        deepened=deepened,
        fields=fields,
        transaction_value_fen=int(transaction_value or 0),
        transitions=transitions,
    )
