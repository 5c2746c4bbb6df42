"""Purchases in the ledger: what orders earn and what their refunds take back, set-based.

``earn_for_orders`` serves one API order and a batch of thousands from the importer or a replay
alike: a handful of statements per batch (orders, lines, memberships, the lock, tier rows, growth
in the window, then one insert per table), with the member-by-member rules run in memory in
payment order, so a batch gives exactly what earning its orders one by one would.

Who earns: an order attributed to a person who held a membership when it was paid (joined at or
before ``paid_at``, not cancelled by then). Guest orders and purchases before joining earn nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from memberops.identity.repository import chunks
from memberops.kit.clock import utc_now
from memberops.kit.db import fetch, insert_rows
from memberops.loyalty.coupon_service import issue_upgrade_gifts
from memberops.loyalty.earning import (
    Earning,
    LineEarning,
    Purchase,
    PurchaseLine,
    compute_earning,
    growth_to_take_back,
    points_to_take_back,
)
from memberops.loyalty.growth import GrowthWriter, known_tier, upgrade_now
from memberops.loyalty.holdings import as_terms
from memberops.loyalty.ledger import LedgerWriter, LotState
from memberops.loyalty.lots import expiry_of, plan_take_back
from memberops.loyalty.plans import PlanTerm, plan_status
from memberops.loyalty.programme import Programme
from memberops.loyalty.tiers import growth_window
from memberops.loyalty.versions import ActiveProgramme, active_programme
from memberops.models import (
    Membership,
    Order,
    OrderEarning,
    OrderLine,
    PaidPlanTerm,
    Refund,
    RefundTakeBack,
    Store,
    table_of,
)

LOYALTY_ACTOR = "loyalty"


@dataclass(frozen=True)
class OrderEarned:
    """What an order earned; ``created`` is False when it had earned before (nothing changed)."""

    order_id: int
    person_id: int
    points: int
    growth: int
    points_entry_id: int | None
    created: bool
    tier_after: str | None = None


@dataclass(frozen=True)
class RefundTakenBack:
    """What a refund took back; ``created`` is False when it had been taken back before."""

    refund_id: int
    order_id: int
    person_id: int
    points: int
    growth: int
    points_entry_id: int | None
    created: bool


@dataclass(frozen=True)
class OrderRow:
    """What earning reads of an order, in the column order of ``order_rows``."""

    order_id: int
    person_id: int
    source: str
    external_id: str
    store: str | None
    paid_at: datetime

    @classmethod
    def of(cls, row: Row[int, int | None, str, str, str, datetime]) -> OrderRow:
        """Read a row of ``order_rows`` (its query keeps only orders attributed to a person)."""
        order_id, person_id, source, external_id, store, paid_at = row
        if person_id is None:
            raise ValueError(f"order {order_id} has no person and earns nothing")
        return cls(order_id, person_id, source, external_id, store, paid_at)


def _members_when_paid(session: Session, orders: Sequence[OrderRow]) -> set[int]:
    """Return the ids of orders whose person held a membership when the order was paid."""
    held = members_at(session, [(order.person_id, order.paid_at) for order in orders])
    return {order.order_id for order in orders if (order.person_id, order.paid_at) in held}


def members_at(session: Session, moments: Sequence[tuple[int, datetime]]) -> set[tuple[int, datetime]]:
    """Return the ``(person, instant)`` pairs at which the person held a membership.

    Held means joined at or before the instant and not cancelled by then; one query per chunk of
    persons, whatever the number of instants.
    """
    spells: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    persons = sorted({person_id for person_id, _ in moments})
    for part in chunks(persons):
        for person_id, joined_at, cancelled_at in fetch(
            session,
            select(Membership.person_id, Membership.joined_at, Membership.cancelled_at).where(
                Membership.person_id.in_(part)
            ),
        ):
            spells[person_id].append((joined_at, cancelled_at))
    return {
        (person_id, at)
        for person_id, at in moments
        if any(
            joined <= at and (cancelled is None or cancelled > at)
            for joined, cancelled in spells.get(person_id, ())
        )
    }


def order_rows(*where: ColumnElement[bool]) -> Select[int, int | None, str, str, str, datetime]:
    """Select the columns of ``OrderRow`` for the orders matching ``where``."""
    return (
        select(Order.id, Order.person_id, Order.source, Order.external_id, Store.code, Order.paid_at)
        .outerjoin(Store, Store.id == Order.store_id)
        .where(*where)
    )


def _load_orders(session: Session, order_ids: Sequence[int]) -> list[OrderRow]:
    found: list[OrderRow] = []
    for part in chunks(sorted(set(order_ids))):
        rows = fetch(session, order_rows(Order.id.in_(part), Order.person_id.is_not(None)))
        found += [OrderRow.of(row) for row in rows]
    return found


def _load_lines(session: Session, order_ids: Sequence[int]) -> dict[int, list[PurchaseLine]]:
    lines: dict[int, list[PurchaseLine]] = defaultdict(list)
    for part in chunks(sorted(order_ids)):
        for order_id, line_no, sku, category, quantity, amount in fetch(
            session,
            select(
                OrderLine.order_id,
                OrderLine.line_no,
                OrderLine.sku,
                OrderLine.category,
                OrderLine.quantity,
                OrderLine.amount_fen,
            ).where(OrderLine.order_id.in_(part)),
        ):
            lines[order_id].append(PurchaseLine(line_no, sku, category, quantity, amount))
    return lines


def _order_amounts(session: Session, order_ids: Sequence[int]) -> dict[int, int]:
    amounts: dict[int, int] = {}
    for part in chunks(sorted(order_ids)):
        amounts.update(fetch(session, select(Order.id, Order.amount_fen).where(Order.id.in_(part))).all())
    return amounts


def _plan_terms(session: Session, rules: Programme, persons: set[int]) -> dict[int, list[PlanTerm]] | None:
    """The paid-plan terms of ``persons``, when some plan of the programme has a member day (else None).

    A plan's member-day multiplier counts like the tier's on the days its holder's plan is active
    (the larger of the two applies, see ``compute_earning``).
    """
    if not any(plan.benefits.member_day is not None for plan in rules.paid_plans):
        return None
    terms: dict[int, list[PlanTerm]] = defaultdict(list)
    for part in chunks(sorted(persons)):
        rows = session.scalars(
            select(PaidPlanTerm).where(PaidPlanTerm.person_id.in_(part)).order_by(PaidPlanTerm.id)
        ).all()
        for row in rows:
            terms[row.person_id].extend(as_terms([row]))
    return terms


def _plan_on(
    rules: Programme, terms: dict[int, list[PlanTerm]] | None, order: OrderRow, time_zone: ZoneInfo
) -> str | None:
    """The plan whose benefits the order's member held when it was paid, if any."""
    if not terms or order.person_id not in terms:
        return None
    return plan_status(rules, terms[order.person_id], order.paid_at, time_zone).benefits_plan


