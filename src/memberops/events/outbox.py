"""Emit domain events into the transactional outbox, in the caller's transaction.

An event is stored in the same transaction as the change it reports (Polar ADR-0003): if the
change rolls back, so does the event and its deliveries; if it commits, the event is there for the
dispatcher however the process dies afterwards. ``emit`` never commits.

Deliveries are fanned out here, at emit time, rather than by the dispatcher:

- the set of receivers is the one active when the event happened, as with Stripe's webhooks: a
  subscription added later does not receive yesterday's backlog, and one switched off does not
  make events vanish that were due to it;
- the dispatcher then has one query, "pending deliveries that are due", with no per-subscription
  cursor over the event stream to keep consistent;
- the price is one read of the (small) subscriptions table per ``emit_many`` call, paid once per
  batch by bulk writers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from memberops.events.rules import matches_any, topic_rejection_reason
from memberops.kit.clock import utc_now
from memberops.kit.db import insert_rows
from memberops.kit.errors import ValidationFailed
from memberops.models import OutboxEvent, WebhookDelivery, WebhookSubscription, table_of
from memberops.models.outbox import DELIVERY_PENDING

_MAX_KEY_LENGTH = 200
#: Keys looked up per statement when finding the ids of replayed events (well under SQLite's limit).
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class DomainEvent:
    """One event to emit: what happened (``topic``), to whom, when, and the key that makes it unique.

    ``key`` is the domain's idempotency key (e.g. ``points:entry:123``): emitting it again stores
    nothing. ``payload`` must be JSON-ready (strings, numbers, booleans, None, lists, dicts);
    money as integer fen, times as ISO 8601 strings.
    """

    topic: str
    payload: Mapping[str, Any]
    key: str
    occurred_at: datetime
    person_id: int | None = None


@dataclass(frozen=True)
class Emitted:
    """The outcome of emitting one event: its id, and whether this call stored it (False on replay)."""

    event_id: int
    created: bool
    deliveries: int = 0


def emit(
    session: Session,
    topic: str,
    payload: Mapping[str, Any],
    *,
    key: str,
    occurred_at: datetime,
    person_id: int | None = None,
    now: datetime | None = None,
) -> Emitted:
    """Store one domain event in the caller's transaction and queue its webhook deliveries.

    Replaying the same ``key`` is a no-op that returns the first event's id. Never commits.
    """
    [emitted] = emit_many(
        session,
        [DomainEvent(topic=topic, payload=payload, key=key, occurred_at=occurred_at, person_id=person_id)],
        now=now,
    )
    return emitted


def _rejection_reason(event: DomainEvent) -> str | None:
    reason = topic_rejection_reason(event.topic)
    if reason is not None:
        return reason
    if not event.key or len(event.key) > _MAX_KEY_LENGTH:
        return f"an event key must be 1–{_MAX_KEY_LENGTH} characters"
    if event.occurred_at.tzinfo is None:
        return f"event {event.key!r}: occurred_at must be timezone-aware"
    return None


def _insert_ignoring_replays(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """INSERT … ON CONFLICT (idempotency_key) DO NOTHING; return the ids of the rows stored, by key.

    On PostgreSQL a concurrent transaction inserting the same key makes this one wait for it and
    then skip the row, so two writers racing with one key store one event.
    """
    table = table_of(OutboxEvent)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.idempotency_key])
        .returning(table.c.id, table.c.idempotency_key)
    )
    result = session.connection().execute(statement, rows if len(rows) > 1 else rows[0])
    return {str(key): int(event_id) for event_id, key in result}


def _existing_ids(session: Session, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        rows = session.execute(
            select(OutboxEvent.idempotency_key, OutboxEvent.id).where(OutboxEvent.idempotency_key.in_(chunk))
        )
        found.update({str(key): int(event_id) for key, event_id in rows})
    return found


def emit_many(
    session: Session, events: Sequence[DomainEvent], *, now: datetime | None = None
) -> list[Emitted]:
    """Store domain events in the caller's transaction and queue their deliveries; one result per event.

    Every event is checked before anything is written, so a bad one writes nothing. Events whose
    key is already stored (or repeats earlier in ``events``) are skipped and reported with the
    stored id and ``created=False``. Statements: one insert, one read of the subscriptions, one
    insert of deliveries, plus a key lookup only when there were replays. Never commits.
    """
    if not events:
        return []
    for event in events:
        reason = _rejection_reason(event)
        if reason is not None:
            raise ValidationFailed(reason)
    now = now or utc_now()
    first_by_key: dict[str, DomainEvent] = {}
    for event in events:
        first_by_key.setdefault(event.key, event)
    rows = [
        {
            "topic": event.topic,
            "person_id": event.person_id,
            "payload": dict(event.payload),
            "idempotency_key": key,
            "occurred_at": event.occurred_at,
            "created_at": now,
        }
        for key, event in first_by_key.items()
    ]
    created = _insert_ignoring_replays(session, rows)
    replayed = [key for key in first_by_key if key not in created]
    existing = _existing_ids(session, replayed) if replayed else {}

    deliveries_per_event: dict[int, int] = {}
    if created:
        subscriptions = session.execute(
            select(WebhookSubscription.id, WebhookSubscription.topics)
            .where(WebhookSubscription.active.is_(True))
            .order_by(WebhookSubscription.id)
        ).all()
        delivery_rows = []
        for key, event_id in created.items():
            topic = first_by_key[key].topic
            for subscription_id, patterns in subscriptions:
                if matches_any(patterns, topic):
                    delivery_rows.append(
                        {
                            "subscription_id": subscription_id,
                            "event_id": event_id,
                            "status": DELIVERY_PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                    )
                    deliveries_per_event[event_id] = deliveries_per_event.get(event_id, 0) + 1
        insert_rows(session, table_of(WebhookDelivery), delivery_rows)

    results: list[Emitted] = []
    reported: set[str] = set()
    for event in events:
        if event.key in created and event.key not in reported:
            event_id = created[event.key]
            results.append(Emitted(event_id, True, deliveries_per_event.get(event_id, 0)))
            reported.add(event.key)
        else:
            results.append(Emitted(created.get(event.key) or existing[event.key], False))
    return results
