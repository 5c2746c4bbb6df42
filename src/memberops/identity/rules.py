"""The pure rules of identity resolution: which person a record belongs to, and who merges.

A record (an order, an event, a registration) names a person by one or more identifiers. The
rules, in order:

1. Persons reached through an identifier of a *merging* kind (by default phone, unionid and member
   card number) are one person: they merge, the oldest surviving.
2. A person reached only through a non-merging identifier (an openid, a marketplace buyer id, an
   e-mail) is absorbed only when it is *anonymous* (and survives only when the record reaches no
   known person), i.e. holds no merging identifier at all: a
   mini-program visitor known only by an openid who later registers with a phone is the same
   person. A person with a merging identifier of its own is never merged on a weak link; the
   record goes to the strong match and the weak identifier stays where it is (a conflict).
3. Two persons an operator separated are never merged again.
4. Identifiers nobody holds yet are attached to the record's person; a record reaching nobody
   makes a new person.

Nothing here touches the database; ``IdentityService`` feeds these rules and applies the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from memberops.identity.identifiers import ATTRIBUTION_ORDER, IdentifierKey

#: Person references: existing persons have positive ids; persons planned in the current batch
#: but not yet stored have negative ids, numbered in order of creation.
PersonRef = int


@dataclass(frozen=True)
class MergePolicy:
    """Which identifier kinds may merge persons, and whether anonymous persons are absorbed."""

    merge_kinds: frozenset[str]
    absorb_anonymous: bool = True


@dataclass(frozen=True)
class PlannedMerge:
    """``absorbed`` joins the record's person because the record shares a ``kind`` identifier."""

    absorbed: PersonRef
    kind: str


@dataclass(frozen=True)
class RecordPlan:
    """What to do for one record: its person (``None``: make a new one), merges, attachments."""

    person: PersonRef | None
    merges: tuple[PlannedMerge, ...]
    attach: tuple[IdentifierKey, ...]
    conflicts: tuple[IdentifierKey, ...]


def survivor_order(person: PersonRef) -> tuple[bool, int]:
    """Sort key that puts stored persons first, oldest first, then planned ones in creation order."""
    return (person < 0, abs(person))


def plan_record(
    keys: Sequence[IdentifierKey],
    owner_of: Mapping[IdentifierKey, PersonRef],
    holds_merging_identifier: Callable[[PersonRef], bool],
    separated: Callable[[PersonRef, PersonRef], bool],
    policy: MergePolicy,
) -> RecordPlan:
    """Plan how one record's identifiers resolve to a person (see the module docstring)."""
    links: dict[PersonRef, list[str]] = {}
    for key in keys:
        owner = owner_of.get(key)
        if owner is not None:
            links.setdefault(owner, []).append(key.kind)
    if not links:
        return RecordPlan(person=None, merges=(), attach=tuple(dict.fromkeys(keys)), conflicts=())

    strong = {person for person, kinds in links.items() if any(k in policy.merge_kinds for k in kinds)}
    weak = [person for person in links if person not in strong]
    anonymous = [p for p in weak if policy.absorb_anonymous and not holds_merging_identifier(p)]
    if strong:
        candidates = sorted(strong | set(anonymous), key=survivor_order)
    else:
        # Only weak links: the oldest known person anchors the record and survives, so a known
        # person is never absorbed through a weak link (even by an older anonymous one).
        known = sorted((p for p in weak if p not in anonymous), key=survivor_order)
        candidates = known[:1] + sorted(anonymous, key=survivor_order)

    group: list[PersonRef] = []
    for person in candidates:
        if not any(separated(person, member) for member in group):
            group.append(person)
    survivor = group[0]
    merges = tuple(PlannedMerge(person, _linking_kind(links[person], policy)) for person in group[1:])
    members = set(group)
    attach = tuple(dict.fromkeys(key for key in keys if key not in owner_of))
    conflicts = tuple(key for key in keys if key in owner_of and owner_of[key] not in members)
    return RecordPlan(person=survivor, merges=merges, attach=attach, conflicts=conflicts)


def _linking_kind(kinds: Sequence[str], policy: MergePolicy) -> str:
    merging = [kind for kind in kinds if kind in policy.merge_kinds]
    return (merging or list(kinds))[0]


def attribution_key(keys: Sequence[IdentifierKey]) -> IdentifierKey:
    """Return the identifier a record is attributed by: the strongest kind it carries."""
    rank = {kind: index for index, kind in enumerate(ATTRIBUTION_ORDER)}
    return min(keys, key=lambda key: (rank[key.kind], key))
