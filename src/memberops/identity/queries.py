"""Read models of OneID: a person's whole profile, and lookups by any identifier."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memberops.identity import repository
from memberops.identity.identifiers import IdentifierKey
from memberops.identity.lookup import parse_person_reference
from memberops.identity.service import IdentityService
from memberops.kit.money import fen_to_yuan
from memberops.models import Event, Identifier, IdentityMerge, Membership, Order, Refund, Store


def find_person_id(session: Session, identity: IdentityService, key: IdentifierKey) -> int | None:
    """Return the person holding ``key``, or None."""
    found = repository.identifiers_by_digest(session, [identity.digest(key)])
    return next((person_id for _, person_id in found.values()), None)


def merges_of(
    session: Session, person_id: int | None = None, limit: int | None = None
) -> list[IdentityMerge]:
    """Return merges, newest first: all of them, or those a (live) person took part in."""
    query = select(IdentityMerge).order_by(IdentityMerge.id.desc()).limit(limit)
    if person_id is not None:
        query = query.where(
            (IdentityMerge.survivor_id == person_id) | (IdentityMerge.absorbed_id == person_id)
        )
    return list(session.scalars(query))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def person_profile(
    session: Session, identity: IdentityService, person_id: int, *, reveal: bool, order_limit: int = 50
) -> dict[str, Any] | None:
    """Return the person (following merges) with identifiers, membership, orders and merges.

    ``reveal`` decides whether identifiers are decrypted or shown masked; the caller checks the
    role and writes the audit entry.
    """
    current = repository.current_person_id(session, person_id)
    if current is None:
        return None
    identifiers = session.scalars(
        select(Identifier).where(Identifier.person_id == current).order_by(Identifier.id)
    ).all()
    memberships = session.scalars(
        select(Membership)
        .where(Membership.person_id == current)
        .order_by(Membership.joined_at, Membership.id)
    ).all()
    order_count, order_total = session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.amount_fen), 0)).where(
            Order.person_id == current
        )
    ).one()
    refunded_total = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0))
        .join(Order, Order.id == Refund.order_id)
        .where(Order.person_id == current)
    )
    orders = session.execute(
        select(Order, Store.code)
        .outerjoin(Store, Store.id == Order.store_id)
        .where(Order.person_id == current)
        .order_by(Order.paid_at.desc(), Order.id.desc())
        .limit(order_limit)
    ).all()
    refunds: dict[int, int] = {}
    order_ids = [order.id for order, _ in orders]
    for order_id, amount in session.execute(
        select(Refund.order_id, func.sum(Refund.amount_fen))
        .where(Refund.order_id.in_(order_ids))
        .group_by(Refund.order_id)
    ):
        refunds[order_id] = int(amount)
    event_counts = dict(
        session.execute(
            select(Event.kind, func.count(Event.id)).where(Event.person_id == current).group_by(Event.kind)
        ).all()
    )
    merges = list(reversed(merges_of(session, current)))
    active = next((m for m in memberships if m.status == "active"), None)
    return {
        "person_id": current,
        "requested_id": person_id,
        "identifiers": [
            {
                "id": identifier.id,
                "type": identifier.kind,
                "namespace": identifier.namespace,
                "value": identity.vault.decrypt(identifier.ciphertext) if reveal else identifier.masked,
                "masked": not reveal,
                "source": identifier.source,
                "first_seen_at": _iso(identifier.created_at),
            }
            for identifier in identifiers
        ],
        "membership": {
            "is_member": active is not None,
            "member_no": active.member_no if active else None,
            "joined_at": _iso(active.joined_at) if active else None,
            "join_field": active.join_field if active else None,
            "history": [
                {
                    "id": m.id,
                    "member_no": m.member_no,
                    "joined_at": _iso(m.joined_at),
                    "join_field": m.join_field,
                    "status": m.status,
                    "cancelled_at": _iso(m.cancelled_at),
                }
                for m in memberships
            ],
        },
        "orders_summary": {
            "count": int(order_count),
            "paid": fen_to_yuan(int(order_total)),
            "refunded": fen_to_yuan(int(refunded_total or 0)),
        },
        "orders": [
            {
                "id": order.id,
                "source": order.source,
                "external_id": order.external_id,
                "paid_at": _iso(order.paid_at),
                "amount": fen_to_yuan(order.amount_fen),
                "refunded": fen_to_yuan(refunds.get(order.id, 0)),
                "store": store_code,
                "share_id": order.share_id,
            }
            for order, store_code in orders
        ],
        "events": {kind: int(count) for kind, count in sorted(event_counts.items())},
        "merges": [
            {
                "id": merge.id,
                "survivor_id": merge.survivor_id,
                "absorbed_id": merge.absorbed_id,
                "identifier_type": merge.identifier_kind,
                "reason": merge.reason,
                "actor": merge.actor,
                "at": _iso(merge.created_at),
                "undone_at": _iso(merge.undone_at),
            }
            for merge in merges
        ],
    }


def resolve_reference(session: Session, identity: IdentityService, text: str) -> int | None:
    """Return the person named by ``text`` (see ``lookup.parse_person_reference``), or None."""
    reference = parse_person_reference(text)
    if reference.person_id is not None:
        return repository.current_person_id(session, reference.person_id)
    for key in reference.candidates:
        person_id = find_person_id(session, identity, key)
        if person_id is not None:
            return person_id
    return None
