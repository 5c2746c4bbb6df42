"""Compile a checked tag/segment expression into set-based Ibis relations of person ids.

Every leaf (``tier = "gold"``, ``bought(category="榴莲", days=90) >= 2``, ``rfm = "重要挽留"``) is one
grouped query over the whole store that yields the ids of the live persons satisfying it; ``and``,
``or`` and ``not`` are ``INTERSECT``, ``UNION`` and ``EXCEPT`` against all live persons. Nothing is
evaluated person by person in Python: a nightly refresh at a million members is a handful of
queries, each leaf kept as a temporary table of the analysis connection (``Source.keep``) so the
combining query stays shallow on SQLite.

Semantics worth knowing (docs/segments.md):

- a comparison on an attribute a person does not have (no tier, never joined) is false, so
  ``tier != "gold"`` holds for members with another tier and ``not tier = "gold"`` for everyone else too;
- counts and amounts are 0 for people with no purchases or events, so ``spent(days=30) < 100``
  includes people who bought nothing;
- a window of ``days=N`` is the N business days ending on the as-of date, inclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir

from memberops.insight import base, layers, lifecycle, preferences, rfm
from memberops.insight.config import BrandSettings
from memberops.insight.kpi_rules import PreferenceSettings
from memberops.insight.language import (
    ATTRIBUTES,
    FUNCTIONS,
    Both,
    Comparison,
    Either,
    Literal,
    Node,
    Not,
    ValueType,
    compare,
)
from memberops.insight.periods import day_number, parse_period
from memberops.insight.rules import LayerSettings, LifecycleSettings, RfmSettings
from memberops.insight.source import Source, business_day, live_persons

#: Tables expressions read besides ``source.TABLES`` (a DuckDB or warehouse copy needs them too).
EXTRA_TABLES = ("stores", "member_tiers", "points_accounts", "paid_plan_subscriptions", "tags", "person_tags")
#: How many days before its end a paid plan counts as ``expiring`` (as ``loyalty.plans``).
EXPIRING_DAYS = 30
_SECONDS_PER_DAY = 86_400


@dataclass
class Scope:
    """What an expression is evaluated against: the store, the as-of date and the analysis settings."""

    source: Source
    clock: base.Clock
    rfm_settings: RfmSettings = field(default_factory=RfmSettings)
    lifecycle_settings: LifecycleSettings = field(default_factory=LifecycleSettings)
    layer_settings: LayerSettings = field(default_factory=LayerSettings)
    preference_settings: PreferenceSettings = field(default_factory=PreferenceSettings)
    rfm_period: str = "12m"
    preference_period: str = "12m"
    _cache: dict[str, ir.Table] = field(default_factory=dict)

    def cached(self, key: str, build: Callable[[], ir.Table]) -> ir.Table:
        """Build a per-person relation once per evaluation (several leaves may read the RFM classes)."""
        if key not in self._cache:
            self._cache[key] = self.source.keep(build())
        return self._cache[key]


def brand_scope(source: Source, clock: base.Clock, settings: BrandSettings) -> Scope:
    """A scope judging ``rfm``, ``stage``, ``layer`` and ``preferred`` by the brand's thresholds."""
    return Scope(
        source,
        clock,
        rfm_settings=settings.rfm,
        lifecycle_settings=settings.lifecycle,
        layer_settings=settings.layers,
        preference_settings=settings.preferences,
    )


def attribute_values(scope: Scope, name: str) -> ir.Table:
    """Return ``person_id, value`` of an attribute (``city``, ``stage``, ``rfm``…) on the as-of date.

    The relation a comparison on the attribute filters: cross tables break figures down by it, so
    a cross table's ``stage`` groups are the people ``stage = "…"`` selects.
    """
    return _ATTRIBUTES[name](scope)


def everyone(source: Source) -> ir.Table:
    """Return every live person: ``person_id``."""
    persons = source.table("persons").view()
    return persons.filter(persons.merged_into_id.isnull()).select(person_id=persons.id.cast("int64"))


def evaluate(scope: Scope, node: Node) -> ir.Table:
    """Return the relation ``person_id`` (distinct, live persons) that satisfies ``node``."""
    if isinstance(node, Comparison):
        return scope.source.keep(
            _leaf(scope, node).select(person_id=ibis._.person_id.cast("int64")).distinct()
        )
    if isinstance(node, Not):
        return everyone(scope.source).difference(evaluate(scope, node.item))
    parts = [evaluate(scope, item) for item in node.items]
    if isinstance(node, Both):
        return parts[0].intersect(*parts[1:])
    assert isinstance(node, Either)
    return parts[0].union(*parts[1:], distinct=True)


