"""The relations KPIs and cross tables break figures down by: sales with their place, homes, tiers.

- ``sales``: every purchase known on the as-of date, guest orders included, with the store,
  store type and channel it was placed in and whether the buyer was a member when paying.
- ``homes``: the members at an instant with the store and field of the membership spell they
  hold then (their home) and when that spell began.
- ``tiers_at``: each live person's tier at an instant from the tier history.

Like ``base``, all of these are Ibis expressions over a ``Source``; nothing is fetched here.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import ibis.expr.types as ir

from memberops.insight import base
from memberops.insight.kpi_rules import NO_STORE, NO_TIER, NON_MEMBER
from memberops.insight.periods import day_end_epoch
from memberops.insight.source import Source, live_persons

#: Tables the KPI analyses read besides ``source.TABLES``.
EXTRA_TABLES = ("stores", "tier_history")


def _spells(source: Source) -> ir.Table:
    """Membership spells that count (not set aside by a merge), re-pointed to live persons."""
    return source.once(("spells",), lambda: _counted_spells(source))


def _counted_spells(source: Source) -> ir.Table:
    spells = source.table("memberships")
    spells = spells.filter(spells.status.isin(["active", "cancelled"])).mutate(
        joined=source.epoch_seconds(spells.joined_at),
        left=source.epoch_seconds(spells.cancelled_at),
    )
    persons = live_persons(source)
    joined = spells.inner_join(persons, spells.person_id == persons.id)
    return joined.select(
        spell_id=joined.id,
        person_id=joined.person_id_right,
        joined=joined.joined,
        left=joined.left,
        status=joined.status,
        join_store_id=joined.join_store_id,
        join_field=joined.join_field,
    )


def _stores(source: Source) -> ir.Table:
    stores = source.table("stores")
    return stores.select(store_key=stores.id, store_code=stores.code, store_kind=stores.store_type)


def sales(source: Source, clock: base.Clock, since: date | None = None) -> ir.Table:
    """Return every purchase known on the as-of date, guest orders included (from ``since`` on).

    Columns: ``order_id``, ``person_id`` (live; null for a guest), ``day``, ``epoch``,
    ``net_fen`` (paid minus refunds made by the as-of date; orders refunded in full are left out),
    ``store`` (code, ``none`` without a store), ``store_type``, ``channel`` (the order's source)
    and ``member_order`` (the buyer held a membership spell at the instant of payment).
    ``since`` (a business date) leaves out what was paid before it: KPIs and cross tables read a
    period or two, and whether a buyer was a member is the costly part, not worth working out
    for years of history nobody asked about.
    """
    key = ("sales", clock.time_zone, clock.end_epoch, since)
    return source.once(key, lambda: _sales(source, clock, since))


def _sales(source: Source, clock: base.Clock, since: date | None) -> ir.Table:
    paid = base.paid_orders(source, clock)
    if since is not None:
        paid = paid.filter(paid.epoch >= day_end_epoch(since - timedelta(days=1), clock.time_zone))
    net = base.known_net(source, clock, paid)
    stores = _stores(source)
    joined = net.left_join(stores, net.store_id == stores.store_key)
    facts = joined.select(
        order_id=joined.order_id,
        person_id=joined.person_id,
        epoch=joined.epoch,
        day=joined.day,
        net_fen=joined.net_fen,
        store=joined.store_code.fill_null(NO_STORE),
        store_type=joined.store_kind.fill_null(NO_STORE),
        channel=joined.channel,
    )
    # An equality join on the person, then the spell's range, then one row per order: as a semi
    # join with the range inside, SQLite compared every order with every spell (minutes at 200,000
    # orders); kept as tables, the join gets an automatic index on the person.
    facts = source.keep(facts)
    spells = source.keep(_spells(source))
    pairs = facts.inner_join(spells, facts.person_id == spells.person_id)
    pairs = pairs.filter(
        pairs.joined <= pairs.epoch,
        ibis.ifelse(pairs.left.isnull(), pairs.status == "active", pairs.left > pairs.epoch),
    )
    covered = source.keep(pairs.select(member_order_id=pairs.order_id).distinct())
    marked = facts.left_join(covered, facts.order_id == covered.member_order_id)
    return marked.select(
        *(marked[name] for name in facts.columns),
        member_order=marked.member_order_id.notnull(),
    )


def homes(source: Source, end_epoch: int) -> ir.Table:
    """Return the live members just before ``end_epoch`` with the spell they hold then.

    Columns: ``person_id``, ``joined`` (epoch the spell began), ``store``, ``store_type``,
    ``channel`` (the spell's join field). A person holding two spells at once (two persons merged)
    takes the latest one. Same membership rule as ``base.members_at``.
    """
    return source.once(("homes", end_epoch), lambda: _homes(source, end_epoch))


def _homes(source: Source, end_epoch: int) -> ir.Table:
    spells = _spells(source)
    current = spells.filter(
        spells.joined < end_epoch,
        ibis.ifelse(spells.left.isnull(), spells.status == "active", spells.left >= end_epoch),
    )
    ranked = current.mutate(
        position=ibis.row_number().over(
            group_by=current.person_id, order_by=[current.joined.desc(), current.spell_id.desc()]
        )
    )
    latest = ranked.filter(ranked.position == 0)
    stores = _stores(source)
    joined = latest.left_join(stores, latest.join_store_id == stores.store_key)
    return joined.select(
        person_id=joined.person_id,
        joined=joined.joined,
        store=joined.store_code.fill_null(NO_STORE),
        store_type=joined.store_kind.fill_null(NO_STORE),
        channel=joined.join_field,
    )


def tiers_at(source: Source, end_epoch: int) -> ir.Table:
    """Return ``person_id, tier`` of the live persons with a tier change recorded before ``end_epoch``.

    The tier is the ``to_tier`` of their latest change (ties by id). Only a live person's own
    history counts: a merge records the survivor's resulting tier as a change of the survivor.
    Persons without a change are in the lowest tier (``with_tiers`` fills it in).
    """
    return source.once(("tiers", end_epoch), lambda: _tiers_at(source, end_epoch))


def _tiers_at(source: Source, end_epoch: int) -> ir.Table:
    history = source.table("tier_history")
    history = history.mutate(epoch=source.epoch_seconds(history.changed_at))
    history = history.filter(history.epoch < end_epoch)
    persons = source.table("persons")
    live = persons.filter(persons.merged_into_id.isnull()).select(live_id=persons.id)
    history = history.inner_join(live, history.person_id == live.live_id)
    ranked = history.mutate(
        position=ibis.row_number().over(
            group_by=history.person_id, order_by=[history.epoch.desc(), history.id.desc()]
        )
    )
    latest = ranked.filter(ranked.position == 0)
    return latest.select(person_id=latest.person_id, tier=latest.to_tier)


def lowest_tier(tiers: tuple[str, ...]) -> str:
    return tiers[0] if tiers else NO_TIER


def with_tier(
    people: ir.Table, source: Source, end_epoch: int, tiers: tuple[str, ...], name: str
) -> ir.Table:
    """Add column ``name``: each person's tier just before ``end_epoch`` (lowest without a change)."""
    known = tiers_at(source, end_epoch).rename({f"{name}_found": "tier", f"{name}_pid": "person_id"})
    joined = people.left_join(known, people.person_id == known[f"{name}_pid"])
    return joined.select(
        *(joined[column] for column in people.columns),
        **{name: joined[f"{name}_found"].fill_null(lowest_tier(tiers))},
    )


def members_with_tier(source: Source, end_epoch: int, tiers: tuple[str, ...]) -> ir.Table:
    """Return ``homes`` at ``end_epoch`` with each member's ``tier`` then (KPIs and cross tables)."""
    return source.once(
        ("members_with_tier", end_epoch, tiers),
        lambda: with_tier(homes(source, end_epoch), source, end_epoch, tiers, "tier"),
    )


def tier_rank(tier: ir.StringValue, tiers: tuple[str, ...]) -> ir.IntegerValue:
    """The query form of ``kpi_rules.tier_rank``."""
    if not tiers:
        return ibis.literal(0, type="int64")
    return ibis.cases(*((tier == code, rank) for rank, code in enumerate(tiers)), else_=0).cast("int64")


def buyer_tiers(sold: ir.Table, members_now: ir.Table) -> ir.Table:
    """Add ``tier`` to sales: the buyer's tier on the as-of date, ``non_member`` otherwise."""
    tiers = members_now.select(tier_pid=members_now.person_id, buyer_tier=members_now.tier)
    joined = sold.left_join(tiers, sold.person_id == tiers.tier_pid)
    return joined.select(
        *(joined[column] for column in sold.columns), tier=joined.buyer_tier.fill_null(NON_MEMBER)
    )
