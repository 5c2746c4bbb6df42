"""Tags (标签): rule tags computed in batch from an expression, manual tags set by hand, and history.

A rule tag's holders are replaced at each refresh by what its expression selects on that day: the
expression is evaluated set-based on the analysis connection (``insight.compiler``), then the
difference with the current holders is written in one transaction that locks the tag row first,
so two refreshes of one tag never interleave. Every gain and loss is a ``tag_history`` row with
its source (``rule`` or ``manual``) and actor. Services never commit; the entry point does (a
batch refresh commits once per tag, so a tag that reads another sees it refreshed).

Who may do what (``may_*``): analysts and guides read; operators and admins define, refresh and
set tags by hand; a guide may set or remove a manual tag only when the tag allows guides
(``guides_may_set``). memberops has no guide-to-member assignment yet, so a guide's reach is
limited by tag, not by member (docs/segments.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from memberops.access.rules import Role
from memberops.access.service import audit
from memberops.identity import repository
from memberops.identity.repository import chunks
from memberops.insight import base, compiler
from memberops.insight.config import current
from memberops.insight.language import Node, parse, tags_named
from memberops.insight.source import Source, open_source
from memberops.kit.clock import business_date, utc_now
from memberops.kit.db import insert_rows, insert_with_ids, unit_of_work
from memberops.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from memberops.models import PersonTag, Segment, Tag, TagChange, table_of

_NAME = re.compile(r"^[^\x00-\x1f\"'\\]{1,64}$")
#: Rows per statement when a refresh changes many holders (and per read of a segment export).
REFRESH_CHUNK = 5000


# ----------------------------------------------------------------------------------- who may do it


def may_read(role: Role) -> bool:
    """Every role may list tags and see a person's tags (guides serve members at the till)."""
    return role in (Role.ADMIN, Role.OPERATOR, Role.ANALYST, Role.GUIDE)


def may_define(role: Role) -> bool:
    """Define tags and segments, refresh them: operators and admins."""
    return role in (Role.ADMIN, Role.OPERATOR)


def may_tag_by_hand(role: Role, tag: Tag) -> bool:
    """Set or remove a manual tag: operators and admins; guides only where the tag allows guides."""
    if role in (Role.ADMIN, Role.OPERATOR):
        return True
    return role is Role.GUIDE and tag.guides_may_set


def require(allowed: bool, role: Role, action: str) -> None:
    """Raise ``Forbidden`` unless ``allowed``."""
    if not allowed:
        raise Forbidden(f"role {role.value!r} may not {action}", role=role.value)


# ---------------------------------------------------------------------------------- expressions


def checked_name(name: str, what: str) -> str:
    """Return a tag or segment name, or raise: 1–64 characters, no quotes or control characters."""
    if not _NAME.match(name) or name != name.strip():
        raise ValidationFailed(
            f"a {what} name is 1 to 64 characters without quotes, backslashes or surrounding spaces"
        )
    return name


def checked_expression(session: Session, text: str, *, defining_tag: str | None = None) -> Node:
    """Parse an expression and check that every tag it reads exists (and is not the one being defined)."""
    node = parse(text)
    named = tags_named(node)
    if defining_tag is not None and defining_tag in named:
        raise ValidationFailed(f"tag {defining_tag!r} cannot be defined in terms of itself")
    if named:
        known = set(session.scalars(select(Tag.name).where(Tag.name.in_(sorted(named)))))
        missing = sorted(named - known)
        if missing:
            raise NotFound(f"no tag named {missing[0]!r}", tags=missing)
    return node


def today(time_zone: str) -> date:
    """The business date a refresh is taken on."""
    return business_date(utc_now(), time_zone)


def brand_scope(source: Source, as_of: date, time_zone: str) -> compiler.Scope:
    """The scope expressions are evaluated in: the as-of date and the brand's insight thresholds.

    Every refresh (by hand, ``--due``, the nightly run) reads ``rfm``, ``stage`` and ``layer``
    with the same thresholds (``insight.config``), so a segment never flips between two
    definitions of a class and announces moves nobody made.
    """
    return compiler.brand_scope(source, base.Clock.at(as_of, time_zone), current())


def select_persons(engine: Engine, node: Node, *, as_of: date, time_zone: str) -> set[int]:
    """Evaluate an expression over the whole store, set-based; return the live person ids it selects."""
    with open_source(engine) as source:
        column = (
            compiler.evaluate(brand_scope(source, as_of, time_zone), node).to_pyarrow().column("person_id")
        )
        return {int(person_id) for person_id in column.to_pylist()}


def count_persons(engine: Engine, node: Node, *, as_of: date, time_zone: str) -> int:
    """Count the live persons an expression selects (the count is computed by the engine)."""
    with open_source(engine) as source:
        return int(
            compiler.evaluate(brand_scope(source, as_of, time_zone), node).count().to_pyarrow().as_py()
        )