# ------------------------------------------------------------------------------------ predicates


def _literal(value: Literal, value_type: ValueType) -> Any:
    """Return a checked literal in the engine's terms (fen for yuan, a day number for a date)."""
    if value_type is ValueType.YUAN:
        assert isinstance(value, Decimal)
        return int(value * 100)
    if value_type is ValueType.COUNT:
        assert isinstance(value, Decimal)
        return int(value)
    if value_type is ValueType.DATE:
        assert isinstance(value, str)
        return day_number(date.fromisoformat(value))
    return value


def _predicate(column: ir.Value, operator: str, values: list[Any]) -> ir.BooleanValue:
    match operator:
        case "=":
            return column == values[0]
        case "!=":
            return column != values[0]
        case "<":
            return column < values[0]
        case "<=":
            return column <= values[0]
        case ">":
            return column > values[0]
        case ">=":
            return column >= values[0]
        case "in":
            return column.isin(values)
        case "not in":
            return column.notin(values)
        case "truth":
            return column > 0
    raise AssertionError(operator)


def _leaf(scope: Scope, node: Comparison) -> ir.Table:
    subject = node.subject
    if subject.call:
        spec = FUNCTIONS[subject.name]
        arguments = subject.arguments
        if spec.returns is ValueType.FLAG:
            return _FLAGS[subject.name](scope, arguments)
        amounts = _AMOUNTS[subject.name](scope, arguments)
        values = [_literal(value, spec.returns) for value in node.values]
        if compare(Decimal(0), node.operator, tuple(Decimal(v) for v in values)):
            # Zero satisfies it, so people without any purchase or event are in: count them as 0.
            people = everyone(scope.source)
            joined = people.left_join(amounts, people.person_id == amounts.person_id)
            amounts = joined.select(person_id=joined.person_id, value=joined.value.fill_null(0))
        return amounts.filter(_predicate(amounts.value, node.operator, values))
    attribute = ATTRIBUTES[subject.name]
    if attribute.value_type is ValueType.FLAG:
        return _FLAG_ATTRIBUTES[subject.name](scope)
    relation = _ATTRIBUTES[subject.name](scope)
    values = [_literal(value, attribute.value_type) for value in node.values]
    relation = relation.filter(relation.value.notnull())
    return relation.filter(_predicate(relation.value, node.operator, values))


# ---------------------------------------------------------------------------- attributes (value)


def _live(source: Source, table: ir.Table, column: str = "person_id") -> ir.Table:
    """Re-point ``table.column`` to the live person (merges followed) as ``live_id``."""
    persons = live_persons(source)
    joined = table.inner_join(persons, table[column] == persons.id)
    return joined.mutate(live_id=persons.person_id)


def _spells(scope: Scope) -> ir.Table:
    """The latest membership spell of each live person that started by the as-of date."""
    source = scope.source
    spells = source.table("memberships")
    spells = spells.filter(spells.status.isin(["active", "cancelled"])).mutate(
        joined=source.epoch_seconds(spells.joined_at)
    )
    spells = spells.filter(spells.joined < scope.clock.end_epoch)
    spells = _live(source, spells)
    ranked = spells.mutate(
        position=ibis.row_number().over(
            group_by=spells.live_id, order_by=[spells.joined.desc(), spells.id.desc()]
        )
    )
    return ranked.filter(ranked.position == 0)


def _members(scope: Scope) -> ir.Table:
    return base.members_at(scope.source, scope.clock.end_epoch)


def _status(scope: Scope) -> ir.Table:
    spells = _spells(scope)
    members = _members(scope).mutate(current=ibis.literal(True))
    joined = spells.left_join(members, spells.live_id == members.person_id)
    return joined.select(
        person_id=joined.live_id,
        value=ibis.ifelse(joined.current.notnull(), "member", "cancelled"),
    )


def _join_date(scope: Scope) -> ir.Table:
    spells = _spells(scope)
    return spells.select(person_id=spells.live_id, value=business_day(spells.joined, scope.clock.segments))


def _days_since_join(scope: Scope) -> ir.Table:
    spells = _spells(scope)
    day = business_day(spells.joined, scope.clock.segments)
    return spells.select(
        person_id=spells.live_id, value=(ibis.literal(scope.clock.day, type="int64") - day).cast("int64")
    )


def _join_channel(scope: Scope) -> ir.Table:
    spells = _spells(scope)
    return spells.select(person_id=spells.live_id, value=spells.join_field)


def _city(scope: Scope) -> ir.Table:
    spells = _spells(scope)
    stores = scope.source.table("stores")
    joined = spells.inner_join(stores, spells.join_store_id == stores.id)
    return joined.select(person_id=joined.live_id, value=joined.city)


