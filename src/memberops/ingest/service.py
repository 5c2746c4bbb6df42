"""Ingestion use cases: store orders, refunds and events, each idempotent on its natural key.

``ingest_orders`` and ``ingest_events`` take batches: the API sends a batch of one, the importer
thousands, and both get the same checks, the same OneID resolution and the same outcomes.
Services never commit; the caller's unit of work does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from memberops.identity.identifiers import IdentifierKey, IdentifierKind
from memberops.identity.repository import chunks
from memberops.identity.service import Attribution, IdentityService
from memberops.ingest.records import EventIn, OrderIn, RefundIn
from memberops.kit.clock import utc_now
from memberops.kit.db import insert_rows, insert_with_ids, lock_keys, one_of
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.models import Channel, Consent, Event, Membership, Order, OrderLine, Refund, Store, table_of

#: The outcome of the second of two records with one natural key in the same batch.
DUPLICATE_IN_BATCH = "duplicate in this batch"


@dataclass(frozen=True)
class OrderOutcome:
    """What became of one order: stored now, already there (``created`` False), or rejected."""

    order_id: int | None
    person_id: int | None
    created: bool
    rejection: str | None = None


@dataclass(frozen=True)
class EventOutcome:
    """What became of one event: stored now, already there, or rejected."""

    event_id: int | None
    person_id: int | None
    created: bool
    rejection: str | None = None


class IngestService:
    """Stores what channels report, attributing each record to a person through OneID."""

    def __init__(self, identity: IdentityService) -> None:
        self.identity = identity
        self._channels: set[str] = set()
        self._stores: dict[str, int] = {}

    # ------------------------------------------------------------------ orders

    def ingest_orders(self, session: Session, orders: Sequence[OrderIn], *, actor: str) -> list[OrderOutcome]:
        """Store new orders (with lines and any refund); a known ``(source, external_id)`` is left alone."""
        keys = sorted({(order.source, order.external_id) for order in orders})
        self.identity.lock(
            session,
            sorted({key for order in orders for key in order.identifiers}),
            [f"order:{source}:{external_id}" for source, external_id in keys],
        )
        existing = self._existing_orders(session, keys)
        channels = self._known_channels(session, {order.source for order in orders})
        codes = sorted({order.store_code for order in orders if order.store_code})
        store_ids = self._store_ids(session, codes)

        outcomes: list[OrderOutcome | None] = [None] * len(orders)
        fresh: list[int] = []
        seen: set[tuple[str, str]] = set()
        for index, order in enumerate(orders):
            key = (order.source, order.external_id)
            if key in existing:
                order_id, person_id = existing[key]
                outcomes[index] = OrderOutcome(order_id, person_id, created=False)
            elif key in seen:
                outcomes[index] = OrderOutcome(None, None, created=False, rejection=DUPLICATE_IN_BATCH)
            elif order.source not in channels:
                outcomes[index] = OrderOutcome(
                    None, None, False, f"source {order.source!r} is not a known channel"
                )
            elif order.store_code and order.store_code not in store_ids:
                outcomes[index] = OrderOutcome(
                    None, None, False, f"store {order.store_code!r} is not a known store"
                )
            else:
                seen.add(key)
                fresh.append(index)
        if not fresh:
            return [outcome for outcome in outcomes if outcome is not None]

        attributions = self.identity.resolve(
            session, [(orders[i].source, orders[i].identifiers) for i in fresh], actor=actor
        )
        now = utc_now()
        rows = []
        for index, attribution in zip(fresh, attributions, strict=True):
            order = orders[index]
            rows.append(
                {
                    "source": order.source,
                    "external_id": order.external_id,
                    "person_id": attribution.person_id if attribution else None,
                    "identifier_id": attribution.identifier_id if attribution else None,
                    "store_id": store_ids.get(order.store_code) if order.store_code else None,
                    "paid_at": order.paid_at,
                    "amount_fen": order.amount_fen,
                    "share_id": order.share_id,
                    "created_at": now,
                }
            )
        order_ids = insert_with_ids(session, table_of(Order), rows)
        line_rows = [
            {
                "order_id": order_id,
                "line_no": number,
                "sku": line.sku,
                "category": line.category,
                "quantity": line.quantity,
                "amount_fen": line.amount_fen,
            }
            for index, order_id in zip(fresh, order_ids, strict=True)
            for number, line in enumerate(orders[index].lines, start=1)
        ]
        insert_rows(session, table_of(OrderLine), line_rows)
        refund_rows = [
            {
                "order_id": order_id,
                "source": refund.source,
                "external_id": refund.external_id,
                "refunded_at": refund.refunded_at,
                "amount_fen": refund.amount_fen,
                "reason": refund.reason,
                "created_at": now,
            }
            for index, order_id in zip(fresh, order_ids, strict=True)
            if (refund := orders[index].refund) is not None
        ]
        insert_rows(session, table_of(Refund), refund_rows)
        for index, order_id, attribution in zip(fresh, order_ids, attributions, strict=True):
            outcomes[index] = OrderOutcome(
                order_id, attribution.person_id if attribution else None, created=True
            )
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _existing_orders(
        session: Session, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, int | None]]:
        found: dict[tuple[str, str], tuple[int, int | None]] = {}
        by_source: dict[str, list[str]] = {}
        for source, external_id in keys:
            by_source.setdefault(source, []).append(external_id)
        orders = table_of(Order)
        connection = session.connection()  # Core: this runs for every order, the ORM adds nothing
        for source, external_ids in by_source.items():
            for part in chunks(external_ids):
                rows = connection.execute(
                    select(orders.c.external_id, orders.c.id, orders.c.person_id).where(
                        orders.c.source == source, one_of(orders.c.external_id, part)
                    )
                )
                for external_id, order_id, person_id in rows:
                    found[(source, external_id)] = (order_id, person_id)
        return found

    def _known_channels(self, session: Session, codes: set[str]) -> set[str]:
        """Return which of ``codes`` are channels; only codes not seen before cost a query.

        Channels and stores are only ever added, never removed, so a code once found stays valid
        and the cache needs no expiry; a code added since is found by the query on a miss.
        """
        missing = sorted(codes - self._channels)
        if missing:
            self._channels |= set(session.scalars(select(Channel.code).where(Channel.code.in_(missing))))
        return codes & self._channels

    def _store_ids(self, session: Session, codes: Sequence[str]) -> dict[str, int]:
        """Return ``code -> id`` for the known stores among ``codes`` (cached like channels)."""
        missing = [code for code in codes if code not in self._stores]
        for part in chunks(missing):
            found = session.execute(select(Store.code, Store.id).where(Store.code.in_(part))).all()
            self._stores.update((code, store_id) for code, store_id in found)
        return {code: self._stores[code] for code in codes if code in self._stores}

    # ------------------------------------------------------------------ refunds

    def ingest_refund(self, session: Session, refund: RefundIn) -> tuple[Refund, bool]:
        """Store a refund on a known order; a replay returns the first refund and changes nothing.

        Refunds of one order never add up to more than it: the order row is locked, so two refunds
        racing for the last yuan cannot both pass the check.
        """
        if not 0 < len(refund.external_id) <= 64 or len(refund.reason or "") > 200:
            raise ValidationFailed(
                "a refund needs an external_id of 1 to 64 characters and a reason of at most 200"
            )
        lock_keys(session, [f"order:{refund.source}:{refund.order_external_id}"])
        existing = session.scalars(
            select(Refund).where(Refund.source == refund.source, Refund.external_id == refund.external_id)
        ).first()
        order = session.scalars(
            select(Order)
            .where(Order.source == refund.source, Order.external_id == refund.order_external_id)
            .with_for_update()
        ).first()
        if existing is not None:
            if order is None or existing.order_id != order.id or existing.amount_fen != refund.amount_fen:
                raise Conflict(
                    f"refund {refund.external_id!r} already exists with different content",
                    refund_id=existing.id,
                )
            return existing, False
        if order is None:
            raise NotFound(f"order {refund.source}/{refund.order_external_id} does not exist")
        if refund.amount_fen <= 0:
            raise ValidationFailed("a refund must be more than zero")
        if refund.refunded_at < order.paid_at:
            raise ValidationFailed("refunded_at is before the order was paid")
        already = session.scalar(
            select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(Refund.order_id == order.id)
        )
        if int(already or 0) + refund.amount_fen > order.amount_fen:
            raise Conflict(
                f"refunds would exceed the order: {order.amount_fen} fen paid, {already} fen refunded",
                paid_fen=order.amount_fen,
                refunded_fen=int(already or 0),
            )
        row = Refund(
            order_id=order.id,
            source=refund.source,
            external_id=refund.external_id,
            refunded_at=refund.refunded_at,
            amount_fen=refund.amount_fen,
            reason=refund.reason,
            created_at=utc_now(),
        )
        session.add(row)
        session.flush()
        return row, True

    # ------------------------------------------------------------------ events

    def ingest_events(self, session: Session, events: Sequence[EventIn], *, actor: str) -> list[EventOutcome]:
        """Store new events and apply what they mean (membership, consent), once per event."""
        self.identity.lock(
            session,
            sorted({key for event in events for key in event.identifiers}),
            [f"event:{event.dedup_key}" for event in events],
        )
        existing: dict[str, tuple[int, int]] = {}
        for part in chunks(sorted({event.dedup_key for event in events})):
            for key, event_id, person_id in session.execute(
                select(Event.dedup_key, Event.id, Event.person_id).where(one_of(Event.dedup_key, part))
            ):
                existing[key] = (event_id, person_id)
        channels = self._known_channels(session, {event.field for event in events})
        store_codes = sorted(
            {str(e.attributes["store"]) for e in events if e.kind == "register" and e.attributes.get("store")}
        )
        store_ids = self._store_ids(session, store_codes)

        outcomes: list[EventOutcome | None] = [None] * len(events)
        fresh: list[int] = []
        seen: set[str] = set()
        for index, event in enumerate(events):
            if event.dedup_key in existing:
                event_id, person_id = existing[event.dedup_key]
                outcomes[index] = EventOutcome(event_id, person_id, created=False)
            elif event.dedup_key in seen:
                outcomes[index] = EventOutcome(None, None, False, DUPLICATE_IN_BATCH)
            elif event.field not in channels:
                outcomes[index] = EventOutcome(
                    None, None, False, f"field {event.field!r} is not a known channel"
                )
            elif (
                event.kind == "register"
                and event.attributes.get("store")
                and str(event.attributes["store"]) not in store_ids
            ):
                outcomes[index] = EventOutcome(
                    None, None, False, f"store {event.attributes['store']!r} is not a known store"
                )
            else:
                seen.add(event.dedup_key)
                fresh.append(index)
        if fresh:
            self._store_events(session, events, fresh, outcomes, store_ids, actor)
        return [outcome for outcome in outcomes if outcome is not None]

    def _store_events(
        self,
        session: Session,
        events: Sequence[EventIn],
        fresh: list[int],
        outcomes: list[EventOutcome | None],
        store_ids: dict[str, int],
        actor: str,
    ) -> None:
        resolved = self.identity.resolve(
            session, [(events[i].field, events[i].identifiers) for i in fresh], actor=actor
        )
        attributions: list[Attribution] = []
        for attribution in resolved:
            assert attribution is not None  # parse_event guarantees an identifier
            attributions.append(attribution)
        now = utc_now()
        rows = []
        for index, attribution in zip(fresh, attributions, strict=True):
            event = events[index]
            rows.append(
                {
                    "dedup_key": event.dedup_key,
                    "kind": event.kind,
                    "field": event.field,
                    "external_id": event.external_id,
                    "occurred_at": event.occurred_at,
                    "person_id": attribution.person_id,
                    "identifier_id": attribution.identifier_id,
                    "share_id": event.share_id,
                    "attributes": event.attributes,
                    "created_at": now,
                }
            )
        ids = insert_with_ids(session, table_of(Event), rows)
        for index, event_id, attribution in zip(fresh, ids, attributions, strict=True):
            outcomes[index] = EventOutcome(event_id, attribution.person_id, created=True)
        effects = sorted(
            (events[index].occurred_at, event_id, index, attribution)
            for index, event_id, attribution in zip(fresh, ids, attributions, strict=True)
            if events[index].kind in {"register", "cancel_membership", "consent"}
        )
        if effects:
            self._apply_membership_and_consent(session, events, effects, store_ids)

    def _apply_membership_and_consent(
        self,
        session: Session,
        events: Sequence[EventIn],
        effects: list[tuple[datetime, int, int, Attribution]],
        store_ids: dict[str, int],
    ) -> None:
        """Registration makes a member (once), cancellation ends the spell, consent is recorded."""
        persons = sorted({attribution.person_id for *_, attribution in effects})
        active: dict[int, Membership] = {}
        for part in chunks(persons):
            for membership in session.scalars(
                select(Membership).where(Membership.person_id.in_(part), Membership.status == "active")
            ):
                active.setdefault(membership.person_id, membership)
        consents = []
        for occurred_at, event_id, index, attribution in effects:
            event = events[index]
            person_id = attribution.person_id
            if event.kind == "register" and person_id not in active:
                store = event.attributes.get("store")
                membership = Membership(
                    person_id=person_id,
                    member_no=member_number(event.identifiers),
                    joined_at=occurred_at,
                    join_field=event.field,
                    join_store_id=store_ids.get(str(store)) if store else None,
                    status="active",
                    cancelled_at=None,
                    identifier_id=attribution.identifier_id,
                )
                session.add(membership)
                active[person_id] = membership
            elif event.kind == "cancel_membership" and person_id in active:
                membership = active.pop(person_id)
                if membership.id is None:
                    session.flush()
                session.execute(
                    update(Membership)
                    .where(Membership.id == membership.id)
                    .values(status="cancelled", cancelled_at=occurred_at)
                )
            elif event.kind == "consent":
                consents.append(
                    {
                        "person_id": person_id,
                        "channel": event.attributes["channel"],
                        "granted": bool(event.attributes["granted"]),
                        "changed_at": occurred_at,
                        "field": event.field,
                        "event_id": event_id,
                    }
                )
        session.flush()
        if consents:
            session.execute(insert(Consent), consents)


def member_number(identifiers: Sequence[IdentifierKey]) -> str | None:
    """Return the membership card number among ``identifiers``, if any."""
    return next((key.value for key in identifiers if key.kind is IdentifierKind.MEMBER_NO), None)
