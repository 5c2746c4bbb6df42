"""Loyalty use cases, assembled: what the API, the CLI, the importer and other services call.

The work is done in ``versions`` (programmes), ``purchases`` (earning and refunds), ``points``
(spend, restore, adjust), ``growth`` (growth and tiers), ``jobs`` (expiry, tier evaluation,
replay), ``queries`` and ``check``; this class binds them to the brand's time zone. Nothing here
commits: the entry point's unit of work does. ``spend_points`` and ``restore_points`` are the
functions other services (rewards, checkout) call inside their own transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from memberops.kit.clock import utc_now, zone
from memberops.kit.errors import ValidationFailed
from memberops.loyalty import jobs, queries
from memberops.loyalty.check import Problem, check
from memberops.loyalty.growth import GrowthWriter, known_tier
from memberops.loyalty.ledger import InsufficientPoints, LedgerWriter
from memberops.loyalty.points import adjust_points, restore_points, spend_points
from memberops.loyalty.programme import Programme
from memberops.loyalty.purchases import (
    OrderEarned,
    RefundTakenBack,
    earn_for_orders,
    take_back_refunds,
)
from memberops.loyalty.tasks import complete_task
from memberops.loyalty.tiers import TierChange
from memberops.loyalty.versions import ActiveProgramme, active_programme, apply_programme, require_programme
from memberops.models import PointsEntry

__all__ = [
    "InsufficientPoints",
    "LoyaltyService",
    "Problem",
    "restore_points",
    "spend_points",
]


class LoyaltyService:
    """The loyalty ledger's use cases for one brand (its time zone)."""

    def __init__(self, time_zone: str) -> None:
        self.time_zone: ZoneInfo = zone(time_zone)

    # ------------------------------------------------------------------ programme

    def apply_programme(
        self, session: Session, programme: Programme, *, actor: str
    ) -> tuple[ActiveProgramme, bool]:
        """Make ``programme`` the active version (see ``versions.apply_programme``)."""
        return apply_programme(session, programme, actor=actor)

    def active_programme(self, session: Session) -> ActiveProgramme | None:
        """Return the active programme version, if any."""
        return active_programme(session)

    # ------------------------------------------------------------------ purchases

    def earn_for_order(
        self, session: Session, order_id: int, *, actor: str = "loyalty"
    ) -> OrderEarned | None:
        """Earn for one order; None when it cannot earn (guest, not a member, no programme)."""
        found = earn_for_orders(session, [order_id], time_zone=self.time_zone, actor=actor)
        return found[0] if found else None

    def earn_for_orders(
        self, session: Session, order_ids: Sequence[int], *, actor: str = "loyalty"
    ) -> list[OrderEarned]:
        """Earn for a batch of orders, set-based (see ``purchases.earn_for_orders``)."""
        return earn_for_orders(session, order_ids, time_zone=self.time_zone, actor=actor)

    def take_back_refunds(
        self, session: Session, refund_ids: Sequence[int], *, actor: str = "loyalty"
    ) -> list[RefundTakenBack]:
        """Take back what refunds' orders earned (see ``purchases.take_back_refunds``)."""
        return take_back_refunds(session, refund_ids, time_zone=self.time_zone, actor=actor)

    # ------------------------------------------------------------------ points

    def spend(
        self,
        session: Session,
        person_id: int,
        amount: int,
        *,
        key: str,
        reason: str,
        source: str,
        actor: str,
        source_ref: str | None = None,
    ) -> PointsEntry:
        """Spend points (``InsufficientPoints`` when short, nothing written)."""
        return spend_points(
            session,
            person_id,
            amount,
            key=key,
            reason=reason,
            source=source,
            actor=actor,
            source_ref=source_ref,
        )

    def restore(self, session: Session, spend_key: str, *, key: str, actor: str) -> PointsEntry:
        """Put a spend's points back into the lots it drew on."""
        return restore_points(session, spend_key, key=key, actor=actor)

    def adjust(
        self, session: Session, person_id: int, amount: int, *, reason: str, actor: str, key: str
    ) -> PointsEntry:
        """Add or remove points by hand, with a reason."""
        return adjust_points(
            session, person_id, amount, reason=reason, actor=actor, key=key, time_zone=self.time_zone
        )

    # ------------------------------------------------------------------ growth and tiers

    def reward_task(self, session: Session, person_id: int, task: str, *, key: str, actor: str) -> int:
        """Reward a growth task (growth value and points) once per its limit; return the growth given.

        A replay of ``key`` gives nothing again; a task past its per-member limit is a ``Conflict``
        (``tasks.TaskLimitReached``). See ``loyalty.tasks`` for tasks completed by events.
        """
        return complete_task(session, person_id, task, key=key, actor=actor, time_zone=self.time_zone).growth

    def set_floor(
        self, session: Session, person_id: int, floor: str | None, *, actor: str, reason: str
    ) -> str:
        """Set (or clear) a member's manual tier floor; a floor above their tier raises them at once.

        Returns the member's tier afterwards. Clearing a floor never lowers the tier by itself:
        the next scheduled evaluation decides.
        """
        active = require_programme(session)
        rules = active.programme
        if floor is not None:
            rules.rank(floor)  # NotFound for an unknown tier
        if not reason.strip():
            raise ValidationFailed("give a reason for the floor")
        now = utc_now()
        writer = LedgerWriter(session, now)
        writer.lock([person_id])
        growth = GrowthWriter(session, now, self.time_zone)
        state = growth.load([person_id], rules)[person_id]
        state.floor, state.changed = floor, True
        current = known_tier(rules, state.tier)
        if floor is not None and rules.rank(floor) > rules.rank(current):
            growth.change_tier(
                person_id,
                TierChange(current, floor, "up", "floor"),
                programme=rules,
                programme_version_id=active.version_id,
                growth=0,
                key=f"floor:{person_id}:{now.isoformat()}",
                actor=actor,
                at=now,
                note=reason,
            )
        growth.flush()
        return state.tier

    # ------------------------------------------------------------------ jobs

    def expire_due(
        self, session: Session, now: datetime | None = None, *, limit: int = jobs.CHUNK
    ) -> jobs.ExpiryReport:
        """Expire due lots for up to ``limit`` members (see ``jobs.expire_due``)."""
        return jobs.expire_due(session, now, limit=limit)

    def notify_expiring(self, session: Session, now: datetime | None = None, *, within: timedelta) -> int:
        """Emit ``points.expiring`` notices (see ``jobs.notify_expiring``)."""
        return jobs.notify_expiring(session, now, within=within)

    def evaluate_tiers(
        self, session: Session, today: date | None = None, *, limit: int = jobs.CHUNK
    ) -> jobs.TierReport:
        """Run due downgrades and warnings (see ``jobs.evaluate_tiers``); ``today`` in brand time."""
        now = utc_now()
        today = today or now.astimezone(self.time_zone).date()
        return jobs.evaluate_tiers(session, today, time_zone=self.time_zone, now=now, limit=limit)

    def replay(
        self,
        sessions: sessionmaker[Session],
        *,
        batch_size: int = 2000,
        progress: Callable[[int, int], None] | None = None,
        between_batches: Callable[[datetime], None] | None = None,
    ) -> jobs.ReplayReport:
        """Earn for all history not yet earned (see ``jobs.replay``); runs its own transactions."""
        return jobs.replay(
            sessions,
            time_zone=self.time_zone,
            batch_size=batch_size,
            progress=progress,
            between_batches=between_batches,
        )

    # ------------------------------------------------------------------ queries

    def points_summary(self, session: Session, person_id: int) -> dict[str, Any]:
        """Balance, spendable now, debt and points expiring soon."""
        return queries.points_summary(session, person_id, now=utc_now())

    def points_history(
        self, session: Session, person_id: int, *, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """A member's entries, newest first."""
        return queries.points_history(session, person_id, limit=limit, before_id=before_id)

    def tier_summary(self, session: Session, person_id: int) -> dict[str, Any]:
        """Tier, growth, N to next tier and the downgrade warning."""
        return queries.tier_summary(session, person_id, now=utc_now(), time_zone=self.time_zone)

    def check(self, session: Session) -> list[Problem]:
        """Every broken invariant of the ledger (empty when all is well)."""
        return check(session)
