"""The pure rules of identity resolution: which person a record belongs to, and who merges.

A record (an order, an event, a registration) names a person by one or more identifiers. Every
identifier fills a *slot* of its person: its kind and namespace (a phone, a unionid, the openid of
one app, the buyer id of one platform). The rules, in order:

1. Persons reached through an identifier of a *merging* kind (by default phone, unionid and member
   card number) are one person: they merge, the oldest surviving.
2. A person reached only through a non-merging identifier (an openid, a marketplace buyer id, an
   e-mail) joins them when
   a. it is *anonymous*, holding no merging identifier at all: the mini-program visitor known
      only by an openid who later registers with a phone; or
   b. it is known but *compatible*: none of its slots is filled on the other side (by the persons
      it would join or by the record's other identifiers). A registered member whose mini-program
      order later carries the WeChat unionid of an official-account follower is one person; but a
      Tmall account shared by two people with phones of their own never merges them, because both
      fill the phone slot.
   Otherwise the record goes to the strong match and the weak identifier stays with its owner (a
   conflict). When a record reaches nobody through a merging identifier, the oldest known person
   it reaches anchors it, so a known person is never absorbed by an anonymous one.
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
#: A slot: an identifier kind and its namespace (``("openid", "mini_program")``, ``("phone", "")``).
Slot = tuple[str, str]


@dataclass(frozen=True)
class MergePolicy:
    """Which identifier kinds merge persons, and which weak links may merge too (rules 1 and 2)."""

    merge_kinds: frozenset[str]
    absorb_anonymous: bool = True
    merge_compatible: bool = True


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


def slot(key: IdentifierKey) -> Slot:
    """Return the slot an identifier fills."""
    return (str(key.kind), key.namespace)


def survivor_order(person: PersonRef) -> tuple[bool, int]:
    """Sort key that puts stored persons first, oldest first, then planned ones in creation order."""
    return (person < 0, abs(person))


def plan_record(
    keys: Sequence[IdentifierKey],
    owner_of: Mapping[IdentifierKey, PersonRef],
    slots_of: Callable[[PersonRef], frozenset[Slot]],
    separated: Callable[[PersonRef, PersonRef], bool],
    policy: MergePolicy,
) -> RecordPlan:
    """Plan how one record's identifiers resolve to a person (see the module docstring)."""
    links: dict[PersonRef, list[IdentifierKey]] = {}
    for key in keys:
        owner = owner_of.get(key)
        if owner is not None:
            links.setdefault(owner, []).append(key)
    if not links:
        return RecordPlan(person=None, merges=(), attach=tuple(dict.fromkeys(keys)), conflicts=())
    if len(links) == 1:
        # The common case (a returning customer): one person, nothing to merge. What the general
        # path below would conclude, without its sorting and slot arithmetic.
        (person,) = links
        attach = tuple(dict.fromkeys(key for key in keys if key not in owner_of))
        return RecordPlan(person=person, merges=(), attach=attach, conflicts=())

    merging = [p for p, linked in links.items() if any(k.kind in policy.merge_kinds for k in linked)]
    strong = sorted(merging, key=survivor_order)
    weak = sorted((p for p in links if p not in strong), key=survivor_order)
    anonymous = [p for p in weak if not _holds_merging(slots_of(p), policy)]
    known = [p for p in weak if p not in anonymous]

    group: list[PersonRef] = []
    filled: set[Slot] = set()

    def join(person: PersonRef, *, compatible_only: bool) -> None:
        if any(separated(person, member) for member in group):
            return
        own = slots_of(person)
        others = {slot(key) for key in keys if owner_of.get(key) != person}
        if compatible_only and (own & (filled | others)):
            return
        group.append(person)
        filled.update(own)

    for person in strong:
        join(person, compatible_only=False)
    if not group:
        anchor = (known or anonymous)[0]
        join(anchor, compatible_only=False)
        known = [p for p in known if p != anchor]
        anonymous = [p for p in anonymous if p != anchor]
    if policy.merge_compatible:
        for person in known:
            join(person, compatible_only=True)
    if policy.absorb_anonymous:
        for person in anonymous:
            join(person, compatible_only=False)

    # With strong links the oldest survives; with only weak ones the anchoring known person does.
    survivor = min(group, key=survivor_order) if strong else group[0]
    members = set(group)
    merges = tuple(
        PlannedMerge(person, _linking_kind(links[person], policy))
        for person in sorted(group, key=survivor_order)
        if person != survivor
    )
    attach = tuple(dict.fromkeys(key for key in keys if key not in owner_of))
    conflicts = tuple(key for key in keys if key in owner_of and owner_of[key] not in members)
    return RecordPlan(person=survivor, merges=merges, attach=attach, conflicts=conflicts)


def _holds_merging(slots: frozenset[Slot], policy: MergePolicy) -> bool:
    return any(kind in policy.merge_kinds for kind, _ in slots)


def _linking_kind(linked: Sequence[IdentifierKey], policy: MergePolicy) -> str:
    merging = [key.kind for key in linked if key.kind in policy.merge_kinds]
    return str((merging or [key.kind for key in linked])[0])


_ATTRIBUTION_RANK = {kind: index for index, kind in enumerate(ATTRIBUTION_ORDER)}


def attribution_key(keys: Sequence[IdentifierKey]) -> IdentifierKey:
    """Return the identifier a record is attributed by: the strongest kind it carries."""
    if len(keys) == 1:
        return keys[0]
    return min(keys, key=lambda key: (_ATTRIBUTION_RANK[key.kind], key))
