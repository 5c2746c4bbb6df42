"""Scheduled loyalty work: expiring points, warning and downgrading tiers, replaying history.

Each job works in the caller's transaction and handles at most ``limit`` members per call, so
an entry point can run it in one transaction per chunk and repeat until it reports nothing left.
Running a job twice at the same moment changes nothing the second time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from memberops.events import DomainEvent, emit_many
from memberops.kit.clock import utc_now
from memberops.kit.db import bulk, fetch, refresh_statistics, unit_of_work
from memberops.kit.memory import collect_between_batches
from memberops.loyalty.growth import GrowthWriter, known_tier, window_growth_of
from memberops.loyalty.ledger import LedgerWriter
from memberops.loyalty.purchases import OrderRow, earn_for_member_orders, order_rows, take_back_refunds
from memberops.loyalty.tiers import downgrade_warning, evaluate_downgrade, growth_window, next_downgrade_date
from memberops.loyalty.versions import ActiveProgramme, active_programme, require_programme
from memberops.models import Membership, MemberTier, Order, OrderEarning, PointsLot, Refund, RefundTakeBack

JOB_ACTOR = "loyalty-job"
#: Members per chunk of a job.
CHUNK = 1000


@dataclass(frozen=True)
class ExpiryReport:
    """Members whose points expired, and how many points."""

    members: int
    points: int


@dataclass(frozen=True)
class TierReport:
    """Members evaluated on a downgrade date, those who went down, and warnings sent."""

    evaluated: int
    downgraded: int
    warned: int


@dataclass
class ReplayReport:
    """What a replay of history did."""

    orders: int = 0
    earned: int = 0
    refunds: int = 0
    checkpoints: int = 0
    expired_points: int = 0
    downgraded: int = 0


def expire_due(
    session: Session,
    now: datetime | None = None,
    *,
    actor: str = JOB_ACTOR,
    limit: int = CHUNK,
    emit_events: bool = True,
) -> ExpiryReport:
    """Expire the remainders of lots whose expiry has passed, for up to ``limit`` members.

    One ``expire`` entry per member names every lot it drew on and emits ``points.expired``.
    """
    now = now or utc_now()
    persons = list(
        session.scalars(
            select(PointsLot.person_id)
            .where(PointsLot.remaining > 0, PointsLot.expires_at <= now)
            .group_by(PointsLot.person_id)
            .order_by(PointsLot.person_id)
            .limit(limit)
        )
    )
    if not persons:
        return ExpiryReport(0, 0)
    active = active_programme(session)
    writer = LedgerWriter(session, now, emit_events=emit_events)
    accounts = writer.lock(persons)
    writer.load_lots(persons)
    points = 0
    members = 0
    for person_id in persons:
        account = accounts[person_id]
        before = account.balance
        version_id = active.version_id if active else None
        if writer.expire_due(account, programme_version_id=version_id, actor=actor) is not None:
            members += 1
            points += before - account.balance
    writer.flush()
    return ExpiryReport(members, points)


def notify_expiring(session: Session, now: datetime | None = None, *, within: timedelta) -> int:
    """Emit ``points.expiring`` to members with points expiring within ``within``; return how many.

    One notice per member and first expiry date (its outbox key), so running daily warns once.
    """
    now = now or utc_now()
    found: defaultdict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for person_id, expires_at, points in session.execute(
        select(PointsLot.person_id, PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(PointsLot.remaining > 0, PointsLot.expires_at > now, PointsLot.expires_at <= now + within)
        .group_by(PointsLot.person_id, PointsLot.expires_at)
        .order_by(PointsLot.person_id, PointsLot.expires_at)
    ):
        if expires_at is not None:
            found[person_id].append((expires_at, int(points)))
    events = [
        DomainEvent(
            topic="points.expiring",
            payload={
                "person_id": person_id,
                "points": sum(points for _, points in expiring),
                "first_expires_at": expiring[0][0].isoformat(),
                "expiring": [{"expires_at": at.isoformat(), "points": points} for at, points in expiring],
            },
            key=f"points:expiring:{person_id}:{expiring[0][0].isoformat()}",
            occurred_at=now,
            person_id=person_id,
        )
        for person_id, expiring in found.items()
    ]
    return sum(1 for emitted in emit_many(session, events, now=now) if emitted.created)


def evaluate_tiers(
    session: Session,
    today: date,
    *,
    time_zone: ZoneInfo,
    now: datetime | None = None,
    actor: str = JOB_ACTOR,
    limit: int = CHUNK,
    emit_events: bool = True,
    programme: ActiveProgramme | None = None,
) -> TierReport:
    """Decide the downgrades due by ``today`` and warn members whose downgrade date is near.

    A member is evaluated on their ``next_evaluation_on`` over the window ending that day: they
    keep their tier if their growth still reaches it, else go down (never below the floor, at most
    ``max_tiers_down``). Members whose downgrade date falls within the grace period after an
    evaluation date get ``tier.will_downgrade`` once per date. Handles up to ``limit`` members.
    """
    active = programme or require_programme(session)
    rules = active.programme
    now = now or utc_now()
    due = list(
        session.scalars(
            select(MemberTier.person_id)
            .where(MemberTier.next_evaluation_on <= today)
            .order_by(MemberTier.person_id)
            .limit(limit)
        )
    )
    downgraded = 0
    if due:
        LedgerWriter(session, now).lock(due)
        growth = GrowthWriter(session, now, time_zone, emit_events=emit_events)
        states = growth.load(due, rules)
        by_date: defaultdict[date, list[int]] = defaultdict(list)
        for person_id in due:
            on = states[person_id].next_evaluation_on
            if on is not None and on <= today:
                by_date[on].append(person_id)
        for on, persons in sorted(by_date.items()):
            start, end = growth_window(rules.evaluation, on, time_zone)
            sums = window_growth_of(session, persons, start, end)
            for person_id in persons:
                state = states[person_id]
                tier = known_tier(rules, state.tier)
                change = evaluate_downgrade(rules, tier, sums[person_id], floor=state.floor)
                if change is not None:
                    growth.change_tier(
                        person_id,
                        change,
                        programme=rules,
                        programme_version_id=active.version_id,
                        growth=sums[person_id],
                        key=f"evaluation:{person_id}:{on.isoformat()}",
                        actor=actor,
                        at=end,
                    )
                    downgraded += 1
                else:
                    state.next_evaluation_on = growth.next_evaluation(rules, tier, end)
                    state.changed = True
        growth.flush()
    warned = _warn(session, today, active, time_zone, now, limit) if emit_events else 0
    return TierReport(len(due), downgraded, warned)


def _warn(
    session: Session, today: date, active: ActiveProgramme, time_zone: ZoneInfo, now: datetime, limit: int
) -> int:
    rules = active.programme
    grace = rules.evaluation.grace_days
    if grace == 0 or rules.evaluation.max_tiers_down == 0:
        return 0
    rows = session.execute(
        select(MemberTier.person_id, MemberTier.tier, MemberTier.floor, MemberTier.next_evaluation_on)
        .where(
            MemberTier.next_evaluation_on > today,
            MemberTier.next_evaluation_on <= today + timedelta(days=grace),
        )
        .order_by(MemberTier.person_id)
        .limit(limit)
    ).all()
    by_date: defaultdict[date, list[tuple[int, str, str | None]]] = defaultdict(list)
    for person_id, tier, floor, on in rows:
        if on is not None:
            by_date[on].append((person_id, tier, floor))
    _, tomorrow = growth_window(rules.evaluation, today + timedelta(days=1), time_zone)
    events: list[DomainEvent] = []
    for on, members in by_date.items():
        kept_start, _ = growth_window(rules.evaluation, on, time_zone)
        kept = window_growth_of(session, [person for person, _, _ in members], kept_start, tomorrow)
        for person_id, tier, floor in members:
            warning = downgrade_warning(rules, known_tier(rules, tier), kept[person_id], on=on, floor=floor)
            if warning is None:
                continue
            events.append(
                DomainEvent(
                    topic="tier.will_downgrade",
                    payload={
                        "person_id": person_id,
                        "tier": warning.tier,
                        "to_tier": warning.to_tier,
                        "on": warning.on.isoformat(),
                        "growth_needed": warning.growth_needed,
                    },
                    key=f"tier:warning:{person_id}:{on.isoformat()}",
                    occurred_at=now,
                    person_id=person_id,
                )
            )
    return sum(1 for emitted in emit_many(session, events, now=now) if emitted.created)


# --- Replay --------------------------------------------------------------------------------------


def _checkpoints(
    active: ActiveProgramme, first: datetime, last: datetime, time_zone: ZoneInfo
) -> list[datetime]:
    """Downgrade dates (their start, brand time) after ``first`` up to ``last``."""
    evaluation = active.programme.evaluation
    found: list[datetime] = []
    day = first.astimezone(time_zone).date() + timedelta(days=1)
    end = last.astimezone(time_zone).date()
    while True:
        day = next_downgrade_date(evaluation, day)
        if day > end:
            return found
        found.append(growth_window(evaluation, day, time_zone)[1])
        day += timedelta(days=1)


#: The tables a replay grows and looks up in as it goes.
LEDGER_TABLES = (
    "points_accounts",
    "points_entries",
    "points_lots",
    "points_allocations",
    "order_earnings",
    "refund_take_backs",
    "growth_entries",
    "member_tiers",
    "tier_history",
)


def replay(
    sessions: sessionmaker[Session],
    *,
    time_zone: ZoneInfo,
    now: datetime | None = None,
    batch_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    between_batches: Callable[[datetime], None] | None = None,
) -> ReplayReport:
    """Earn for every order that has not earned yet, in payment order, with history's clock.

    Orders go in batches of ``batch_size`` (one transaction each) with ``now`` set to the batch's
    last payment, so lots and entries carry the time they would have had. Refunds are taken back
    once history reaches them. At every downgrade date crossed the expiry and tier-evaluation jobs
    run as of that date, so later orders earn with the tier the member really had then; at the end
    both run as of ``now`` (default: the current time). Historic events are not emitted (nobody
    should be told today that points expired two years ago); ``progress(done, total)`` is called
    after each batch.

    Like the importer, it pauses automatic garbage collection and collects the young generations
    once per batch (``kit.memory``): after a big import the process holds a large heap the
    collector would otherwise walk again and again.

    ``between_batches(clock)``, when given, is called after each batch's transaction has committed
    (``clock`` = the batch's last payment) and after each checkpoint (``clock`` = the checkpoint,
    ``now`` for the last one), outside any transaction: the ledger then holds exactly history up to
    ``clock``, so a caller can weave in what members did meanwhile (spend points, use coupons).
    """
    now = now or utc_now()
    report = ReplayReport()
    sessions = bulk(sessions)
    with unit_of_work(sessions) as session:
        active = require_programme(session)
        total = int(session.scalar(select(func.count(Order.id)).where(*_pending())) or 0)
        first = session.scalar(select(func.min(Order.paid_at)).where(*_pending()))
    checkpoints = _checkpoints(active, first, now, time_zone) if first is not None else []
    with collect_between_batches() as after_batch:
        after: tuple[datetime, int] | None = None
        taken_back_to: datetime | None = None  # refunds up to here are taken back (see below)
        analysed_at = batch_size
        while True:
            after_batch()
            with unit_of_work(sessions) as session:
                before = checkpoints[0] if checkpoints else None
                batch = _next_batch(session, batch_size, after=after, before=before)
                if batch:
                    clock = batch[-1].paid_at
                    earned = earn_for_member_orders(
                        session,
                        batch,
                        time_zone=time_zone,
                        now=clock,
                        programme=active,
                        emit_events=False,
                    )
                    report.earned += sum(1 for item in earned if item.created)
                    # A refund is never earlier than its order, and orders earn in payment order, so
                    # the refunds before the previous batch's clock were taken back then (those at
                    # that very instant are looked at again: their order may have earned just now).
                    report.refunds += _take_back_until(session, clock, time_zone, active, since=taken_back_to)
                    taken_back_to = clock
            if not batch and checkpoints:
                checkpoint = checkpoints.pop(0)
                _run_checkpoint(sessions, checkpoint, active, time_zone, report)
                if between_batches:
                    between_batches(checkpoint)
                continue
            if not batch:
                break
            report.orders += len(batch)
            after = (batch[-1].paid_at, batch[-1].order_id)
            if report.orders >= 2 * analysed_at:
                # the ledger has doubled since the planner last looked (PostgreSQL; nothing on SQLite):
                # without fresh statistics its lookups turn into scans as history grows
                refresh_statistics(sessions.kw["bind"], LEDGER_TABLES)
                analysed_at = report.orders
            if between_batches:
                between_batches(after[0])
            if progress:
                progress(report.orders, total)
    with unit_of_work(sessions) as session:
        report.refunds += _take_back_until(session, now, time_zone, active)
    _run_checkpoint(sessions, now, active, time_zone, report, final=True)
    if between_batches:
        between_batches(now)
    return report


def _next_batch(
    session: Session, size: int, *, after: tuple[datetime, int] | None, before: datetime | None
) -> list[OrderRow]:
    """The next ``size`` pending orders in payment order after ``(paid_at, id)``, paid before ``before``."""
    query = order_rows(*_pending()).order_by(Order.paid_at, Order.id).limit(size)
    if after is not None:
        query = query.where(
            # the first condition alone is what an index on paid_at can seek to; without it
            # PostgreSQL scans every earlier order again for each batch
            Order.paid_at >= after[0],
            or_(Order.paid_at > after[0], and_(Order.paid_at == after[0], Order.id > after[1])),
        )
    if before is not None:
        query = query.where(Order.paid_at < before)
    return [OrderRow.of(row) for row in fetch(session, query)]


def _pending() -> tuple[ColumnElement[bool], ...]:
    """Orders that can earn and have not: paid while their person held a membership, no earning yet.

    Orders of people who were not members when they paid never earn; leaving them out here (the
    condition ``earn_for_orders`` checks in Python) keeps a replay from loading, checking and
    dropping them batch after batch, which in a typical history is about half of all identified
    orders.
    """
    held = (
        select(Membership.id)
        .where(
            Membership.person_id == Order.person_id,
            Membership.joined_at <= Order.paid_at,
            or_(Membership.cancelled_at.is_(None), Membership.cancelled_at > Order.paid_at),
        )
        .exists()
    )
    earned = select(OrderEarning.order_id).where(OrderEarning.order_id == Order.id).exists()
    return (Order.person_id.is_not(None), held, ~earned)


def _take_back_until(
    session: Session,
    clock: datetime,
    time_zone: ZoneInfo,
    active: ActiveProgramme,
    *,
    since: datetime | None = None,
) -> int:
    """Take back the refunds up to ``clock`` (from ``since`` on, when given) of orders that earned."""
    query = (
        select(Refund.id)
        .join(OrderEarning, OrderEarning.order_id == Refund.order_id)
        .where(
            Refund.refunded_at <= clock,
            ~select(RefundTakeBack.refund_id).where(RefundTakeBack.refund_id == Refund.id).exists(),
        )
        .order_by(Refund.refunded_at, Refund.id)
    )
    if since is not None:
        query = query.where(Refund.refunded_at >= since)
    refund_ids = list(session.scalars(query))
    done = take_back_refunds(
        session, refund_ids, time_zone=time_zone, now=clock, programme=active, emit_events=False
    )
    return sum(1 for item in done if item.created)


def _run_checkpoint(
    sessions: sessionmaker[Session],
    at: datetime,
    active: ActiveProgramme,
    time_zone: ZoneInfo,
    report: ReplayReport,
    *,
    final: bool = False,
) -> None:
    report.checkpoints += 1
    with unit_of_work(sessions) as session:
        report.refunds += _take_back_until(session, at, time_zone, active)
    while True:
        with unit_of_work(sessions) as session:
            expired = expire_due(session, at, emit_events=final)
        report.expired_points += expired.points
        if expired.members == 0:
            break
    today = at.astimezone(time_zone).date()
    while True:
        with unit_of_work(sessions) as session:
            tiers = evaluate_tiers(
                session, today, time_zone=time_zone, now=at, emit_events=final, programme=active
            )
        report.downgraded += tiers.downgraded
        if tiers.evaluated == 0:
            break
