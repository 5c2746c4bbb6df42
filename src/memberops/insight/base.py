"""The relations every analysis starts from: purchases, members and reachable people at an instant.

All of them are Ibis expressions over a ``Source``; nothing is fetched until an analysis asks for
its (small) result. Instants are compared as whole UTC epoch seconds (see ``source``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import ibis
import ibis.expr.types as ir

from memberops.insight.periods import OffsetSegment, day_end_epoch, day_number, offset_segments
from memberops.insight.source import Source, business_day, live_persons
from memberops.kit.clock import end_of_day


@dataclass(frozen=True)
class Clock:
    """The as-of date of an analysis in the brand's time zone: nothing after its end is read."""

    time_zone: str
    as_of: date
    segments: tuple[OffsetSegment, ...]

    @classmethod
    def at(cls, as_of: date, time_zone: str) -> Clock:
        return cls(time_zone, as_of, offset_segments(time_zone, end_of_day(as_of, time_zone)))

    def on(self, as_of: date) -> Clock:
        """Return the clock of an earlier date in the same zone (its offsets are already known)."""
        return Clock(self.time_zone, as_of, self.segments)

    @property
    def end_epoch(self) -> int:
        """The first UTC second after the as-of date."""
        return day_end_epoch(self.as_of, self.time_zone)

    @property
    def day(self) -> int:
        """The as-of date's business day number."""
        return day_number(self.as_of)


def orders(source: Source, clock: Clock) -> ir.Table:
    """Return the purchases known on the as-of date: one row per order of a live person.

    Columns: ``order_id``, ``person_id`` (live), ``epoch``, ``day`` (business day number),
    ``net_fen`` (paid minus refunds made by the as-of date), ``share_id``. An order refunded in
    full by then is no purchase and is left out. A sharing source keeps it once per instant.
    """
    return source.once(("orders", clock.time_zone, clock.end_epoch), lambda: _orders(source, clock))


def _orders(source: Source, clock: Clock) -> ir.Table:
    paid = paid_orders(source, clock)
    facts = known_net(source, clock, paid.filter(paid.person_id.notnull()))
    return facts.select("order_id", "person_id", "epoch", "day", "net_fen", "share_id")


def known_net(source: Source, clock: Clock, paid: ir.Table) -> ir.Table:
    """Narrow ``paid`` (rows of ``paid_orders``) to what was paid before the clock's instant, with
    ``net_fen`` after the refunds made by then; an order refunded in full is left out.

    The one rule of what a purchase is on a date: the purchases of persons (``orders``), every
    sale, guests included (``dimensions.sales``), and the orders carrying a share all apply it.
    """
    paid = paid.filter(paid.epoch < clock.end_epoch)
    net = net_of_refunds(paid, refunded_before(source, clock.end_epoch))
    return net.filter(net.net_fen > 0)


def paid_orders(source: Source, clock: Clock) -> ir.Table:
    """Return every stored order with its buyer's live person, epoch second and business day.

    Columns: ``order_id``, ``person_id`` (live; null for a guest), ``epoch``, ``day``,
    ``amount_fen`` (as paid), ``share_id``, ``store_id``, ``channel`` (the order's source). No
    instant is applied: the purchases known on any date (here) and the sales (``dimensions``)
    filter this one relation and subtract the refunds of their date, so the business day and the
    merges are worked out once for every order, and alike for both. A sharing source keeps it
    once per time zone history (``clock.segments``), whatever the as-of date.
    """
    return source.once(("paid", clock.segments), lambda: _paid_orders(source, clock))


def _paid_orders(source: Source, clock: Clock) -> ir.Table:
    stored = source.table("orders")
    persons = live_persons(source)
    joined = stored.left_join(persons, stored.person_id == persons.id)
    epoch = source.epoch_seconds(joined.paid_at)
    return joined.select(
        order_id=joined.id,
        person_id=joined.person_id_right,
        epoch=epoch,
        day=business_day(epoch, clock.segments),
        amount_fen=joined.amount_fen,
        share_id=joined.share_id,
        store_id=joined.store_id,
        channel=joined.source,
    )


def net_of_refunds(paid: ir.Table, refunded: ir.Table) -> ir.Table:
    """Add ``net_fen`` to ``paid_orders`` rows: the amount paid minus ``refunded`` (``refunded_before``)."""
    joined = paid.left_join(refunded, paid.order_id == refunded.order_id)
    return joined.select(
        *(joined[column] for column in paid.columns),
        net_fen=(joined.amount_fen - joined.refunded_fen.fill_null(0)).cast("int64"),
    )


def refunded_before(source: Source, end_epoch: int) -> ir.Table:
    """Return ``order_id, refunded_fen``: what was refunded of each order before ``end_epoch``.

    Every analysis counts a purchase net of the refunds made by its as-of date (members' purchases
    here, every sale in ``dimensions.sales``), so both subtract this same relation.
    """
    return source.once(("refunded", end_epoch), lambda: _refunded_before(source, end_epoch))


