"""Growth value and tiers over the store: growth entries, member tiers, tier history, in sets.

Growth is its own append-only ledger, separate from spendable points. A member's tier row caches
``growth_total`` (the sum of their entries, checked) and remembers the manual floor and which
upgrade gifts they had. Rolling-window growth is always summed from the entries. Callers lock the
member's points account first (``LedgerWriter.lock``): it is the one lock of all loyalty writes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.identity.repository import chunks
from memberops.kit.db import fetch, insert_rows, insert_with_ids, update_rows
from memberops.loyalty.ledger import LedgerWriter
from memberops.loyalty.lots import expiry_of
from memberops.loyalty.offers import Gift
from memberops.loyalty.programme import Programme
from memberops.loyalty.tiers import TierChange, growth_window, next_downgrade_date, upgrade, upgrade_gifts
from memberops.loyalty.versions import ActiveProgramme
from memberops.models import GrowthEntry, MemberTier, TierChangeRecord, table_of


@dataclass
class TierState:
    """A member's tier row as this transaction sees it."""

    person_id: int
    tier: str
    floor: str | None
    since: datetime
    growth_total: int
    gifted_tiers: list[str]
    next_evaluation_on: date | None
    stored: bool
    changed: bool = False


@dataclass(frozen=True)
class PlannedGift:
    """An upgrade gift's coupons and packs, to issue once the tier change is written."""

    person_id: int
    tier: str
    gift: Gift
    key: str
    at: datetime


@dataclass
class _Timeline:
    """A member's growth for window sums: a fixed part, plus single entries around it.

    ``base`` is the growth of ``[core_start, core_end)``, summed by the database; every window
    asked for must contain that span. The entries before and after it (and the ones planned in
    this transaction) are kept one by one, sorted by ``occurred_at``.
    """

    base: int = 0
    core_start: datetime | None = None
    core_end: datetime | None = None
    instants: list[datetime] = field(default_factory=list)
    deltas: list[int] = field(default_factory=list)

    def add(self, at: datetime, delta: int) -> None:
        position = bisect.bisect_right(self.instants, at)
        self.instants.insert(position, at)
        self.deltas.insert(position, delta)

    def total(self, start: datetime, end: datetime) -> int:
        if (
            self.core_start is not None
            and self.core_end is not None
            and (start > self.core_start or end < self.core_end)
        ):
            raise ValueError("the window does not cover the span the timeline was loaded for")
        low = bisect.bisect_left(self.instants, start)
        high = bisect.bisect_left(self.instants, end)
        return self.base + sum(self.deltas[low:high])


def lowest_tier(programme: Programme) -> str:
    return programme.tiers[0].code


def known_tier(programme: Programme, code: str) -> str:
    """Return ``code`` if the programme has that tier, else its lowest tier (a retired tier)."""
    return code if code in programme.tier_ranks else lowest_tier(programme)