@dataclass
class _Earned:
    """An order's stored earning, as a plain copy (changed in memory, written back with Core)."""

    order_id: int
    person_id: int
    business_date: date
    points: int
    growth: int
    lines: list[list[int]]
    points_entry_id: int | None
    lot_id: int | None
    refunded_fen: int
    points_taken_back: int
    growth_taken_back: int


def _earned_already(session: Session, order_ids: Sequence[int]) -> dict[int, _Earned]:
    found: dict[int, _Earned] = {}
    table = table_of(OrderEarning)
    for part in chunks(sorted(order_ids)):
        for row in fetch(
            session,
            select(
                table.c.order_id,
                table.c.person_id,
                table.c.business_date,
                table.c.points,
                table.c.growth,
                table.c.lines,
                table.c.points_entry_id,
                table.c.lot_id,
                table.c.refunded_fen,
                table.c.points_taken_back,
                table.c.growth_taken_back,
            ).where(table.c.order_id.in_(part)),
        ):
            found[row.order_id] = _Earned(*row)
    return found


def _earned_on_days(session: Session, pairs: set[tuple[int, date]]) -> defaultdict[tuple[int, date], int]:
    """Points members already earned from purchases on business days (for the daily cap)."""
    earned: defaultdict[tuple[int, date], int] = defaultdict(int)
    persons = sorted({person for person, _ in pairs})
    days = sorted({day for _, day in pairs})
    if not pairs:
        return earned
    for part in chunks(persons):
        for person_id, day, points in fetch(
            session,
            select(OrderEarning.person_id, OrderEarning.business_date, func.sum(OrderEarning.points))
            .where(
                OrderEarning.person_id.in_(part),
                OrderEarning.business_date >= days[0],
                OrderEarning.business_date <= days[-1],
            )
            .group_by(OrderEarning.person_id, OrderEarning.business_date),
        ):
            earned[(person_id, day)] = int(points)
    return earned