def _refunded_before(source: Source, end_epoch: int) -> ir.Table:
    refunds = source.table("refunds")
    refunded = refunds.mutate(epoch=source.epoch_seconds(refunds.refunded_at))
    return (
        refunded.filter(refunded.epoch < end_epoch)
        .group_by(refunded.order_id)
        .agg(refunded_fen=refunded.amount_fen.sum())
    )


def purchase_days(facts: ir.Table) -> ir.Table:
    """Return one row per person and business day with a purchase: ``person_id, day, amount_fen``."""
    return facts.group_by(["person_id", "day"]).agg(amount_fen=facts.net_fen.sum().cast("int64"))


def purchase_days_at(source: Source, clock: Clock) -> ir.Table:
    """Return ``purchase_days`` of the purchases known on the as-of date, kept as a table.

    Always kept (once per date when sharing): RFM, cohorts and the magic number build several
    levels on top of it, more than SQLite's parser takes in one statement.
    """
    key = ("purchase_days", clock.time_zone, clock.end_epoch)
    return source.keep(source.once(key, lambda: purchase_days(orders(source, clock))))


def members_at(source: Source, end_epoch: int) -> ir.Table:
    """Return the live persons who are members just before ``end_epoch``: ``person_id``.

    A spell counts from ``joined_at`` until ``cancelled_at``; a spell set aside by a merge never
    counts (its survivor keeps its own). One who left before the end is no member.
    """
    return source.once(("members", end_epoch), lambda: _members_at(source, end_epoch))


def _members_at(source: Source, end_epoch: int) -> ir.Table:
    spells = source.table("memberships")
    spells = spells.mutate(
        joined=source.epoch_seconds(spells.joined_at),
        left=source.epoch_seconds(spells.cancelled_at),
    )
    current = spells.filter(
        spells.status.isin(["active", "cancelled"]),
        spells.joined < end_epoch,
        ibis.ifelse(spells.left.isnull(), spells.status == "active", spells.left >= end_epoch),
    )
    persons = live_persons(source)
    joined = current.inner_join(persons, current.person_id == persons.id)
    return joined.select(person_id=joined.person_id_right).distinct()


def _latest_state(events: ir.Table, partition: list[str]) -> ir.Table:
    """Keep each partition's latest event (ties broken by id, so the answer is reproducible)."""
    ranked = events.mutate(
        position=ibis.row_number().over(
            group_by=[events[name] for name in partition],
            order_by=[events.epoch.desc(), events.id.desc()],
        )
    )
    return ranked.filter(ranked.position == 0)


def reachable_at(
    source: Source,
    end_epoch: int,
    *,
    follow_kinds: tuple[str, str],
    group_kinds: tuple[str, str],
    consent_channels: tuple[str, ...],
) -> ir.Table:
    """Return the live persons the brand can reach for free just before ``end_epoch``: ``person_id``.

    Reachable: the latest follow/unfollow in some field is a follow, or the latest join/leave of a
    group chat is a join, or the latest consent on one of ``consent_channels`` (the exclusive
    WeCom contact, the subscription) is a grant.
    """
    key = ("reachable", end_epoch, follow_kinds, group_kinds, consent_channels)
    return source.once(
        key, lambda: _reachable_at(source, end_epoch, follow_kinds, group_kinds, consent_channels)
    )


def _reachable_at(
    source: Source,
    end_epoch: int,
    follow_kinds: tuple[str, str],
    group_kinds: tuple[str, str],
    consent_channels: tuple[str, ...],
) -> ir.Table:
    persons = live_persons(source)
    events = source.table("events")
    kinds = [*follow_kinds, *group_kinds]
    events = events.filter(events.kind.isin(kinds)).mutate(epoch=source.epoch_seconds(events.occurred_at))
    events = events.filter(events.epoch < end_epoch)
    events = events.inner_join(persons, events.person_id == persons.id).select(
        id=events.id,
        person_id=persons.person_id,
        field=events.field,
        kind=events.kind,
        relation=ibis.ifelse(events.kind.isin(list(follow_kinds)), "follow", "group"),
        epoch=events.epoch,
    )
    latest = _latest_state(events, ["person_id", "field", "relation"])
    joined_kinds = [follow_kinds[0], group_kinds[0]]
    by_events = latest.filter(latest.kind.isin(joined_kinds)).select("person_id")

    consents = source.table("consents")
    consents = consents.filter(consents.channel.isin(list(consent_channels))).mutate(
        epoch=source.epoch_seconds(consents.changed_at)
    )
    consents = consents.filter(consents.epoch < end_epoch)
    consents = consents.inner_join(persons, consents.person_id == persons.id).select(
        id=consents.id,
        person_id=persons.person_id,
        channel=consents.channel,
        granted=consents.granted,
        epoch=consents.epoch,
    )
    latest_consent = _latest_state(consents, ["person_id", "channel"])
    by_consent = latest_consent.filter(latest_consent.granted).select("person_id")
    return by_events.union(by_consent, distinct=True)
