"""Carry loyalty back when OneID splits a person or undoes a merge (the converse of ``merging``).

**Loyalty moves with the orders that move** (``carry_orders``):
what each order still holds (earned minus taken back, in points and growth) is taken off the person
it leaves (``split_out``: its own lot first, then the soonest-expiring; what is no longer there, i.e.
points already spent, becomes a claw-back debt, never a negative balance) and credited to the person
it joins (``split_in``: a new lot with the original lot's expiry), and the order's earning follows,
so its later refunds take back from its new person. This only happens when the new person held a
membership when the order was paid, the same rule as earning; otherwise the earning stays with the
member whose account received it, and refunds keep taking back from there. The order's figures are
not recomputed (no new tier multiplier or cap), and the restored person is not upgraded on the spot.

Undoing a merge also hands back the coupons, redemptions, plan terms, grants and settlements the
merge record lists, and the absorbed person's tier, floor and gifted tiers. It does **not** hand
back points or growth that came from anything but orders (gifts, adjustments, tasks) nor undo
spends made since: those stay with the survivor.

Why not take back and re-earn through ``earn_for_orders``/``take_back_refunds``: an order earns once
(its ``order_earnings`` row and its ``order:{id}:points`` entry key are unique) and its refunds'
take-back rows name it, so a second earning would collide or leave ``check`` unbalanced. Moving what
the order holds keeps every one of those rows true and the order's refunds exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from memberops.identity.repository import chunks
from memberops.kit.clock import utc_now
from memberops.kit.db import insert_rows
from memberops.loyalty.growth import GrowthWriter
from memberops.loyalty.ledger import LedgerWriter
from memberops.loyalty.lots import expiry_of, plan_take_back
from memberops.loyalty.versions import active_programme
from memberops.models import (
    Base,
    BenefitGrant,
    CheckoutSettlement,
    Coupon,
    CouponRedemption,
    Membership,
    MemberTier,
    Order,
    OrderEarning,
    PaidPlanTerm,
    PointsLot,
    RewardRedemption,
    table_of,
)

SPLIT_OUT_KIND = "split_out"
SPLIT_IN_KIND = "split_in"
#: ``source`` of the entries a split writes.
SPLIT_SOURCE = "split"

#: Offer rows that follow a merge (``merging``); their ids go into the merge record so an undo
#: hands them back.
OFFERS_OWNED: dict[str, type[Base]] = {
    "coupon_ids": Coupon,
    "coupon_redemption_ids": CouponRedemption,
    "reward_redemption_ids": RewardRedemption,
    "plan_term_ids": PaidPlanTerm,
    "benefit_grant_ids": BenefitGrant,
    "settlement_ids": CheckoutSettlement,
}


def hand_back(session: Session, listed: Mapping[str, Any], *, holder: int, restored: int) -> None:
    """Give ``restored`` back the offer rows and tier settings a merge record lists.

    Only rows ``holder`` (the survivor, or whoever it merged into since) still holds move. The tier
    row is given back with growth 0: growth returns with the orders (``carry_orders``).
    """
    connection = session.connection()
    for name, model in OFFERS_OWNED.items():
        ids = [int(row_id) for row_id in listed.get(name, [])]
        if not ids:
            continue
        table = table_of(model)
        for part in chunks(ids):
            connection.execute(
                table.update()
                .where(table.c.id.in_(part), table.c.person_id == holder)
                .values(person_id=restored)
            )
    tier = listed.get("tier")
    if tier is None or session.get(MemberTier, restored) is not None:
        return
    next_on = tier.get("next_evaluation_on")
    insert_rows(
        session,
        table_of(MemberTier),
        [
            {
                "person_id": restored,
                "tier": tier["tier"],
                "floor": tier.get("floor"),
                "since": utc_now(),
                "growth_total": 0,
                "gifted_tiers": list(tier.get("gifted_tiers", [])),
                "next_evaluation_on": date.fromisoformat(next_on) if next_on else None,
                "updated_at": utc_now(),
            }
        ],
    )


@dataclass(frozen=True)
class _Held:
    order_id: int
    points: int
    growth: int
    lot_id: int | None
    paid_at: datetime


def carry_orders(
    session: Session,
    order_ids: Sequence[int],
    *,
    source: int,
    target: int,
    actor: str,
    time_zone: ZoneInfo,
    now: datetime | None = None,
) -> list[int]:
    """Move what ``order_ids`` still hold from ``source`` to ``target``; return the orders moved.

    See the module docstring: a ``split_out``/``split_in`` pair per order, the order's earning
    re-pointed to the new lot, only when ``target`` was a member when the order was paid. A replay
    finds the earnings no longer held by ``source`` and changes nothing.
    """
    held = _held_by(session, order_ids, source)
    if not held:
        return []
    active = active_programme(session)
    if active is None:
        return []
    spells = session.execute(
        select(Membership.joined_at, Membership.cancelled_at).where(Membership.person_id == target)
    ).all()
    moving = sorted(
        (
            order
            for order in held
            if any(
                joined <= order.paid_at and (cancelled is None or cancelled > order.paid_at)
                for joined, cancelled in spells
            )
        ),
        key=lambda order: (order.paid_at, order.order_id),
    )
    if not moving:
        return []
    now = now or utc_now()
    expiries = _lot_expiries(session, [order.lot_id for order in moving if order.lot_id is not None])
    writer = LedgerWriter(session, now, emit_events=False)
    writer.lock([source, target])
    writer.load_lots([source, target])
    growth = GrowthWriter(session, now, time_zone, emit_events=False)
    growth.load([source, target], active.programme)
    new_lots: dict[int, Any] = {}
    for order in moving:
        base = f"split:order:{order.order_id}:{source}>{target}"
        reason = f"order {order.order_id} moved from person {source} to person {target}"
        if order.points > 0:
            losing = writer.account(source)
            plan = plan_take_back(
                (lot.as_rule_lot() for lot in losing.open_lots()),
                order.points,
                policy="claw_back_from_future",
                now=now,
                source_lot_id=order.lot_id,
            )
            writer.debit(
                losing,
                plan.draws,
                kind=SPLIT_OUT_KIND,
                key=f"{base}:out",
                reason=reason,
                source=SPLIT_SOURCE,
                source_ref=str(order.order_id),
                actor=actor,
                programme_version_id=active.version_id,
                debt_delta=plan.claw_back_debt,
                detail={"order_id": order.order_id, "to_person_id": target, "shortfall": plan.shortfall},
            )
            expires_at = (
                expiries[order.lot_id]
                if order.lot_id in expiries
                else expiry_of(order.paid_at, active.programme.expiry, time_zone)
            )
            _, lot = writer.credit(
                writer.account(target),
                order.points,
                kind=SPLIT_IN_KIND,
                key=f"{base}:in",
                reason=reason,
                source=SPLIT_SOURCE,
                source_ref=str(order.order_id),
                actor=actor,
                programme_version_id=active.version_id,
                earned_at=order.paid_at,
                expires_at=expires_at,
                detail={"order_id": order.order_id, "from_person_id": source},
            )
            new_lots[order.order_id] = lot
        if order.growth > 0:
            for person, delta, side in ((source, -order.growth, "out"), (target, order.growth, "in")):
                growth.add(
                    person,
                    delta,
                    kind=SPLIT_OUT_KIND if side == "out" else SPLIT_IN_KIND,
                    key=f"{base}:growth:{side}",
                    reason=reason,
                    source=SPLIT_SOURCE,
                    source_ref=str(order.order_id),
                    actor=actor,
                    programme_version_id=active.version_id,
                    occurred_at=order.paid_at,
                )
    writer.flush()
    growth.flush()
    table = table_of(OrderEarning)
    session.connection().execute(
        table.update()
        .where(table.c.order_id == bindparam("earned_order"))
        .values(person_id=bindparam("new_person"), lot_id=bindparam("new_lot")),
        [
            {
                "earned_order": order.order_id,
                "new_person": target,
                "new_lot": new_lots[order.order_id].lot_id if order.order_id in new_lots else order.lot_id,
            }
            for order in moving
        ],
    )
    return [order.order_id for order in moving]


def _held_by(session: Session, order_ids: Sequence[int], person_id: int) -> list[_Held]:
    """What the earnings of ``order_ids`` held by ``person_id`` still hold (earned − taken back)."""
    table: Table = table_of(OrderEarning)
    found: list[_Held] = []
    for part in chunks(sorted(set(order_ids))):
        for order_id, points, taken, growth, growth_taken, lot_id, paid_at in session.execute(
            select(
                table.c.order_id,
                table.c.points,
                table.c.points_taken_back,
                table.c.growth,
                table.c.growth_taken_back,
                table.c.lot_id,
                Order.paid_at,
            )
            .join(Order, Order.id == table.c.order_id)
            .where(table.c.order_id.in_(part), table.c.person_id == person_id)
        ):
            found.append(
                _Held(int(order_id), int(points - taken), int(growth - growth_taken), lot_id, paid_at)
            )
    return found


def _lot_expiries(session: Session, lot_ids: Sequence[int]) -> dict[int, datetime | None]:
    found: dict[int, datetime | None] = {}
    for part in chunks(sorted(set(lot_ids))):
        found.update(
            (int(lot_id), expires_at)
            for lot_id, expires_at in session.execute(
                select(PointsLot.id, PointsLot.expires_at).where(PointsLot.id.in_(part))
            )
        )
    return found