def earn_for_orders(
    session: Session,
    order_ids: Sequence[int],
    *,
    time_zone: ZoneInfo,
    actor: str = LOYALTY_ACTOR,
    now: datetime | None = None,
    programme: ActiveProgramme | None = None,
    emit_events: bool = True,
) -> list[OrderEarned]:
    """Earn points and growth for ``order_ids`` under the active programme; never commits.

    Orders that earned before are reported with ``created=False`` and change nothing; orders
    that cannot earn (guest, not a member when paid, no programme applied) are left out.
    Upgrades happen at once, each with its upgrade gift points; events ``points.earned`` and
    ``tier.changed`` go to the outbox (unless ``emit_events`` is False: a replay of history).
    """
    active = programme or active_programme(session)
    if active is None or not order_ids:
        return []
    orders = _load_orders(session, order_ids)
    eligible = _members_when_paid(session, orders)
    return earn_for_member_orders(
        session,
        [order for order in orders if order.order_id in eligible],
        time_zone=time_zone,
        actor=actor,
        now=now,
        programme=active,
        emit_events=emit_events,
    )


def earn_for_member_orders(
    session: Session,
    orders: Sequence[OrderRow],
    *,
    time_zone: ZoneInfo,
    actor: str = LOYALTY_ACTOR,
    now: datetime | None = None,
    programme: ActiveProgramme,
    emit_events: bool = True,
) -> list[OrderEarned]:
    """Earn for ``orders`` known to be paid while their person held a membership; never commits.

    ``earn_for_orders`` after it has loaded the orders and checked membership. A replay selects
    the rows itself (``order_rows``) with the membership condition in its query, so it comes
    here directly instead of reading every order twice.
    """
    if not orders:
        return []
    active = programme
    rules = active.programme
    now = now or utc_now()
    writer = LedgerWriter(session, now, emit_events=emit_events)
    writer.lock(order.person_id for order in orders)
    # Checked under the lock: a concurrent writer that earned these orders has committed by now.
    before = _earned_already(session, [order.order_id for order in orders])
    results: list[OrderEarned] = [
        OrderEarned(row.order_id, row.person_id, row.points, row.growth, row.points_entry_id, False)
        for row in before.values()
    ]
    fresh = sorted(
        (order for order in orders if order.order_id not in before), key=lambda o: (o.paid_at, o.order_id)
    )
    if not fresh:
        return results
    lines = _load_lines(session, [order.order_id for order in fresh])
    unlined = [order.order_id for order in fresh if order.order_id not in lines]
    amounts = _order_amounts(session, unlined) if unlined else {}
    growth = GrowthWriter(session, now, time_zone, emit_events=emit_events)
    persons = {order.person_id for order in fresh}
    tiers = growth.load(persons, rules)
    # upgrade_now asks for the window that ends when the day after each payment begins.
    first_day = fresh[0].paid_at.astimezone(time_zone).date() + timedelta(days=1)
    last_day = fresh[-1].paid_at.astimezone(time_zone).date() + timedelta(days=1)
    growth.load_timelines(
        persons,
        growth_window(rules.evaluation, first_day, time_zone),
        growth_window(rules.evaluation, last_day, time_zone),
    )
    days = {(order.person_id, order.paid_at.astimezone(time_zone).date()) for order in fresh}
    earned_today = _earned_on_days(session, days) if rules.earn.caps.per_day is not None else None

    plan_terms = _plan_terms(session, rules, persons)
    planned: list[tuple[OrderRow, Earning, int | None, LotState | None, int | None, str]] = []
    expiries: dict[date, datetime | None] = {}
    for order in fresh:
        state = tiers[order.person_id]
        tier = known_tier(rules, state.tier)
        purchase_lines = lines.get(order.order_id) or [
            PurchaseLine(1, "", "", 1, amounts.get(order.order_id, 0))
        ]
        day = order.paid_at.astimezone(time_zone).date()
        earning = compute_earning(
            rules,
            Purchase(order.source, order.store, order.paid_at, tuple(purchase_lines)),
            tier=tier,
            time_zone=time_zone,
            earned_today=earned_today[(order.person_id, day)] if earned_today is not None else 0,
            paid_plan=_plan_on(rules, plan_terms, order, time_zone),
        )
        if earned_today is not None:
            earned_today[(order.person_id, day)] += earning.points
        account = writer.account(order.person_id)
        entry_index: int | None = None
        lot: LotState | None = None
        label = f"order {order.source}/{order.external_id}"
        if earning.points > 0:
            if day not in expiries:  # the expiry depends on the business day alone
                expiries[day] = expiry_of(order.paid_at, rules.expiry, time_zone)
            entry_index, lot = writer.credit(
                account,
                earning.points,
                kind="earn",
                key=f"order:{order.order_id}:points",
                reason=label,
                source="order",
                source_ref=str(order.order_id),
                actor=actor,
                programme_version_id=active.version_id,
                earned_at=order.paid_at,
                expires_at=expiries[day],
                detail=_earning_detail(earning),
                topic="points.earned",
                payload={"order_id": order.order_id, "points": earning.points, "tier": tier},
            )
        growth_index: int | None = None
        if earning.growth > 0:
            growth_index = growth.add(
                order.person_id,
                earning.growth,
                kind="earn",
                key=f"order:{order.order_id}:growth",
                reason=label,
                source="order",
                source_ref=str(order.order_id),
                actor=actor,
                programme_version_id=active.version_id,
                occurred_at=order.paid_at,
            )
            upgrade_now(
                writer,
                growth,
                active,
                order.person_id,
                at=order.paid_at,
                key=f"order:{order.order_id}",
                source_ref=str(order.order_id),
                actor=actor,
            )
        planned.append((order, earning, entry_index, lot, growth_index, state.tier))

    entry_ids = writer.flush()
    growth_ids = growth.flush()
    if growth.gifts:
        issue_upgrade_gifts(
            session, growth.gifts, actor=actor, time_zone=time_zone, programme=active, emit_events=emit_events
        )
    rows: list[dict[str, Any]] = []
    for order, earning, entry_index, lot, growth_index, tier_after in planned:
        entry_id = entry_ids[entry_index] if entry_index is not None else None
        rows.append(
            {
                "order_id": order.order_id,
                "person_id": order.person_id,
                "programme_version_id": active.version_id,
                "business_date": earning.business_date,
                "points": earning.points,
                "growth": earning.growth,
                "lines": [[line.line_no, line.paid_fen, line.points, line.growth] for line in earning.lines],
                "points_entry_id": entry_id,
                "growth_entry_id": growth_ids[growth_index] if growth_index is not None else None,
                "lot_id": lot.lot_id if lot is not None else None,
                "refunded_fen": 0,
                "points_taken_back": 0,
                "growth_taken_back": 0,
                "created_at": now,
            }
        )
        results.append(
            OrderEarned(
                order.order_id,
                order.person_id,
                earning.points,
                earning.growth,
                entry_id,
                True,
                tier_after,
            )
        )
    insert_rows(session, table_of(OrderEarning), rows)
    return results