@dataclass
class GrowthWriter:
    """Plans growth entries and tier changes for locked members and writes them in sets."""

    session: Session
    now: datetime
    time_zone: ZoneInfo
    emit_events: bool = True
    tiers: dict[int, TierState] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    events: list[DomainEvent] = field(default_factory=list)
    timelines: dict[int, _Timeline] = field(default_factory=dict)
    gifts: list[PlannedGift] = field(default_factory=list)
    _windows: dict[date, tuple[datetime, datetime]] = field(default_factory=dict)
    _timeline_span: tuple[datetime, datetime, datetime] | None = None

    def load(self, person_ids: Iterable[int], programme: Programme) -> dict[int, TierState]:
        """Load (or start) the tier rows of locked members."""
        missing = sorted(set(person_ids) - set(self.tiers))
        for part in chunks(missing):
            # Columns, not ORM objects: tier rows change through Core updates (see ``flush``).
            rows = fetch(
                self.session,
                select(
                    MemberTier.person_id,
                    MemberTier.tier,
                    MemberTier.floor,
                    MemberTier.since,
                    MemberTier.growth_total,
                    MemberTier.gifted_tiers,
                    MemberTier.next_evaluation_on,
                ).where(MemberTier.person_id.in_(part)),
            )
            for person_id, tier, floor, since, total, gifted, next_on in rows:
                self.tiers[person_id] = TierState(
                    person_id, tier, floor, since, int(total), list(gifted), next_on, stored=True
                )
        for person_id in missing:
            if person_id not in self.tiers:
                self.tiers[person_id] = TierState(
                    person_id, lowest_tier(programme), None, self.now, 0, [], None, stored=False
                )
        return self.tiers

    def load_timelines(
        self, person_ids: Iterable[int], first: tuple[datetime, datetime], last: tuple[datetime, datetime]
    ) -> None:
        """Load what members' window sums need, for windows from ``first`` to ``last``.

        Every window between the first and the last (``[start, end)`` pairs, both moving forward)
        contains ``[last start, first end)``: the database sums that span once per member and only
        the entries outside it travel, so a member with years of history costs one row plus the
        entries of the few days a batch spans, not every entry of the window again per batch.
        """
        (first_start, first_end), (last_start, _) = first, last
        if last_start >= first_end:  # the windows share nothing: keep every entry
            last_start = first_end = first_start
        span = (first_start, last_start, first_end)
        wanted = sorted(set(person_ids) - set(self.timelines))
        if self._timeline_span is not None and span != self._timeline_span:
            wanted = sorted(set(person_ids))
            self.timelines = {}
        self._timeline_span = span
        for person_id in wanted:
            self.timelines[person_id] = _Timeline()
            if last_start < first_end:
                self.timelines[person_id].core_start = last_start
                self.timelines[person_id].core_end = first_end
        if last_start < first_end:
            for person_id, total in window_growth_of(self.session, wanted, last_start, first_end).items():
                self.timelines[person_id].base = total
        for part in chunks(wanted):
            rows = fetch(
                self.session,
                select(GrowthEntry.person_id, GrowthEntry.occurred_at, GrowthEntry.delta)
                .where(
                    GrowthEntry.person_id.in_(part),
                    GrowthEntry.occurred_at >= first_start,
                    or_(GrowthEntry.occurred_at < last_start, GrowthEntry.occurred_at >= first_end),
                )
                .order_by(GrowthEntry.person_id, GrowthEntry.occurred_at),
            )
            for person_id, occurred_at, delta in rows:
                self.timelines[person_id].add(occurred_at, int(delta))

    def window_growth(self, person_id: int, programme: Programme, on: date) -> int:
        """Growth in the rolling window that ends when business day ``on`` begins (loaded timelines)."""
        window = self._windows.get(on)
        if window is None:  # asked for once per order: the instants depend on the day alone
            window = self._windows[on] = growth_window(programme.evaluation, on, self.time_zone)
        return self.timelines[person_id].total(*window)

    def add(
        self,
        person_id: int,
        delta: int,
        *,
        kind: str,
        key: str,
        reason: str,
        source: str,
        actor: str,
        programme_version_id: int | None,
        occurred_at: datetime,
        source_ref: str | None = None,
    ) -> int:
        """Plan one growth entry; return its index."""
        state = self.tiers[person_id]
        state.growth_total += delta
        state.changed = True
        if person_id in self.timelines:
            self.timelines[person_id].add(occurred_at, delta)
        self.entries.append(
            {
                "person_id": person_id,
                "kind": kind,
                "delta": delta,
                "reason": reason[:200],
                "source": source,
                "source_ref": source_ref,
                "actor": actor,
                "idempotency_key": key,
                "programme_version_id": programme_version_id,
                "occurred_at": occurred_at,
                "created_at": self.now,
            }
        )
        return len(self.entries) - 1

    def change_tier(
        self,
        person_id: int,
        change: TierChange,
        *,
        programme: Programme,
        programme_version_id: int | None,
        growth: int,
        key: str,
        actor: str,
        at: datetime,
        note: str | None = None,
        gifts: list[dict[str, Any]] | None = None,
    ) -> None:
        """Plan a tier move: the row, a history record and a ``tier.changed`` event."""
        state = self.tiers[person_id]
        state.tier = change.to_tier
        state.since = at
        state.changed = True
        state.next_evaluation_on = self.next_evaluation(programme, change.to_tier, at)
        self.history.append(
            {
                "person_id": person_id,
                "from_tier": change.from_tier,
                "to_tier": change.to_tier,
                "direction": change.direction,
                "reason": change.reason,
                "growth": growth,
                "programme_version_id": programme_version_id,
                "actor": actor,
                "idempotency_key": key,
                "note": note,
                "changed_at": at,
            }
        )
        self.events.append(
            DomainEvent(
                topic="tier.changed",
                payload={
                    "person_id": person_id,
                    "from_tier": change.from_tier,
                    "to_tier": change.to_tier,
                    "direction": change.direction,
                    "reason": change.reason,
                    "growth": growth,
                    "gifts": gifts or [],
                    "changed_at": at.isoformat(),
                },
                key=f"tier:{key}",
                occurred_at=at,
                person_id=person_id,
            )
        )

    def next_evaluation(self, programme: Programme, tier: str, at: datetime) -> date | None:
        """The next downgrade date of a member now in ``tier`` (None when they cannot go down)."""
        if programme.evaluation.max_tiers_down == 0 or programme.rank(tier) == 0:
            return None
        today = at.astimezone(self.time_zone).date()
        return next_downgrade_date(programme.evaluation, today + timedelta(days=1))

    def flush(self) -> list[int]:
        """Write the planned entries, history, tier rows and events; return the growth entry ids."""
        ids = insert_with_ids(self.session, table_of(GrowthEntry), self.entries)
        insert_rows(self.session, table_of(TierChangeRecord), self.history)
        changed = sorted((s for s in self.tiers.values() if s.changed), key=lambda s: s.person_id)
        rows = {
            s.person_id: {
                "person_id": s.person_id,
                "tier": s.tier,
                "floor": s.floor,
                "since": s.since,
                "growth_total": s.growth_total,
                "gifted_tiers": s.gifted_tiers,
                "next_evaluation_on": s.next_evaluation_on,
                "updated_at": self.now,
            }
            for s in changed
        }
        table = table_of(MemberTier)
        insert_rows(self.session, table, [rows[s.person_id] for s in changed if not s.stored])
        update_rows(self.session, table, "person_id", [rows[s.person_id] for s in changed if s.stored])
        for state in changed:
            state.stored, state.changed = True, False
        if self.events and self.emit_events:
            emit_many(self.session, self.events, now=self.now)
        self.entries, self.history, self.events = [], [], []
        return ids