# ---------------------------------------------------------------------------------- definitions


#: A definition addressed by its unique name: a tag or a segment.
Definition = TypeVar("Definition", Tag, Segment)


def find_by_name(
    session: Session, model: type[Definition], name: str, what: str, *, lock: bool = False
) -> Definition:
    """Return the tag or segment (``what``) called ``name``, or raise ``NotFound``.

    With ``lock`` the row is locked for update first: a refresh or a change by hand takes the
    definition's lock, so two of them on one tag or segment never interleave.
    """
    statement = select(model).where(model.name == name)
    if lock:
        statement = statement.with_for_update()
    found = session.scalars(statement).first()
    if found is None:
        raise NotFound(f"no {what} named {name!r}")
    return found


def check_new_definition(
    session: Session, model: type[Definition], name: str, description: str, what: str
) -> None:
    """Refuse a new tag or segment (``what``) whose description is too long or whose name is taken.

    Tags and segments share one namespace rule each (a unique name) and one description limit,
    so both definitions end with the same checks, in the same order.
    """
    if len(description) > 500:
        raise ValidationFailed("a description is at most 500 characters")
    if session.scalar(select(model.id).where(model.name == name)) is not None:
        raise Conflict(f"a {what} named {name!r} already exists")


def find_tag(session: Session, name: str, *, lock: bool = False) -> Tag:
    return find_by_name(session, Tag, name, "tag", lock=lock)


def define_tag(
    session: Session,
    name: str,
    *,
    expression: str | None,
    description: str = "",
    guides_may_set: bool = False,
    actor: str,
) -> Tag:
    """Define a rule tag (with ``expression``) or a manual tag (without); holders come with a refresh."""
    checked_name(name, "tag")
    if expression is not None:
        checked_expression(session, expression, defining_tag=name)
        if guides_may_set:
            raise ValidationFailed("only manual tags can be set by guides; a rule tag is set by its rule")
    check_new_definition(session, Tag, name, description, "tag")
    tag = Tag(
        name=name,
        kind="rule" if expression is not None else "manual",
        expression=expression,
        description=description,
        guides_may_set=guides_may_set,
        holders=0,
        created_at=utc_now(),
        created_by=actor,
        refreshed_at=None,
    )
    session.add(tag)
    session.flush()
    audit(session, actor, "tag.defined", "tag", str(tag.id), {"name": name, "expression": expression})
    return tag


def list_tags(session: Session) -> list[Tag]:
    return list(session.scalars(select(Tag).order_by(Tag.name)))


# ------------------------------------------------------------------------------------ by hand


def _live_person(session: Session, person_id: int) -> int:
    current = repository.current_person_id(session, person_id)
    if current is None:
        raise NotFound(f"person {person_id} does not exist")
    return current


def _by_hand(session: Session, name: str, person_id: int, *, role: Role, action: str) -> tuple[Tag, int]:
    """Lock a manual tag and find the live person for a change by hand (``action``: set or remove).

    Setting and removing refuse alike: a rule tag (its rule decides), a role the tag does not
    allow, a person who does not exist.
    """
    tag = find_tag(session, name, lock=True)
    if tag.kind != "manual":
        done = "set" if action == "set" else f"{action}d"
        raise Conflict(f"tag {name!r} is computed by its rule and cannot be {done} by hand")
    require(may_tag_by_hand(role, tag), role, f"{action} tag {name!r}")
    return tag, _live_person(session, person_id)


def _manual_change(tag: Tag, person: int, change: str, *, actor: str, note: str, at: datetime) -> TagChange:
    """The history row of a change by hand (an empty note is stored as none)."""
    return TagChange(
        tag_id=tag.id,
        person_id=person,
        change=change,
        source="manual",
        actor=actor,
        note=note or None,
        at=at,
    )


class ChangeByHand(Protocol):
    """``set_by_hand`` or ``remove_by_hand``: what an entry point offering both calls."""

    def __call__(
        self, session: Session, name: str, person_id: int, *, actor: str, role: Role, note: str = ""
    ) -> bool: ...


def set_by_hand(
    session: Session, name: str, person_id: int, *, actor: str, role: Role, note: str = ""
) -> bool:
    """Give a person a manual tag; return False (changing nothing) if they hold it already."""
    tag, person = _by_hand(session, name, person_id, role=role, action="set")
    if session.get(PersonTag, (tag.id, person)) is not None:
        return False
    now = utc_now()
    session.add(PersonTag(tag_id=tag.id, person_id=person, since=now, source="manual", actor=actor))
    session.add(_manual_change(tag, person, "gained", actor=actor, note=note, at=now))
    tag.holders += 1
    return True