def _earning_detail(earning: Earning) -> dict[str, Any] | None:
    if (
        not earning.multipliers
        and earning.cap is None
        and not any(line.multipliers for line in earning.lines)
    ):
        return None
    return {
        "multipliers": [[m.source, m.key, str(m.factor)] for m in earning.multipliers],
        "line_multipliers": {
            str(line.line_no): [[m.source, m.key, str(m.factor)] for m in line.multipliers]
            for line in earning.lines
            if line.multipliers
        },
        "uncapped": earning.uncapped_points,
        "cap": earning.cap,
    }


def stored_earning(row: OrderEarning | _Earned) -> Earning:
    """Rebuild what an order earned from its stored lines (all a take-back needs)."""
    lines = tuple(
        LineEarning(line_no, paid_fen, paid_fen, points, growth, ())
        for line_no, paid_fen, points, growth in row.lines
    )
    return Earning(row.points, row.growth, row.points, None, row.business_date, (), lines)


def take_back_refunds(
    session: Session,
    refund_ids: Sequence[int],
    *,
    time_zone: ZoneInfo,
    actor: str = LOYALTY_ACTOR,
    now: datetime | None = None,
    programme: ActiveProgramme | None = None,
    emit_events: bool = True,
) -> list[RefundTakenBack]:
    """Take back what refunds' orders earned for the refunded share; never commits.

    Exactly ``points_to_take_back`` over the order's cumulative refunds, so partial refunds that
    end in a full refund take back exactly what the order earned. Points come out of the order's
    own lot first, then the member's other spendable lots; what the balance cannot cover follows
    the programme's shortfall policy (a negative balance, or a claw-back debt repaid from later
    credits). Refunds of orders that earned nothing are left out; a replay changes nothing.
    """
    if not refund_ids:
        return []
    active = programme or active_programme(session)
    if active is None:
        return []
    now = now or utc_now()
    refunds: list[tuple[int, int, int, datetime, int, datetime]] = []
    for part in chunks(sorted(set(refund_ids))):
        refunds += [
            (int(refund_id), int(order_id), int(amount), refunded_at, int(person_id), paid_at)
            for refund_id, order_id, amount, refunded_at, person_id, paid_at in fetch(
                session,
                select(
                    Refund.id,
                    Refund.order_id,
                    Refund.amount_fen,
                    Refund.refunded_at,
                    OrderEarning.person_id,
                    Order.paid_at,
                )
                .join(OrderEarning, OrderEarning.order_id == Refund.order_id)
                .join(Order, Order.id == Refund.order_id)
                .where(Refund.id.in_(part)),
            )
        ]
    if not refunds:
        return []
    writer = LedgerWriter(session, now, emit_events=emit_events)
    persons = {refund[4] for refund in refunds}
    writer.lock(persons)
    done: dict[int, RefundTakeBack] = {}
    for part in chunks(sorted(refund[0] for refund in refunds)):
        done.update(
            (row.refund_id, row)
            for row in session.scalars(select(RefundTakeBack).where(RefundTakeBack.refund_id.in_(part)))
        )
    results = [
        RefundTakenBack(
            row.refund_id,
            row.order_id,
            next(r[4] for r in refunds if r[0] == row.refund_id),
            row.points,
            row.growth,
            row.points_entry_id,
            False,
        )
        for row in done.values()
    ]
    fresh = sorted((r for r in refunds if r[0] not in done), key=lambda r: (r[3], r[0]))
    if not fresh:
        return results
    earnings = _earned_already(session, [refund[1] for refund in fresh])
    writer.load_lots({refund[4] for refund in fresh})
    growth = GrowthWriter(session, now, time_zone, emit_events=emit_events)
    growth.load({refund[4] for refund in fresh}, active.programme)
    policy = active.programme.refunds.shortfall
    planned: list[tuple[tuple[int, int, int, datetime, int, datetime], int, int, int | None, int | None]] = []
    expired_for: set[int] = set()
    for refund in fresh:
        refund_id, order_id, amount, _, person_id, paid_at = refund
        row = earnings[order_id]
        earning = stored_earning(row)
        cumulative = row.refunded_fen + amount
        points = points_to_take_back(earning, cumulative, row.points_taken_back)
        taken_growth = growth_to_take_back(earning, cumulative, row.growth_taken_back)
        row.refunded_fen, row.points_taken_back = cumulative, row.points_taken_back + points
        row.growth_taken_back += taken_growth
        account = writer.account(person_id)
        entry_index: int | None = None
        if points > 0:
            if person_id not in expired_for:
                # Lots past their expiry are expired first, so the shortfall is what really is gone.
                writer.expire_due(account, programme_version_id=active.version_id, actor=actor)
                expired_for.add(person_id)
            plan = plan_take_back(
                (lot.as_rule_lot() for lot in account.open_lots()),
                points,
                policy=policy,
                now=now,
                source_lot_id=row.lot_id,
            )
            entry_index = writer.debit(
                account,
                plan.draws,
                kind="refund_take_back",
                key=f"refund:{refund_id}:points",
                reason=f"refund {refund_id} of order {order_id}",
                source="refund",
                source_ref=str(refund_id),
                actor=actor,
                programme_version_id=active.version_id,
                extra=plan.negative_balance,
                debt_delta=plan.claw_back_debt,
                detail={
                    "order_id": order_id,
                    "refunded_fen": cumulative,
                    "from_lots": plan.from_lots,
                    "shortfall": plan.shortfall,
                    "policy": policy,
                },
                topic="points.taken_back",
                payload={"order_id": order_id, "refund_id": refund_id, "points": points},
            )
        growth_index: int | None = None
        if taken_growth > 0:
            growth_index = growth.add(
                person_id,
                -taken_growth,
                kind="refund_take_back",
                key=f"refund:{refund_id}:growth",
                reason=f"refund {refund_id} of order {order_id}",
                source="refund",
                source_ref=str(refund_id),
                actor=actor,
                programme_version_id=active.version_id,
                occurred_at=paid_at,
            )
        planned.append((refund, points, taken_growth, entry_index, growth_index))

    entry_ids = writer.flush()
    growth_ids = growth.flush()
    insert_rows(
        session,
        table_of(RefundTakeBack),
        [
            {
                "refund_id": refund[0],
                "order_id": refund[1],
                "points": points,
                "growth": taken_growth,
                "points_entry_id": entry_ids[entry_index] if entry_index is not None else None,
                "growth_entry_id": growth_ids[growth_index] if growth_index is not None else None,
                "created_at": now,
            }
            for refund, points, taken_growth, entry_index, growth_index in planned
        ],
    )
    table = table_of(OrderEarning)
    touched = {refund[1] for refund, *_ in planned}
    session.connection().execute(
        update(table)
        .where(table.c.order_id == bindparam("earned_order"))
        .values(
            refunded_fen=bindparam("new_refunded"),
            points_taken_back=bindparam("new_points"),
            growth_taken_back=bindparam("new_growth"),
        ),
        [
            {
                "earned_order": order_id,
                "new_refunded": earnings[order_id].refunded_fen,
                "new_points": earnings[order_id].points_taken_back,
                "new_growth": earnings[order_id].growth_taken_back,
            }
            for order_id in sorted(touched)
        ],
    )
    for refund, points, taken_growth, entry_index, _ in planned:
        results.append(
            RefundTakenBack(
                refund[0],
                refund[1],
                refund[4],
                points,
                taken_growth,
                entry_ids[entry_index] if entry_index is not None else None,
                True,
            )
        )
    return results
