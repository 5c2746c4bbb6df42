"""Segments (人群): saved expressions with a refresh schedule, membership history and events.

A refresh evaluates the expression set-based (``insight.compiler``), then, in one transaction that
locks the segment row, writes who entered and who left (``segment_history``), updates the current
members and emits ``segment.entered`` / ``segment.left`` to the outbox for journeys, keyed by the
history row so a replay never announces a move twice. ``refresh_due`` is what a scheduler (cron,
systemd timer) runs: it refreshes every ``daily``/``hourly`` segment whose next refresh is due.

Exports write one row per member with identifiers masked (``138****8000``) unless the caller's
role may see them in clear; every export is audited, with the count and whether it was clear.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from memberops.access.service import audit
from memberops.events.outbox import DomainEvent, emit_many
from memberops.identity.repository import chunks
from memberops.insight.language import parse
from memberops.insight.tags import (
    REFRESH_CHUNK,
    Refreshed,
    check_new_definition,
    checked_expression,
    checked_name,
    count_persons,
    find_by_name,
    select_persons,
    today,
)
from memberops.kit.clock import utc_now
from memberops.kit.crypto import IdentifierVault
from memberops.kit.db import insert_rows, insert_with_ids, unit_of_work
from memberops.kit.errors import ValidationFailed
from memberops.models import Identifier, Membership, Segment, SegmentChange, SegmentMember, table_of
from memberops.models.insight import REFRESH_SCHEDULES
from memberops.models.loyalty import MemberTier

INTERVALS = {"daily": timedelta(days=1), "hourly": timedelta(hours=1)}
ENTERED = "segment.entered"
LEFT = "segment.left"
#: Columns of an export, in order.
EXPORT_COLUMNS = ("person_id", "member_no", "phone", "tier", "entered_at")


def preview(
    engine: Engine, session: Session, expression: str, *, time_zone: str, as_of: date | None = None
) -> int:
    """Count who an expression selects today, without saving anything."""
    node = checked_expression(session, expression)
    return count_persons(engine, node, as_of=as_of or today(time_zone), time_zone=time_zone)


def find_segment(session: Session, name: str, *, lock: bool = False) -> Segment:
    return find_by_name(session, Segment, name, "segment", lock=lock)


def define_segment(
    session: Session, name: str, expression: str, *, refresh: str = "daily", description: str = "", actor: str
) -> Segment:
    """Save a segment (no members yet: the entry point refreshes it once it is committed)."""
    checked_name(name, "segment")
    checked_expression(session, expression)
    if refresh not in REFRESH_SCHEDULES:
        raise ValidationFailed(f"refresh {refresh!r} is not one of {', '.join(REFRESH_SCHEDULES)}")
    check_new_definition(session, Segment, name, description, "segment")
    segment = Segment(
        name=name,
        expression=expression,
        description=description,
        refresh=refresh,
        size=0,
        created_at=utc_now(),
        created_by=actor,
        refreshed_at=None,
        next_refresh_at=None,
    )
    session.add(segment)
    session.flush()
    audit(
        session,
        actor,
        "segment.defined",
        "segment",
        str(segment.id),
        {"name": name, "expression": expression},
    )
    return segment


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def apply_refresh(
    session: Session, name: str, selected: set[int], *, actor: str, now: datetime | None = None
) -> Refreshed:
    """Make a segment's members exactly ``selected``; record and announce who entered and who left."""
    now = now or utc_now()
    segment = find_segment(session, name, lock=True)
    current = set(
        session.scalars(select(SegmentMember.person_id).where(SegmentMember.segment_id == segment.id))
    )
    entered = sorted(selected - current)
    left = sorted(current - selected)
    for leaving in chunks(left, REFRESH_CHUNK):
        session.execute(
            delete(SegmentMember).where(
                SegmentMember.segment_id == segment.id, SegmentMember.person_id.in_(leaving)
            )
        )
    insert_rows(
        session,
        table_of(SegmentMember),
        [{"segment_id": segment.id, "person_id": p, "entered_at": now} for p in entered],
    )
    moves = [("entered", p) for p in entered] + [("left", p) for p in left]
    for part in chunks(moves, REFRESH_CHUNK):
        ids = insert_with_ids(
            session,
            table_of(SegmentChange),
            [
                {"segment_id": segment.id, "person_id": p, "change": c, "actor": actor, "at": now}
                for c, p in part
            ],
        )
        emit_many(
            session,
            [
                DomainEvent(
                    topic=ENTERED if change == "entered" else LEFT,
                    payload={
                        "segment_id": segment.id,
                        "segment": segment.name,
                        "person_id": person,
                        "at": now.isoformat(),
                    },
                    key=f"segment:history:{history_id}",
                    occurred_at=now,
                    person_id=person,
                )
                for (change, person), history_id in zip(part, ids, strict=True)
            ],
            now=now,
        )
    segment.size = len(selected)
    segment.refreshed_at = now
    interval = INTERVALS.get(segment.refresh)
    segment.next_refresh_at = None if interval is None else now + interval
    return Refreshed(name, tuple(entered), tuple(left), len(selected))


def refresh(
    engine: Engine,
    sessions: sessionmaker[Session],
    names: list[str],
    *,
    time_zone: str,
    actor: str,
    as_of: date | None = None,
) -> list[Refreshed]:
    """Refresh the named segments, one transaction each (the expression is read at refresh time)."""
    day = as_of or today(time_zone)
    results = []
    for name in names:
        with unit_of_work(sessions) as session:
            expression = find_segment(session, name).expression
        selected = select_persons(engine, parse(expression), as_of=day, time_zone=time_zone)
        with unit_of_work(sessions) as session:
            results.append(apply_refresh(session, name, selected, actor=actor))
    return results