def remove_by_hand(
    session: Session, name: str, person_id: int, *, actor: str, role: Role, note: str = ""
) -> bool:
    """Take a manual tag from a person; return False (changing nothing) if they do not hold it."""
    tag, person = _by_hand(session, name, person_id, role=role, action="remove")
    held = session.get(PersonTag, (tag.id, person))
    if held is None:
        return False
    session.delete(held)
    session.add(_manual_change(tag, person, "lost", actor=actor, note=note, at=utc_now()))
    tag.holders -= 1
    return True


def tags_of(session: Session, person_id: int) -> tuple[int, list[tuple[Tag, PersonTag]]]:
    """Return the live person an id stands for and the tags they hold (by name)."""
    person = _live_person(session, person_id)
    rows = session.execute(
        select(Tag, PersonTag)
        .join(PersonTag, PersonTag.tag_id == Tag.id)
        .where(PersonTag.person_id == person)
        .order_by(Tag.name)
    )
    return person, [(tag, held) for tag, held in rows]


def history(
    session: Session, *, name: str | None = None, person_id: int | None = None, limit: int = 100
) -> list[tuple[TagChange, str]]:
    """Return gains and losses of a tag, or of a person (merges followed), newest first."""
    statement = select(TagChange, Tag.name).join(Tag, Tag.id == TagChange.tag_id)
    if name is not None:
        statement = statement.where(TagChange.tag_id == find_tag(session, name).id)
    if person_id is not None:
        statement = statement.where(TagChange.person_id == _live_person(session, person_id))
    rows = session.execute(statement.order_by(TagChange.id.desc()).limit(limit))
    return [(change, tag_name) for change, tag_name in rows]


# ------------------------------------------------------------------------------------- refresh


@dataclass(frozen=True)
class Refreshed:
    """The outcome of refreshing one tag or segment: who came in, who went out, how many hold it."""

    name: str
    gained: tuple[int, ...]
    lost: tuple[int, ...]
    holders: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gained": len(self.gained),
            "lost": len(self.lost),
            "holders": self.holders,
        }


def apply_tag_refresh(
    session: Session, name: str, selected: set[int], *, actor: str, now: datetime | None = None
) -> Refreshed:
    """Make a rule tag's holders exactly ``selected`` (locks the tag row first); record the changes."""
    now = now or utc_now()
    tag = find_tag(session, name, lock=True)
    if tag.kind != "rule":
        raise Conflict(f"tag {name!r} is set by hand; only rule tags are refreshed")
    current = set(session.scalars(select(PersonTag.person_id).where(PersonTag.tag_id == tag.id)))
    gained = sorted(selected - current)
    lost = sorted(current - selected)
    for part in chunks(lost, REFRESH_CHUNK):
        session.execute(delete(PersonTag).where(PersonTag.tag_id == tag.id, PersonTag.person_id.in_(part)))
    insert_rows(
        session,
        table_of(PersonTag),
        [{"tag_id": tag.id, "person_id": p, "since": now, "source": "rule", "actor": actor} for p in gained],
    )
    changes = [("gained", p) for p in gained] + [("lost", p) for p in lost]
    insert_with_ids(
        session,
        table_of(TagChange),
        [
            {
                "tag_id": tag.id,
                "person_id": p,
                "change": c,
                "source": "rule",
                "actor": actor,
                "note": None,
                "at": now,
            }
            for c, p in changes
        ],
    )
    tag.holders = len(selected)
    tag.refreshed_at = now
    return Refreshed(name, tuple(gained), tuple(lost), len(selected))


def refresh_tags(
    engine: Engine,
    sessions: sessionmaker[Session],
    names: list[str] | None,
    *,
    time_zone: str,
    actor: str,
    as_of: date | None = None,
) -> list[Refreshed]:
    """Refresh rule tags (all, or ``names``) in the order they were defined, one transaction each.

    A tag can only read tags that existed when it was defined, so definition order refreshes what a
    tag reads before the tag itself.
    """
    day = as_of or today(time_zone)
    with unit_of_work(sessions) as session:
        statement = select(Tag.name, Tag.expression).where(Tag.kind == "rule").order_by(Tag.id)
        rules = [(str(n), str(e)) for n, e in session.execute(statement)]
        if names is not None:
            known = {name for name, _ in rules}
            for name in names:
                if name not in known:
                    find_tag(session, name)  # raises NotFound for an unknown tag
                    raise Conflict(f"tag {name!r} is set by hand; only rule tags are refreshed")
            rules = [(name, expression) for name, expression in rules if name in names]
    results = []
    for name, expression in rules:
        selected = select_persons(engine, parse(expression), as_of=day, time_zone=time_zone)
        with unit_of_work(sessions) as session:
            results.append(apply_tag_refresh(session, name, selected, actor=actor))
    return results


def holders_count(session: Session, name: str) -> int:
    tag = find_tag(session, name)
    return int(session.scalar(select(func.count()).where(PersonTag.tag_id == tag.id)) or 0)