def _birthday_month(scope: Scope) -> ir.Table:
    spells = _spells(scope)
    spells = spells.filter(spells.birthday.notnull())
    return spells.select(person_id=spells.live_id, value=spells.birthday.cast("date").month().cast("int64"))


def _tier(scope: Scope) -> ir.Table:
    tiers = _live(scope.source, scope.source.table("member_tiers"))
    return tiers.select(person_id=tiers.live_id, value=tiers.tier)


def _points(scope: Scope) -> ir.Table:
    accounts = _live(scope.source, scope.source.table("points_accounts"))
    grouped = accounts.group_by(accounts.live_id).agg(value=accounts.balance.sum().cast("int64"))
    return grouped.select(person_id=grouped.live_id, value=grouped.value)


def _plan(scope: Scope) -> ir.Table:
    source = scope.source
    now = scope.clock.end_epoch
    terms = source.table("paid_plan_subscriptions")
    terms = terms.filter(terms.status != "refunded").mutate(
        starts=source.epoch_seconds(terms.starts_at), ends=source.epoch_seconds(terms.ends_at)
    )
    terms = _live(source, terms.filter(terms.starts < now))
    covering = (terms.starts <= now) & (terms.ends > now)
    grouped = terms.group_by(terms.live_id).agg(
        covered=ibis.ifelse(covering, 1, 0).max(), last_end=terms.ends.max()
    )
    return grouped.select(
        person_id=grouped.live_id,
        value=ibis.cases(
            (
                (grouped.covered == 1) & (grouped.last_end - now <= EXPIRING_DAYS * _SECONDS_PER_DAY),
                "expiring",
            ),
            (grouped.covered == 1, "active"),
            else_="expired",
        ),
    )


def _days_since_purchase(scope: Scope) -> ir.Table:
    facts = base.orders(scope.source, scope.clock)
    grouped = facts.group_by(facts.person_id).agg(last_day=facts.day.max())
    return grouped.select(
        person_id=grouped.person_id,
        value=(ibis.literal(scope.clock.day, type="int64") - grouped.last_day).cast("int64"),
    )


def _rfm(scope: Scope) -> ir.Table:
    def build() -> ir.Table:
        period = parse_period(scope.rfm_period, as_of=scope.clock.as_of)
        scored = rfm.analyse(scope.source, scope.clock, period, scope.rfm_settings).scored
        return scored.select(person_id=scored.person_id, value=scored.rfm_class)

    return scope.cached("rfm", build)


def _stage(scope: Scope) -> ir.Table:
    def build() -> ir.Table:
        stages = lifecycle.stages(scope.source, scope.clock, scope.lifecycle_settings)
        return stages.select(person_id=stages.person_id, value=stages.stage)

    return scope.cached("stage", build)


def _layer(scope: Scope) -> ir.Table:
    def build() -> ir.Table:
        period = parse_period(scope.clock.as_of.strftime("%Y-%m"), as_of=scope.clock.as_of)
        held = layers.layers(scope.source, scope.clock.on(period.end), period, scope.layer_settings)
        return held.select(person_id=held.person_id, value=layers.layer_code(held.layer))

    return scope.cached("layer", build)


def _preferred(scope: Scope) -> ir.Table:
    """The preferences analysis' ``preferred`` (a category or ``mixed``) of each buyer in the period.

    The period is the trailing 12 months, as ``memberops analyze preferences`` with no period;
    people who bought nothing in it are absent (no preference, so every comparison is false).
    """

    def build() -> ir.Table:
        source, clock, settings = scope.source, scope.clock, scope.preference_settings
        period = parse_period(scope.preference_period, as_of=clock.as_of)
        chosen = preferences.kept_people(source, clock, period, settings)
        return chosen.select(person_id=chosen.person_id, value=chosen.preferred)

    return scope.cached("preferred", build)


_ATTRIBUTES: dict[str, Callable[[Scope], ir.Table]] = {
    "status": _status,
    "join_date": _join_date,
    "days_since_join": _days_since_join,
    "join_channel": _join_channel,
    "city": _city,
    "birthday_month": _birthday_month,
    "tier": _tier,
    "points": _points,
    "plan": _plan,
    "days_since_purchase": _days_since_purchase,
    "rfm": _rfm,
    "stage": _stage,
    "layer": _layer,
    "preferred": _preferred,
}
_FLAG_ATTRIBUTES: dict[str, Callable[[Scope], ir.Table]] = {"member": _members}


# --------------------------------------------------------------------------- behaviour functions

Arguments = dict[str, Literal]


def _first_day(scope: Scope, arguments: Arguments) -> int | None:
    days = arguments.get("days")
    return None if days is None else scope.clock.day - int(Decimal(days)) + 1


