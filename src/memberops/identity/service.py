"""OneID use cases: resolve records to persons (merging where the rules say), undo a merge, split.

``IdentityService.resolve`` takes a whole batch so an import of a million orders costs a few
set-based statements per thousand rows, and the API's single record uses the very same path.
Services never commit; the caller's unit of work does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import case, insert, select, update
from sqlalchemy.orm import Session

from memberops.access.service import audit
from memberops.identity import repository
from memberops.identity.identifiers import IdentifierKey, mask
from memberops.identity.rules import MergePolicy, PersonRef, Slot, plan_record, slot
from memberops.identity.rules import attribution_key as strongest
from memberops.kit.clock import utc_now
from memberops.kit.crypto import IdentifierVault
from memberops.kit.db import insert_with_ids, lock_keys
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.models import (
    Consent,
    Event,
    Identifier,
    IdentityMerge,
    IdentitySeparation,
    Membership,
    Order,
    Person,
    table_of,
)

#: A record to resolve: the channel it came from and the identifiers it carries.
SourcedRecord = tuple[str, Sequence[IdentifierKey]]

#: Above this many identifiers a batch locks OneID as a whole instead of key by key (PostgreSQL
#: keeps advisory locks in a bounded shared table).
KEY_LOCK_LIMIT = 64
GLOBAL_LOCK = "memberops:identity"


class HoldingsCarrier(Protocol):
    """What another context holds per person and moves when OneID merges or splits persons.

    Loyalty implements it (``memberops.loyalty.merging.LoyaltyCarrier``) and ``wiring`` hands it
    to ``IdentityService``, so identity never imports loyalty (which imports identity). Both calls
    run inside OneID's transaction, after OneID moved its own rows, and must not commit.
    """

    def carry_merged(
        self, session: Session, survivor_of: Mapping[int, int], *, actor: str
    ) -> Mapping[int, Mapping[str, Any]]:
        """Move the absorbed persons' holdings to their survivors; return what moved, per absorbed."""
        ...

    def carry_split(
        self,
        session: Session,
        *,
        source: int,
        target: int,
        order_ids: Sequence[int],
        handed_back: Mapping[str, Any] | None,
        actor: str,
    ) -> None:
        """Follow ``order_ids`` from ``source`` to ``target``; ``handed_back``: an undone merge's list."""
        ...


@dataclass(frozen=True)
class Attribution:
    """The person a record belongs to and the identifier it was attributed by."""

    person_id: int
    identifier_id: int


@dataclass
class _BatchState:
    """In-memory view of OneID while a batch is planned; flushed to the database at the end."""

    owner: dict[IdentifierKey, PersonRef]
    slots: dict[PersonRef, set[Slot]]
    separations: set[tuple[int, int]]
    parent: dict[PersonRef, PersonRef] = field(default_factory=dict)
    new_persons: int = 0
    new_identifiers: dict[IdentifierKey, PersonRef] = field(default_factory=dict)
    first_source: dict[IdentifierKey, str] = field(default_factory=dict)
    merges: list[tuple[PersonRef, PersonRef, str]] = field(default_factory=list)

    def find(self, person: PersonRef) -> PersonRef:
        root = person
        while root in self.parent:
            root = self.parent[root]
        while person != root:
            self.parent[person], person = root, self.parent[person]
        return root

    def separated(self, first: PersonRef, second: PersonRef) -> bool:
        return any({self.find(low), self.find(high)} == {first, second} for low, high in self.separations)


