"""Growth tasks on SQLite and PostgreSQL: completed by behaviour events, the API's call, or a batch.

The demo programme's tasks: ``complete_profile`` (50 growth, by call), ``first_review`` (30 growth
and 10 points, on a ``review`` event) and ``join_group`` (20 growth, on a ``join_group`` event),
each once per member.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from memberops.ingest.records import parse_event
from memberops.kit.db import unit_of_work
from memberops.kit.errors import NotFound
from memberops.loyalty.tasks import TaskDone, TaskLimitReached, complete_task, reward_tasks
from memberops.loyalty.versions import require_programme
from memberops.models import GrowthEntry
from memberops.wiring import Services
from tests.integration.helpers import counts
from tests.integration.loyalty_support import apply, balance, buy, entries, member, problems, tier

PHONE = "13800138000"
ZONE = "Asia/Shanghai"


def behave(services: Services, kind: str, phone: str, number: int, **attributes: Any) -> int | None:
    event = {
        "type": kind,
        "occurred_at": f"2026-03-{number:02d}T10:00:00+08:00",
        "field": "mini_program",
        "phone": phone,
        "external_id": f"{kind}-{phone}-{number}",
        "attributes": attributes or None,
    }
    with unit_of_work(services.sessions) as session:
        [outcome] = services.ingest.ingest_events(session, [parse_event(event)], actor="app")
    return outcome.event_id


def growth_of(services: Services, person: int) -> list[tuple[str, int, str | None, str]]:
    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(
            select(GrowthEntry.kind, GrowthEntry.delta, GrowthEntry.source_ref, GrowthEntry.occurred_at)
            .where(GrowthEntry.person_id == person)
            .order_by(GrowthEntry.id)
        ).all()
    return [(kind, delta, ref, at.isoformat()) for kind, delta, ref, at in rows]


def test_events_complete_the_tasks_bound_to_them_once_and_only_for_members(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)

    behave(services, "review", PHONE, 3, sku="DUR-MSW", rating=5)
    behave(services, "join_group", PHONE, 4)
    before = counts(services)
    behave(services, "review", PHONE, 5, sku="APL-FJ", rating=4)  # a second review: the limit is once
    event_id = behave(services, "review", PHONE, 3, sku="DUR-MSW", rating=5)  # the first one replayed
    behave(services, "review", "13900139000", 6, sku="APL-FJ", rating=3)  # not a member: nothing

    assert growth_of(services, person) == [
        ("task", 30, "first_review", "2026-03-03T02:00:00+00:00"),
        ("task", 20, "join_group", "2026-03-04T02:00:00+00:00"),
    ]
    assert entries(services, person) == [("gift", 10)]
    after = counts(services)
    changed = {table for table in after if after[table] != before[table]}
    assert changed == {"events", "persons", "identifiers"}  # the two new events and the non-member
    assert event_id is not None
    assert problems(services) == []


def test_a_task_by_call_is_rewarded_once_and_a_replay_changes_nothing(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    zone = services.loyalty.time_zone
    at = datetime(2026, 3, 10, 2, tzinfo=UTC)

    with unit_of_work(services.sessions) as session:
        first = complete_task(
            session, person, "complete_profile", key="p1", actor="app", time_zone=zone, now=at
        )
    before = counts(services)
    with unit_of_work(services.sessions) as session:
        again = complete_task(
            session, person, "complete_profile", key="p1", actor="app", time_zone=zone, now=at
        )
    limit = '"complete_profile" is rewarded once per member'
    with pytest.raises(TaskLimitReached, match=limit), unit_of_work(services.sessions) as session:
        complete_task(session, person, "complete_profile", key="p2", actor="app", time_zone=zone, now=at)
    with pytest.raises(NotFound), unit_of_work(services.sessions) as session:
        complete_task(session, person, "no_such_task", key="p3", actor="app", time_zone=zone, now=at)

    assert (first.growth, first.points, first.created, again.created) == (50, 0, True, False)
    assert counts(services) == before
    assert growth_of(services, person) == [("task", 50, "complete_profile", "2026-03-10T02:00:00+00:00")]


def test_a_batch_rewards_in_time_order_and_a_task_can_raise_the_tier(services: Services) -> None:
    apply(services)
    person = member(services, PHONE)
    buy(services, "U1", PHONE, "2960.00")  # 2,960 growth: 40 short of silver
    zone = services.loyalty.time_zone
    done = [
        TaskDone(person, "join_group", "k-late", datetime(2026, 3, 20, 2, tzinfo=UTC)),
        TaskDone(person, "join_group", "k-early", datetime(2026, 3, 10, 2, tzinfo=UTC)),  # this one counts
        TaskDone(person, "complete_profile", "k-profile", datetime(2026, 3, 11, 2, tzinfo=UTC)),
        TaskDone(person, "complete_profile", "k-profile", datetime(2026, 3, 12, 2, tzinfo=UTC)),  # same key
    ]
    with unit_of_work(services.sessions) as session:
        results = reward_tasks(
            session,
            done,
            active=require_programme(session),
            time_zone=zone,
            actor="batch",
            now=datetime(2026, 3, 21, tzinfo=UTC),
        )

    assert [(r.task, r.growth, r.created, r.rejection is not None) for r in results] == [
        ("join_group", 0, False, True),
        ("join_group", 20, True, False),
        ("complete_profile", 50, True, False),
        ("complete_profile", 50, False, False),
    ]
    assert tier(services, person) == "silver"  # 2,960 + 20 + 50 passes 3,000 with the profile
    assert entries(services, person) == [("earn", 296), ("gift", 100)]
    assert balance(services, person) == 396
    assert problems(services) == []


def test_a_task_bound_to_an_unknown_event_type_is_refused_when_the_programme_is_applied(
    services: Services,
) -> None:
    from tests.integration.loyalty_support import programme_with

    def bind_badly(document: dict[str, Any]) -> None:
        document["growth"]["tasks"][0]["on_event"] = "purchase"

    with pytest.raises(Exception, match="'purchase' is not an event type; use one of register"):
        programme_with(bind_badly)
    assert ZONE  # the programme is checked before anything is stored