def _purchases(scope: Scope, arguments: Arguments) -> ir.Table:
    facts = base.orders(scope.source, scope.clock)
    first = _first_day(scope, arguments)
    return facts if first is None else facts.filter(facts.day >= first)


def _bought(scope: Scope, arguments: Arguments) -> ir.Table:
    facts = _purchases(scope, arguments)
    if "category" in arguments or "sku" in arguments:
        lines = scope.source.table("order_lines")
        if "category" in arguments:
            lines = lines.filter(lines.category == str(arguments["category"]))
        if "sku" in arguments:
            lines = lines.filter(lines.sku == str(arguments["sku"]))
        facts = facts.semi_join(lines, facts.order_id == lines.order_id)
    return facts.group_by(facts.person_id).agg(value=facts.order_id.nunique().cast("int64"))


def _purchase_days(scope: Scope, arguments: Arguments) -> ir.Table:
    facts = _purchases(scope, arguments)
    return facts.group_by(facts.person_id).agg(value=facts.day.nunique().cast("int64"))


def _spent(scope: Scope, arguments: Arguments) -> ir.Table:
    facts = _purchases(scope, arguments)
    return facts.group_by(facts.person_id).agg(value=facts.net_fen.sum().cast("int64"))


def _events(scope: Scope, kinds: list[str], arguments: Arguments) -> ir.Table:
    """Events of ``kinds`` by the as-of date (in the window, if ``days``), re-pointed to live persons."""
    source = scope.source
    events = source.table("events")
    events = events.filter(events.kind.isin(kinds)).mutate(epoch=source.epoch_seconds(events.occurred_at))
    events = events.filter(events.epoch < scope.clock.end_epoch)
    if "field" in arguments:
        events = events.filter(events.field == str(arguments["field"]))
    first = _first_day(scope, arguments)
    if first is not None:
        events = events.filter(business_day(events.epoch, scope.clock.segments) >= first)
    events = _live(source, events)
    return events.select(
        id=events.id,
        person_id=events.live_id,
        kind=events.kind,
        field=events.field,
        epoch=events.epoch,
        attributes=events.attributes,
    )


def _count(events: ir.Table) -> ir.Table:
    return events.group_by(events.person_id).agg(value=events.count().cast("int64"))


def _reviewed(scope: Scope, arguments: Arguments) -> ir.Table:
    reviews = _events(scope, ["review"], arguments)
    if "min_rating" in arguments:
        rating = scope.source.json_member(reviews.attributes, "rating").cast("int64")
        reviews = reviews.filter(rating >= int(Decimal(arguments["min_rating"])))
    return _count(reviews)


def _shared(scope: Scope, arguments: Arguments) -> ir.Table:
    return _count(_events(scope, ["share"], arguments))


def _visited(scope: Scope, arguments: Arguments) -> ir.Table:
    return _count(_events(scope, [scope.layer_settings.visit_kind], arguments))


def _latest_is(scope: Scope, kinds: tuple[str, str], arguments: Arguments) -> ir.Table:
    """People whose latest of (``kinds[0]``, ``kinds[1]``) in some field is the first (a follow, a join)."""
    events = _events(scope, list(kinds), {key: value for key, value in arguments.items() if key != "days"})
    ranked = events.mutate(
        position=ibis.row_number().over(
            group_by=[events.person_id, events.field], order_by=[events.epoch.desc(), events.id.desc()]
        )
    )
    latest = ranked.filter(ranked.position == 0, ranked.kind == kinds[0])
    return latest.select("person_id")


def _followed(scope: Scope, arguments: Arguments) -> ir.Table:
    return _latest_is(scope, scope.layer_settings.follow_kinds, arguments)


def _joined_group(scope: Scope, arguments: Arguments) -> ir.Table:
    return _latest_is(scope, scope.layer_settings.group_kinds, arguments)


def _tag(scope: Scope, arguments: Arguments) -> ir.Table:
    source = scope.source
    tags = source.table("tags")
    held = source.table("person_tags")
    named = tags.filter(tags.name == str(arguments["name"]))
    held = held.semi_join(named, held.tag_id == named.id)
    held = _live(source, held)
    return held.select(person_id=held.live_id)


_AMOUNTS: dict[str, Callable[[Scope, Arguments], ir.Table]] = {
    "bought": _bought,
    "purchase_days": _purchase_days,
    "spent": _spent,
    "reviewed": _reviewed,
    "shared": _shared,
    "visited": _visited,
}
_FLAGS: dict[str, Callable[[Scope, Arguments], ir.Table]] = {
    "followed": _followed,
    "joined_group": _joined_group,
    "tag": _tag,
}