def upgrade_now(
    writer: LedgerWriter,
    growth: GrowthWriter,
    active: ActiveProgramme,
    person_id: int,
    *,
    at: datetime,
    key: str,
    source_ref: str | None,
    actor: str,
) -> None:
    """Raise a member at once to the tier their window growth (or floor) reaches, with the gifts.

    Every tier passed gives its upgrade gift once (``upgrade_gifts``): its points are credited
    here; its coupons and packs are planned in ``growth.gifts``, which the caller issues after
    ``flush`` (``coupon_service.issue_upgrade_gifts``), and named in the ``tier.changed`` event.
    Needs the member's account locked, tier row loaded and growth timeline loaded.
    """
    rules = active.programme
    state = growth.tiers[person_id]
    tier = known_tier(rules, state.tier)
    if rules.tier_ranks[tier] == len(rules.tiers) - 1:
        return  # at the top already: nothing to reach, whatever the window holds
    day = at.astimezone(growth.time_zone).date()
    window = growth.window_growth(person_id, rules, day + timedelta(days=1))
    change = upgrade(rules, tier, window, floor=state.floor)
    if change is None:
        return
    gifts = upgrade_gifts(rules, tier, change.to_tier, gifted_tiers=state.gifted_tiers)
    account = writer.account(person_id)
    for gift in gifts:
        if gift.gift.points > 0:
            writer.credit(
                account,
                gift.gift.points,
                kind="gift",
                key=f"{key}:gift:{gift.tier}",
                reason=f"upgrade gift of tier {gift.tier}",
                source="tier_gift",
                source_ref=source_ref,
                actor=actor,
                programme_version_id=active.version_id,
                earned_at=at,
                expires_at=expiry_of(at, rules.expiry, growth.time_zone),
                topic="points.earned",
                payload={"tier": gift.tier, "points": gift.gift.points, "gift": True},
            )
        if gift.gift.coupons or gift.gift.packs:
            growth.gifts.append(PlannedGift(person_id, gift.tier, gift.gift, f"{key}:gift:{gift.tier}", at))
        if gift.tier not in state.gifted_tiers:
            state.gifted_tiers = [*state.gifted_tiers, gift.tier]
    growth.change_tier(
        person_id,
        change,
        programme=rules,
        programme_version_id=active.version_id,
        growth=window,
        key=f"{key}:up:{change.to_tier}",
        actor=actor,
        at=at,
        gifts=[
            {
                "tier": gift.tier,
                "points": gift.gift.points,
                "coupons": list(gift.gift.coupons),
                "packs": list(gift.gift.packs),
            }
            for gift in gifts
        ],
    )


def window_growth_of(
    session: Session, person_ids: Iterable[int], start: datetime, end: datetime
) -> Mapping[int, int]:
    """Return each member's growth with ``start <= occurred_at < end`` (0 for none), one query per chunk."""
    wanted = sorted(set(person_ids))
    found = dict.fromkeys(wanted, 0)
    for part in chunks(wanted):
        rows = fetch(
            session,
            select(GrowthEntry.person_id, func.coalesce(func.sum(GrowthEntry.delta), 0))
            .where(
                GrowthEntry.person_id.in_(part),
                GrowthEntry.occurred_at >= start,
                GrowthEntry.occurred_at < end,
            )
            .group_by(GrowthEntry.person_id),
        )
        found.update({person_id: int(total) for person_id, total in rows})
    return found
