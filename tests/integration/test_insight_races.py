"""Tags and segments written at once on PostgreSQL: history, holders and the outbox stay in step.

A scheduled refresh, the nightly run and an operator's "refresh now" can meet on one segment, and
two store guides can tag the same member in the same second. Every writer locks the tag or
segment row first, so the writes queue up; these tests release eight writers together and check
that the history, replayed from nothing, gives exactly the holders stored, that no move is
recorded or announced twice, and that the stored size agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import select

from memberops.access.rules import Role
from memberops.insight import segments as segment_service
from memberops.insight import tags as tag_service
from memberops.kit.db import unit_of_work
from memberops.models import OutboxEvent, PersonTag, Segment, SegmentChange, SegmentMember, Tag, TagChange
from memberops.wiring import Services
from tests.integration.helpers import ingest, order
from tests.integration.test_races import WRITERS, race

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_services: Services) -> Services:
    return postgres_services


def _people(services: Services, count: int) -> list[int]:
    outcomes = ingest(services, *(order(f"R{index}", phone=f"1380013{index:04d}") for index in range(count)))
    people = [outcome.person_id for outcome in outcomes]
    assert None not in people
    return [person for person in people if person is not None]


def _selections(people: Sequence[int]) -> list[set[int]]:
    """Eight different, overlapping selections: each writer moves some people in and some out."""
    return [
        {person for k, person in enumerate(people) if (k + i) % 3 != 0 and k % (i + 2) != 1}
        for i in range(WRITERS)
    ]


def _replay(changes: Sequence[tuple[int, str]], entering: str, leaving: str) -> set[int]:
    """Apply the history in id order from nothing; every move must be a real one."""
    holders: set[int] = set()
    for person, change in changes:
        if change == entering:
            assert person not in holders, f"{person} {entering} twice"
            holders.add(person)
        else:
            assert change == leaving and person in holders, f"{person} {leaving} without holding"
            holders.remove(person)
    return holders


def test_segment_refreshes_at_once_keep_members_history_and_outbox_in_step(pg: Services) -> None:
    people = _people(pg, 24)
    with unit_of_work(pg.sessions) as session:
        segment_service.define_segment(session, "racers", "spent(days=365) >= 0", actor="test")
    selections = _selections(people)

    results = race(
        WRITERS,
        lambda i: _refresh_segment(pg, selections[i], actor=f"writer-{i}"),
    )

    assert [type(result) for result in results] == [segment_service.Refreshed] * WRITERS
    with unit_of_work(pg.read_sessions) as session:
        segment = session.scalars(select(Segment).where(Segment.name == "racers")).one()
        members = set(session.scalars(select(SegmentMember.person_id)))
        changes = session.execute(
            select(SegmentChange.person_id, SegmentChange.change, SegmentChange.actor).order_by(
                SegmentChange.id
            )
        ).all()
        events = session.execute(
            select(OutboxEvent.topic, OutboxEvent.person_id).order_by(OutboxEvent.id)
        ).all()
    replayed = _replay([(person, change) for person, change, _ in changes], "entered", "left")
    last_writer = int(changes[-1].actor.removeprefix("writer-"))
    assert replayed == members == selections[last_writer]
    assert segment.size == len(members)
    segment_events = [(topic, person) for topic, person in events if topic.startswith("segment.")]
    assert segment_events == [(f"segment.{change}", person) for person, change, _ in changes]
    # Each writer's moves are the difference from the writer before it, so nothing is lost or doubled.
    moved = sum(
        len(result.gained) + len(result.lost) for result in results if not isinstance(result, BaseException)
    )
    assert moved == len(changes)


def _refresh_segment(services: Services, selected: set[int], *, actor: str) -> segment_service.Refreshed:
    with unit_of_work(services.sessions) as session:
        return segment_service.apply_refresh(session, "racers", selected, actor=actor)


def test_rule_tag_refreshes_at_once_keep_holders_and_history_in_step(pg: Services) -> None:
    people = _people(pg, 24)
    with unit_of_work(pg.sessions) as session:
        tag_service.define_tag(session, "racing", expression="spent(days=365) >= 0", actor="test")
    selections = _selections(people)

    def refresh(i: int) -> tag_service.Refreshed:
        with unit_of_work(pg.sessions) as session:
            return tag_service.apply_tag_refresh(session, "racing", selections[i], actor=f"writer-{i}")

    results = race(WRITERS, refresh)

    assert [type(result) for result in results] == [tag_service.Refreshed] * WRITERS
    with unit_of_work(pg.read_sessions) as session:
        tag = session.scalars(select(Tag).where(Tag.name == "racing")).one()
        holders = set(session.scalars(select(PersonTag.person_id).where(PersonTag.tag_id == tag.id)))
        changes = session.execute(
            select(TagChange.person_id, TagChange.change, TagChange.actor)
            .where(TagChange.tag_id == tag.id)
            .order_by(TagChange.id)
        ).all()
    replayed = _replay([(person, change) for person, change, _ in changes], "gained", "lost")
    assert replayed == holders == selections[int(changes[-1].actor.removeprefix("writer-"))]
    assert tag.holders == len(holders)


def test_guides_tagging_one_member_at_once_tag_them_once(pg: Services) -> None:
    [person] = _people(pg, 1)
    with unit_of_work(pg.sessions) as session:
        tag_service.define_tag(session, "vip_care", expression=None, guides_may_set=True, actor="test")

    def tag_by_hand(i: int) -> bool:
        with unit_of_work(pg.sessions) as session:
            return tag_service.set_by_hand(session, "vip_care", person, actor=f"guide-{i}", role=Role.GUIDE)

    results = race(WRITERS, tag_by_hand)

    assert sorted(results, key=str) == [False] * (WRITERS - 1) + [True]
    with unit_of_work(pg.read_sessions) as session:
        tag = session.scalars(select(Tag).where(Tag.name == "vip_care")).one()
        changes = session.scalars(select(TagChange).where(TagChange.tag_id == tag.id)).all()
        holders = session.scalars(select(PersonTag.person_id).where(PersonTag.tag_id == tag.id)).all()
    assert (tag.holders, list(holders), [change.change for change in changes]) == (1, [person], ["gained"])
