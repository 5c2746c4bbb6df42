"""Every query OneID makes, set-based so a batch of thousands of records costs a few statements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from memberops.kit.db import one_of
from memberops.models import (
    Consent,
    Event,
    Identifier,
    IdentitySeparation,
    Membership,
    Order,
    Person,
    table_of,
)

T = TypeVar("T")

#: SQLite allows 32,766 bound parameters; stay far below it.
CHUNK = 900

#: Every table whose rows belong to a person and move with a merge.
PERSON_OWNED = (Identifier, Order, Event, Membership, Consent)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def identifiers_by_digest(session: Session, digests: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
    """Return ``digest -> (identifier id, person id)`` for the digests that exist."""
    found: dict[bytes, tuple[int, int]] = {}
    for part in chunks(digests):
        rows = session.execute(
            select(Identifier.digest, Identifier.id, Identifier.person_id).where(
                one_of(Identifier.digest, part)
            )
        )
        for digest, identifier_id, person_id in rows:
            found[bytes(digest)] = (identifier_id, person_id)
    return found


#: The two sides of the identifiers self-join, built once: an alias costs more to build than to run.
_MATCHED = table_of(Identifier).alias("matched")
_HELD_BY = table_of(Identifier).alias("held_by")


def identifiers_and_slots(
    session: Session, digests: Sequence[bytes]
) -> tuple[dict[bytes, tuple[int, int]], dict[int, set[tuple[str, str]]]]:
    """Return ``digest -> (identifier id, person id)`` for the digests that exist, and the slots
    (kind, namespace) every person reached that way fills: one query a chunk, not two.

    Core on the session's connection, not an ORM select: this runs for every order an API call
    or an import batch brings, and the ORM's per-statement overhead is most of its cost.
    """
    found: dict[bytes, tuple[int, int]] = {}
    held: dict[int, set[tuple[str, str]]] = {}
    matched, held_by = _MATCHED, _HELD_BY
    connection = session.connection()
    for part in chunks(digests):
        rows = connection.execute(
            select(matched.c.digest, matched.c.id, matched.c.person_id, held_by.c.kind, held_by.c.namespace)
            .join(held_by, held_by.c.person_id == matched.c.person_id)
            .where(one_of(matched.c.digest, part))
        )
        for digest, identifier_id, person_id, kind, namespace in rows:
            found[bytes(digest)] = (identifier_id, person_id)
            held.setdefault(person_id, set()).add((kind, namespace))
    return found, held


def separations_among(session: Session, person_ids: Sequence[int]) -> set[tuple[int, int]]:
    """Return the separated pairs (low, high) that involve any of ``person_ids``.

    A separation keeps two stored persons apart, so fewer than two persons need no query at all;
    and separations are rare (an operator's correction), so one look at whether there are any
    usually saves the per-chunk queries of a bulk batch.
    """
    pairs: set[tuple[int, int]] = set()
    if len(person_ids) < 2 or session.execute(select(IdentitySeparation.id).limit(1)).first() is None:
        return pairs
    for part in chunks(person_ids):
        rows = session.execute(
            select(IdentitySeparation.person_low_id, IdentitySeparation.person_high_id).where(
                IdentitySeparation.person_low_id.in_(part) | IdentitySeparation.person_high_id.in_(part)
            )
        )
        pairs.update((low, high) for low, high in rows)
    return pairs


def identifier_ids_of(session: Session, person_ids: Sequence[int]) -> dict[int, list[int]]:
    """Return ``person id -> identifier ids`` for ``person_ids``."""
    owned: dict[int, list[int]] = {}
    for part in chunks(person_ids):
        for identifier_id, person_id in session.execute(
            select(Identifier.id, Identifier.person_id).where(Identifier.person_id.in_(part))
        ):
            owned.setdefault(person_id, []).append(identifier_id)
    return owned


def active_memberships(session: Session, person_ids: Sequence[int]) -> list[Membership]:
    """Return the active membership spells of ``person_ids``, earliest joined first."""
    found: list[Membership] = []
    for part in chunks(person_ids):
        found.extend(
            session.scalars(
                select(Membership).where(Membership.person_id.in_(part), Membership.status == "active")
            )
        )
    return sorted(found, key=lambda membership: (membership.joined_at, membership.id))


def repoint_persons(session: Session, survivor_of: dict[int, int]) -> None:
    """Move every row owned by an absorbed person to its survivor (``absorbed -> survivor``).

    One UPDATE per table, executed for all pairs at once (executemany): each pair is an index
    seek on the person column, where a single UPDATE … CASE over hundreds of ids would compare
    every candidate row against every id.
    """
    if not survivor_of:
        return
    pairs = [{"absorbed": absorbed, "survivor": survivor_of[absorbed]} for absorbed in sorted(survivor_of)]
    absorbed: Any = bindparam("absorbed")
    survivor: Any = bindparam("survivor")
    connection = session.connection()
    moves = [(table_of(model), "person_id", "person_id") for model in PERSON_OWNED] + [
        (table_of(Person), "merged_into_id", "merged_into_id"),
        (table_of(Person), "id", "merged_into_id"),
        (table_of(IdentitySeparation), "person_low_id", "person_low_id"),
        (table_of(IdentitySeparation), "person_high_id", "person_high_id"),
    ]
    for table, matched, moved in moves:
        connection.execute(
            table.update().where(table.c[matched] == absorbed).values({moved: survivor}), pairs
        )


def current_person_id(session: Session, person_id: int) -> int | None:
    """Return the live person an id now stands for (following merges), or None if unknown."""
    row = session.execute(select(Person.id, Person.merged_into_id).where(Person.id == person_id)).first()
    if row is None:
        return None
    return int(row.merged_into_id or row.id)