class IdentityService:
    """Resolve, merge and split persons under a ``MergePolicy``."""

    def __init__(
        self, vault: IdentifierVault, policy: MergePolicy, carrier: HoldingsCarrier | None = None
    ) -> None:
        self.vault = vault
        self.policy = policy
        self.carrier = carrier

    def digest(self, key: IdentifierKey) -> bytes:
        return self.vault.digest(key.kind, key.namespace, key.value)

    def lock(self, session: Session, keys: Sequence[IdentifierKey], extra: Sequence[str] = ()) -> None:
        """Serialise concurrent resolutions that touch the same identifiers (PostgreSQL)."""
        if session.get_bind().dialect.name != "postgresql":
            return  # SQLite serialises writers already; skip hashing the keys for nothing
        if len(keys) + len(extra) > KEY_LOCK_LIMIT:
            lock_keys(session, [GLOBAL_LOCK])
            return
        lock_keys(session, [self.digest(key).hex() for key in keys] + list(extra), shared=[GLOBAL_LOCK])

    def resolve(
        self, session: Session, records: Sequence[SourcedRecord], *, actor: str
    ) -> list[Attribution | None]:
        """Return each record's person, creating, attaching and merging as the rules say.

        A record is ``(channel, identifiers)``: an identifier first seen in it remembers that channel
        as its source. A record without identifiers gets ``None``. The whole batch is planned
        before anything is written, so no attribution can be made stale by a later merge in it.
        The caller must hold the locks (``lock``).
        """
        keys = sorted({key for _, record in records for key in record})
        digest_of = {key: self.digest(key) for key in keys}
        existing, slots = repository.identifiers_and_slots(session, list(digest_of.values()))
        identifier_id: dict[IdentifierKey, int] = {}
        owner: dict[IdentifierKey, PersonRef] = {}
        for key, digest in digest_of.items():
            if digest in existing:
                identifier_id[key], owner[key] = existing[digest]
        reached = sorted(set(owner.values()))
        state = _BatchState(
            owner=owner,
            slots=slots,
            separations=repository.separations_among(session, reached),
        )
        planned = [self._plan(state, source, record) for source, record in records]
        real_of = self._flush(session, state, digest_of, identifier_id, actor=actor)
        return [
            None if plan is None else Attribution(real_of[state.find(plan[0])], identifier_id[plan[1]])
            for plan in planned
        ]

    def _plan(
        self, state: _BatchState, source: str, record: Sequence[IdentifierKey]
    ) -> tuple[PersonRef, IdentifierKey] | None:
        if not record:
            return None
        roots = {key: state.find(state.owner[key]) for key in record if key in state.owner}
        plan = plan_record(
            record,
            roots,
            lambda person: frozenset(state.slots.get(person, ())),
            state.separated,
            self.policy,
        )
        person = plan.person
        if person is None:
            state.new_persons += 1
            person = -state.new_persons
        for merge in plan.merges:
            state.parent[merge.absorbed] = person
            state.slots.setdefault(person, set()).update(state.slots.get(merge.absorbed, ()))
            state.merges.append((merge.absorbed, person, merge.kind))
        for key in plan.attach:
            state.owner[key] = person
            state.new_identifiers[key] = person
            state.first_source[key] = source
            state.slots.setdefault(person, set()).add(slot(key))
        owned = [key for key in record if key not in plan.conflicts]
        return person, strongest(owned)

    def _flush(
        self,
        session: Session,
        state: _BatchState,
        digest_of: dict[IdentifierKey, bytes],
        identifier_id: dict[IdentifierKey, int],
        *,
        actor: str,
    ) -> dict[PersonRef, int]:
        """Write the planned batch so the result equals processing its records one by one.

        Every planned person gets a row, also one absorbed later in the same batch (its row points
        at the survivor and its merge is recorded), so the outcome does not depend on where batch
        boundaries fall, and every merge can be undone.
        """
        now = utc_now()
        planned = [-n for n in range(1, state.new_persons + 1)]
        real_of: dict[PersonRef, int] = {}
        if planned:
            created = insert_with_ids(
                session, table_of(Person), [{"created_at": now, "merged_into_id": None} for _ in planned]
            )
            real_of.update(zip(planned, created, strict=True))
        for person in [*state.owner.values(), *(merge[0] for merge in state.merges)]:
            if person > 0:
                real_of[person] = person

        def final(person: PersonRef) -> int:
            return real_of[state.find(person)]

        brought: dict[PersonRef, list[int]] = {}
        if state.new_identifiers:
            rows = [
                {
                    "person_id": final(person),
                    "kind": str(key.kind),
                    "namespace": key.namespace,
                    "digest": digest_of[key],
                    "ciphertext": self.vault.encrypt(key.value),
                    "masked": mask(key.kind, key.value),
                    "source": state.first_source[key],
                    "created_at": now,
                }
                for key, person in state.new_identifiers.items()
            ]
            ids = insert_with_ids(session, table_of(Identifier), rows)
            for (key, person), new_id in zip(state.new_identifiers.items(), ids, strict=True):
                identifier_id[key] = new_id
                brought.setdefault(person, []).append(new_id)

        if state.merges:
            self._record_merges(session, state, real_of, final, brought, actor=actor, now=now)
        return {person: final(person) for person in real_of}

    def _record_merges(
        self,
        session: Session,
        state: _BatchState,
        own: dict[PersonRef, int],
        final: Callable[[PersonRef], int],
        brought: dict[PersonRef, list[int]],
        *,
        actor: str,
        now: datetime,
    ) -> None:
        """Re-point what absorbed persons own and record each merge with what it moved."""
        survivor_of = {absorbed: final(absorbed) for absorbed, _, _ in state.merges}
        stored = {person: survivor for person, survivor in survivor_of.items() if person > 0}
        owned = repository.identifier_ids_of(session, sorted(stored))
        set_aside = self._set_aside_duplicate_memberships(session, stored)
        repository.repoint_persons(session, stored)
        carried = self.carrier.carry_merged(session, stored, actor=actor) if self.carrier and stored else {}
        planned = {own[ref]: survivor for ref, survivor in survivor_of.items() if ref < 0}
        if planned:
            session.execute(
                update(Person)
                .where(Person.id.in_(sorted(planned)))
                .values(merged_into_id=case(planned, value=Person.id)),
                execution_options={"synchronize_session": False},
            )
        session.execute(
            insert(IdentityMerge),
            [
                {
                    "survivor_id": survivor_of[absorbed],
                    "absorbed_id": own[absorbed],
                    "identifier_kind": kind,
                    "reason": f"a record shared a {kind} identifier",
                    "actor": actor,
                    "created_at": now,
                    "undone_at": None,
                    "undone_by": None,
                    "detail": {
                        "identifier_ids": sorted(owned.get(absorbed, []) + brought.get(absorbed, [])),
                        "set_aside_membership_ids": sorted(set_aside.get(absorbed, [])),
                        **({"loyalty": dict(carried[own[absorbed]])} if own[absorbed] in carried else {}),
                    },
                }
                for absorbed, _, kind in state.merges
            ],
        )

    def _set_aside_duplicate_memberships(
        self, session: Session, survivor_of: dict[int, int]
    ) -> dict[int, list[int]]:
        """Keep one active membership per merged person (the earliest); mark the others merged."""
        people = sorted(set(survivor_of) | set(survivor_of.values()))
        kept: dict[int, int] = {}
        set_aside: dict[int, list[int]] = {}
        for membership in repository.active_memberships(session, people):
            survivor = survivor_of.get(membership.person_id, membership.person_id)
            if survivor not in kept:
                kept[survivor] = membership.id
                continue
            set_aside.setdefault(membership.person_id, []).append(membership.id)
        ids = [membership_id for group in set_aside.values() for membership_id in group]
        if ids:
            session.execute(
                update(Membership).where(Membership.id.in_(ids)).values(status="merged"),
                execution_options={"synchronize_session": False},
            )
        return set_aside

    # ----------------------------------------------------------------- operator actions

    def undo_merge(self, session: Session, merge_id: int, *, actor: str, reason: str) -> IdentityMerge:
        """Split a wrong merge: the absorbed person gets back what it had, and is kept apart.

        Rows attributed by the absorbed person's identifiers (also ones that arrived after the merge)
        go back with them. Undoing an undone merge changes nothing.
        """
        lock_keys(session, [GLOBAL_LOCK])
        merge = session.get(IdentityMerge, merge_id, with_for_update=True)
        if merge is None:
            raise NotFound(f"merge {merge_id} does not exist")
        if merge.undone_at is not None:
            return merge
        current = repository.current_person_id(session, merge.survivor_id)
        assert current is not None
        session.execute(update(Person).where(Person.id == merge.absorbed_id).values(merged_into_id=None))
        moved_orders = self._move_identifiers(
            session, current, merge.absorbed_id, list(merge.detail.get("identifier_ids", [])), actor, reason
        )
        restored = list(merge.detail.get("set_aside_membership_ids", []))
        if restored:
            session.execute(
                update(Membership)
                .where(Membership.id.in_(restored), Membership.status == "merged")
                .values(status="active", person_id=merge.absorbed_id)
            )
        if self.carrier is not None:
            # After the memberships are back: orders carry their points only to a member.
            self.carrier.carry_split(
                session,
                source=current,
                target=merge.absorbed_id,
                order_ids=moved_orders,
                handed_back=merge.detail.get("loyalty"),
                actor=actor,
            )
        merge.undone_at = utc_now()
        merge.undone_by = actor
        audit(session, actor, "identity.merge_undone", "merge", str(merge.id), {"reason": reason})
        return merge

    def split(
        self, session: Session, person_id: int, identifier_ids: Sequence[int], *, actor: str, reason: str
    ) -> int:
        """Move ``identifier_ids`` (and the rows attributed by them) to a new person; return its id."""
        lock_keys(session, [GLOBAL_LOCK])
        current = repository.current_person_id(session, person_id)
        if current is None:
            raise NotFound(f"person {person_id} does not exist")
        owned = set(repository.identifier_ids_of(session, [current]).get(current, []))
        wanted = set(identifier_ids)
        if not wanted:
            raise ValidationFailed("name at least one identifier to split off")
        if not wanted <= owned:
            raise ValidationFailed(
                f"identifiers {sorted(wanted - owned)} do not belong to person {current}",
                identifier_ids=sorted(wanted - owned),
            )
        if wanted == owned:
            raise Conflict("splitting off every identifier would leave the person empty")
        new_person = session.execute(
            insert(Person).returning(Person.id), [{"created_at": utc_now(), "merged_into_id": None}]
        ).scalar_one()
        moved_orders = self._move_identifiers(session, current, new_person, sorted(wanted), actor, reason)
        if self.carrier is not None:
            self.carrier.carry_split(
                session,
                source=current,
                target=new_person,
                order_ids=moved_orders,
                handed_back=None,
                actor=actor,
            )
        audit(
            session,
            actor,
            "identity.split",
            "person",
            str(current),
            {"new_person_id": new_person, "identifier_ids": sorted(wanted), "reason": reason},
        )
        return new_person

    def _move_identifiers(
        self, session: Session, source: int, target: int, identifier_ids: list[int], actor: str, reason: str
    ) -> list[int]:
        """Move identifiers and the rows they attributed from ``source`` to ``target``; return the orders."""
        options = {"synchronize_session": False}
        moved_orders = list(
            session.scalars(
                select(Order.id).where(Order.identifier_id.in_(identifier_ids), Order.person_id == source)
            )
        )
        session.execute(
            update(Identifier)
            .where(Identifier.id.in_(identifier_ids), Identifier.person_id == source)
            .values(person_id=target),
            execution_options=options,
        )
        for table in (Order, Event, Membership):
            session.execute(
                update(table)
                .where(table.identifier_id.in_(identifier_ids), table.person_id == source)
                .values(person_id=target),
                execution_options=options,
            )
        moved_events = select(Event.id).where(Event.identifier_id.in_(identifier_ids))
        session.execute(
            update(Consent)
            .where(Consent.event_id.in_(moved_events), Consent.person_id == source)
            .values(person_id=target),
            execution_options=options,
        )
        low, high = sorted((source, target))
        session.execute(
            insert(IdentitySeparation),
            [
                {
                    "person_low_id": low,
                    "person_high_id": high,
                    "reason": reason,
                    "actor": actor,
                    "created_at": utc_now(),
                }
            ],
        )
        return moved_orders
