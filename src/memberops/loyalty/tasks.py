"""Growth tasks: actions worth growth value (and points) once per their limit, one or thousands at once.

A task is completed by an API call ("the member completed their profile") or by a behaviour event
the programme binds it to (``on_event``: a ``review`` event completes ``first_review``), so events
arriving through the API or a bulk import reward tasks the same way. ``reward_tasks`` takes a
batch: a handful of statements whatever its size (accounts locked, earlier rewards and counts
read once), the rules applied in memory in the order given, so a batch gives exactly what
rewarding its completions one by one would.

Every completion carries an idempotency key: replaying it gives nothing again. A completion past
the task's per-member limit is refused with its reason (``rejection``) and writes nothing; for an
event that is normal (a second review), for an API call it is a 409.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memberops.identity.repository import chunks
from memberops.kit.clock import utc_now
from memberops.kit.errors import Conflict, ValidationFailed
from memberops.loyalty.coupon_service import issue_upgrade_gifts
from memberops.loyalty.growth import GrowthWriter, upgrade_now
from memberops.loyalty.holdings import KEY_LENGTH
from memberops.loyalty.ledger import LedgerWriter
from memberops.loyalty.lots import expiry_of
from memberops.loyalty.tiers import growth_window, task_rejection_reason
from memberops.loyalty.versions import ActiveProgramme, require_programme
from memberops.models import GrowthEntry


@dataclass(frozen=True)
class TaskDone:
    """A member completed ``task`` at ``at``; ``key`` makes rewarding it idempotent."""

    person_id: int
    task: str
    key: str
    at: datetime


@dataclass(frozen=True)
class TaskRewarded:
    """What a completion gave; ``created`` False for a replay, ``rejection`` set when refused."""

    person_id: int
    task: str
    growth: int
    points: int
    created: bool
    rejection: str | None = None


def growth_key(key: str) -> str:
    """The idempotency key of the growth entry a completion leaves (its record of being done)."""
    return f"task:{key}:growth"


def reward_tasks(
    session: Session,
    done: Sequence[TaskDone],
    *,
    active: ActiveProgramme,
    time_zone: ZoneInfo,
    actor: str,
    now: datetime,
    emit_events: bool = True,
) -> list[TaskRewarded]:
    """Reward each completion once and within its task's limit; never commits.

    Unknown tasks raise ``NotFound`` before anything is written. A task always leaves a growth
    entry (even one worth only points): that entry is how its limit and its replays are counted.
    """
    rules = active.programme
    definitions = {item.task: rules.growth_task(item.task) for item in done}
    if not done:
        return []
    persons = sorted({item.person_id for item in done})
    writer = LedgerWriter(session, now, emit_events=emit_events)
    writer.lock(persons)
    rewarded_before = _rewarded_keys(session, [growth_key(item.key) for item in done])
    completed = _completed(session, persons, sorted(definitions))
    growth = GrowthWriter(session, now, time_zone, emit_events=emit_events)
    growth.load(persons, rules)
    days = sorted(item.at.astimezone(time_zone).date() + timedelta(days=1) for item in done)
    growth.load_timelines(
        persons,
        growth_window(rules.evaluation, days[0], time_zone),
        growth_window(rules.evaluation, days[-1], time_zone),
    )
    if any(definition.points > 0 for definition in definitions.values()):
        writer.load_lots(persons)
    results: list[TaskRewarded | None] = [None] * len(done)
    seen: set[str] = set()
    for index in sorted(range(len(done)), key=lambda i: done[i].at):  # stable: ties keep their order
        item = done[index]
        definition = definitions[item.task]
        entry_key = growth_key(item.key)
        if entry_key in rewarded_before or entry_key in seen:
            results[index] = TaskRewarded(
                item.person_id, item.task, definition.growth, definition.points, False
            )
            continue
        rejection = task_rejection_reason(rules, item.task, completed[(item.person_id, item.task)])
        if rejection is not None:
            results[index] = TaskRewarded(item.person_id, item.task, 0, 0, False, rejection)
            continue
        seen.add(entry_key)
        completed[(item.person_id, item.task)] += 1
        growth.add(
            item.person_id,
            definition.growth,
            kind="task",
            key=entry_key,
            reason=f"growth task {item.task}",
            source="task",
            source_ref=item.task,
            actor=actor,
            programme_version_id=active.version_id,
            occurred_at=item.at,
        )
        if definition.points > 0:
            writer.credit(
                writer.account(item.person_id),
                definition.points,
                kind="gift",
                key=f"task:{item.key}:points",
                reason=f"growth task {item.task}",
                source="task",
                source_ref=item.task,
                actor=actor,
                programme_version_id=active.version_id,
                earned_at=item.at,
                expires_at=expiry_of(item.at, rules.expiry, time_zone),
                topic="points.earned",
                payload={"task": item.task, "points": definition.points},
            )
        upgrade_now(
            writer,
            growth,
            active,
            item.person_id,
            at=item.at,
            key=f"task:{item.key}",
            source_ref=item.task,
            actor=actor,
        )
        results[index] = TaskRewarded(item.person_id, item.task, definition.growth, definition.points, True)
    writer.flush()
    growth.flush()
    issue_upgrade_gifts(
        session, growth.gifts, actor=actor, time_zone=time_zone, programme=active, emit_events=emit_events
    )
    return [result for result in results if result is not None]


class TaskLimitReached(Conflict):
    """The member was already rewarded for the task as often as it allows."""

    code = "task_limit_reached"


def complete_task(
    session: Session,
    person_id: int,
    task: str,
    *,
    key: str,
    actor: str,
    time_zone: ZoneInfo,
    now: datetime | None = None,
) -> TaskRewarded:
    """Reward one completion of ``task`` now (API, CLI); past its limit: ``TaskLimitReached``."""
    if not key or len(key) > KEY_LENGTH:
        raise ValidationFailed(f"an idempotency key must be 1–{KEY_LENGTH} characters")
    now = now or utc_now()
    [result] = reward_tasks(
        session,
        [TaskDone(person_id, task, key, now)],
        active=require_programme(session),
        time_zone=time_zone,
        actor=actor,
        now=now,
    )
    if result.rejection is not None:
        raise TaskLimitReached(result.rejection, task=task)
    return result


def _rewarded_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(sorted(set(keys))):
        found.update(
            session.scalars(select(GrowthEntry.idempotency_key).where(GrowthEntry.idempotency_key.in_(part)))
        )
    return found


def _completed(session: Session, persons: list[int], tasks: list[str]) -> Counter[tuple[int, str]]:
    """How many times each member was rewarded for each task before."""
    counts: Counter[tuple[int, str]] = Counter()
    for part in chunks(persons):
        rows = session.execute(
            select(GrowthEntry.person_id, GrowthEntry.source_ref, func.count(GrowthEntry.id))
            .where(
                GrowthEntry.person_id.in_(part),
                GrowthEntry.source == "task",
                GrowthEntry.source_ref.in_(tasks),
            )
            .group_by(GrowthEntry.person_id, GrowthEntry.source_ref)
        )
        for person_id, task, count in rows:
            counts[(person_id, str(task))] = int(count)
    return counts