def due(session: Session, now: datetime | None = None) -> list[str]:
    """Names of the scheduled segments due for a refresh (never refreshed, or past their next time)."""
    now = now or utc_now()
    statement = (
        select(Segment.name)
        .where(Segment.refresh.in_(list(INTERVALS)))
        .where((Segment.next_refresh_at.is_(None)) | (Segment.next_refresh_at <= now))
        .order_by(Segment.id)
    )
    return [str(name) for name in session.scalars(statement)]


def refresh_due(
    engine: Engine, sessions: sessionmaker[Session], *, time_zone: str, actor: str
) -> list[Refreshed]:
    """Refresh every segment that is due: the command a scheduler runs (e.g. every few minutes)."""
    with unit_of_work(sessions) as session:
        names = due(session)
    return refresh(engine, sessions, names, time_zone=time_zone, actor=actor)


def history(
    session: Session, name: str, *, person_id: int | None = None, limit: int = 100
) -> list[SegmentChange]:
    """Who entered and left a segment, and when, newest first."""
    segment = find_segment(session, name)
    statement = select(SegmentChange).where(SegmentChange.segment_id == segment.id)
    if person_id is not None:
        statement = statement.where(SegmentChange.person_id == person_id)
    return list(session.scalars(statement.order_by(SegmentChange.id.desc()).limit(limit)))


# -------------------------------------------------------------------------------------- export


def export_rows(
    session: Session, name: str, *, vault: IdentifierVault, reveal: bool
) -> Iterator[dict[str, Any]]:
    """Yield one row per current member: person, member number, phone (masked unless ``reveal``), tier."""
    segment = find_segment(session, name)
    members = session.execute(
        select(SegmentMember.person_id, SegmentMember.entered_at)
        .where(SegmentMember.segment_id == segment.id)
        .order_by(SegmentMember.person_id)
    )
    for part in chunks(list(members), REFRESH_CHUNK):
        ids = [person for person, _ in part]
        phones: dict[int, bytes | str] = {}
        for identifier in session.scalars(
            select(Identifier)
            .where(Identifier.person_id.in_(ids), Identifier.kind == "phone")
            .order_by(Identifier.person_id, Identifier.id)
        ):
            phones.setdefault(identifier.person_id, identifier.ciphertext if reveal else identifier.masked)
        numbers: dict[int, str | None] = {}
        for person, number in session.execute(
            select(Membership.person_id, Membership.member_no)
            .where(Membership.person_id.in_(ids), Membership.status == "active")
            .order_by(Membership.person_id, Membership.id)
        ):
            numbers.setdefault(person, number)
        # (Not ``dict(result)``: a Result has ``keys()``, so dict() would read it as a mapping.)
        tiers = dict(
            session.execute(
                select(MemberTier.person_id, MemberTier.tier).where(MemberTier.person_id.in_(ids))
            ).all()
        )
        for person, entered_at in part:
            phone = phones.get(person)
            yield {
                "person_id": person,
                "member_no": numbers.get(person),
                "phone": vault.decrypt(phone) if isinstance(phone, bytes) else phone,
                "tier": tiers.get(person),
                "entered_at": entered_at.isoformat(),
            }


def export_csv(
    session: Session, name: str, out: TextIO, *, vault: IdentifierVault, reveal: bool, actor: str, via: str
) -> int:
    """Write a segment's members as CSV; audit the export (count, clear or masked). Return the rows."""
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    rows = 0
    for row in export_rows(session, name, vault=vault, reveal=reveal):
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
        rows += 1
    segment = find_segment(session, name)
    audit(
        session,
        actor,
        "segment.exported",
        "segment",
        str(segment.id),
        {"name": name, "rows": rows, "identifiers": "clear" if reveal else "masked", "via": via},
    )
    return rows


# -------------------------------------------------------------------------------- ready-made ones

#: Segments operators ask for first (DOMAIN.md §4), for the demo and for a new brand to start from.
READY_MADE: tuple[tuple[str, str, str], ...] = (
    (
        "sleeping_gold",
        'tier = "gold" and stage = "sleeping"',
        "沉睡金卡: Gold members whose last purchase was 2–6 repurchase cycles ago (recall them)",
    ),
    (
        "one_time_buyers",
        "member and purchase_days(days=365) = 1",
        "一次购买: members who bought on exactly one day in the last year (target before 双11/618)",
    ),
    (
        "expired_paid_plan",
        'plan = "expired"',
        "付费会员过期: paid-plan holders whose plan has run out (renewal converts 3–5× better)",
    ),
    (
        "koc_candidates",
        "member and purchase_days(days=90) >= 2"
        " and (shared(days=90) >= 1 or reviewed(days=90, min_rating=4) >= 1)",
        "KOC 候选: repurchasing members who shared or reviewed well in the last 90 days",
    ),
)


def define_ready_made(session: Session, *, actor: str, refresh: str = "daily") -> list[Segment]:
    """Define the ready-made segments that do not exist yet (by name); return the ones defined.

    The caller commits and then refreshes them (``refresh``), as ``segment create`` does.
    """
    existing = set(session.scalars(select(Segment.name)))
    return [
        define_segment(session, name, expression, refresh=refresh, description=description, actor=actor)
        for name, expression, description in READY_MADE
        if name not in existing
    ]
