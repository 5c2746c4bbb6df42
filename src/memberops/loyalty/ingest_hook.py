"""Orders and refunds earn and take back points as they are ingested, whichever door they came in by.

``LoyaltyIngestService`` is the ingest service with one step added after each write, in the same
transaction: new orders earn (set-based, one batch per import batch), refunds stored with them or
later take back. With no programme applied the step costs one indexed lookup per batch and writes
nothing, so ingest keeps working (and the bulk import stays fast) before a brand sets one up.
Orders stored before a programme was applied earn through ``memberops loyalty replay``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.identity.repository import chunks
from memberops.identity.service import IdentityService
from memberops.ingest.records import EventIn, OrderIn, RefundIn
from memberops.ingest.service import EventOutcome, IngestService, OrderOutcome
from memberops.kit.clock import utc_now
from memberops.loyalty.purchases import earn_for_orders, members_at, take_back_refunds
from memberops.loyalty.service import LoyaltyService
from memberops.loyalty.tasks import TaskDone, reward_tasks
from memberops.loyalty.versions import active_programme
from memberops.models import Refund


class LoyaltyIngestService(IngestService):
    """``IngestService`` whose stored orders earn and whose refunds take back, in one transaction."""

    def __init__(self, identity: IdentityService, loyalty: LoyaltyService) -> None:
        super().__init__(identity)
        self.loyalty = loyalty

    def ingest_orders(self, session: Session, orders: Sequence[OrderIn], *, actor: str) -> list[OrderOutcome]:
        """Store orders as ``IngestService`` does, then earn for the new ones of members."""
        outcomes = super().ingest_orders(session, orders, actor=actor)
        created = [o.order_id for o in outcomes if o.created and o.order_id is not None and o.person_id]
        if not created:
            return outcomes
        active = active_programme(session)
        if active is None:
            return outcomes
        zone = self.loyalty.time_zone
        earned = earn_for_orders(session, created, time_zone=zone, programme=active)
        earned_ids = [item.order_id for item in earned if item.created]
        if any(order.refund is not None for order in orders) and earned_ids:
            refund_ids: list[int] = []
            for part in chunks(earned_ids):
                refund_ids += session.scalars(select(Refund.id).where(Refund.order_id.in_(part)))
            take_back_refunds(session, refund_ids, time_zone=zone, programme=active)
        return outcomes

    def ingest_events(self, session: Session, events: Sequence[EventIn], *, actor: str) -> list[EventOutcome]:
        """Store events as ``IngestService`` does, then reward the growth tasks they complete.

        A task bound to an event type (``on_event``) is completed by each new event of that type
        whose person held a membership when it happened; the event id is the completion's key, and
        completions past the task's limit (a second review) are simply not rewarded.
        """
        outcomes = super().ingest_events(session, events, actor=actor)
        created = [
            (event, outcome)
            for event, outcome in zip(events, outcomes, strict=True)
            if outcome.created and outcome.person_id is not None and outcome.event_id is not None
        ]
        if not created:
            return outcomes
        active = active_programme(session)
        if active is None:
            return outcomes
        tasks_by_event: dict[str, list[str]] = {}
        for task in active.programme.growth.tasks:
            if task.on_event is not None:
                tasks_by_event.setdefault(task.on_event, []).append(task.code)
        candidates = [(event, outcome) for event, outcome in created if event.kind in tasks_by_event]
        if not candidates:
            return outcomes
        members = members_at(session, [(o.person_id, e.occurred_at) for e, o in candidates if o.person_id])
        done = [
            TaskDone(outcome.person_id, task, f"event:{outcome.event_id}:{task}", event.occurred_at)
            for event, outcome in candidates
            if outcome.person_id is not None and (outcome.person_id, event.occurred_at) in members
            for task in tasks_by_event[event.kind]
        ]
        if done:
            reward_tasks(
                session, done, active=active, time_zone=self.loyalty.time_zone, actor=actor, now=utc_now()
            )
        return outcomes

    def ingest_refund(self, session: Session, refund: RefundIn) -> tuple[Refund, bool]:
        """Store a refund as ``IngestService`` does, then take back what the refunded part earned."""
        row, created = super().ingest_refund(session, refund)
        if created:
            take_back_refunds(session, [row.id], time_zone=self.loyalty.time_zone)
        return row, created
