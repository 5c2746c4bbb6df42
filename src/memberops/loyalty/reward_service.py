"""The rewards catalogue (积分商城): list, redeem with points, cancel (points and stock come back).

Redeeming locks, in this order: the member's advisory lock for the reward (per-member limit), the
reward's stock row (``FOR UPDATE``; the last one in stock goes to exactly one member), then the
ledger's account inside ``spend_points``. A refused redemption raises before anything is written,
and a spend refused by the ledger (``insufficient_points``) rolls the whole transaction back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.kit.clock import utc_now
from memberops.kit.db import lock_keys
from memberops.kit.errors import Conflict, NotFound
from memberops.loyalty import holdings
from memberops.loyalty.coupon_service import IssueRequest, issue_coupons, void_locked
from memberops.loyalty.points import restore_points, spend_points
from memberops.loyalty.rewards import (
    CANCELLED,
    REDEEMED,
    CatalogueItem,
    cancellation_rejection_reason,
    catalogue_item,
    reward_rejection_reason,
)
from memberops.models import Coupon, RewardRedemption, RewardStock


class RewardRejected(Conflict):
    """The member may not redeem this reward now (tier, limit, stock)."""

    code = "reward_rejected"


class RedemptionIdempotencyConflict(Conflict):
    """The key was used for another redemption."""

    code = "idempotency_conflict"


@dataclass(frozen=True)
class RewardOutcome:
    """A redemption (or its cancellation) and whether this call made the change."""

    redemption: RewardRedemption
    created: bool


def live_redemptions(session: Session, person_ids: list[int], reward_code: str) -> int:
    """Return how many of ``reward_code`` the member has redeemed and not cancelled."""
    return int(
        session.scalar(
            select(func.count(RewardRedemption.id)).where(
                RewardRedemption.person_id.in_(person_ids),
                RewardRedemption.reward_code == reward_code,
                RewardRedemption.status == REDEEMED,
            )
        )
        or 0
    )


def catalogue(
    session: Session, *, person_id: int | None = None, now: datetime | None = None
) -> list[CatalogueItem]:
    """Return the active programme's rewards with what is left; for a member, whether they may redeem."""
    now = now or utc_now()
    programme = holdings.active(session).programme
    redeemed: dict[str, int] = dict(
        session.execute(select(RewardStock.reward_code, RewardStock.redeemed)).all()
    )
    tier: str | None = None
    balance: int | None = None
    person_ids: list[int] = []
    if person_id is not None:
        live = holdings.live_person(session, person_id)
        person_ids = holdings.person_ids_of(session, live)
        tier = holdings.member_tier(session, live, programme)
        balance = holdings.spendable_points(session, live, now)
    return [
        catalogue_item(
            programme,
            reward,
            tier=tier,
            redeemed_by_member=live_redemptions(session, person_ids, reward.code) if person_ids else 0,
            redeemed_in_all=int(redeemed.get(reward.code, 0)),
            balance=balance,
        )
        for reward in programme.rewards
    ]


def redeem_reward(
    session: Session,
    person_id: int,
    reward_code: str,
    *,
    key: str,
    actor: str,
    time_zone: ZoneInfo,
    now: datetime | None = None,
) -> RewardOutcome:
    """Spend the reward's points, take one from stock, and grant it (a coupon, or goods to hand over)."""
    holdings.check_key(key)
    now = now or utc_now()
    member = holdings.live_person(session, person_id)
    lock_keys(session, [f"reward:key:{key}", f"reward:{reward_code}:person:{member}"])
    previous = session.scalars(
        select(RewardRedemption).where(RewardRedemption.idempotency_key == key)
    ).first()
    if previous is not None:
        if previous.reward_code != reward_code or previous.person_id not in holdings.person_ids_of(
            session, member
        ):
            raise RedemptionIdempotencyConflict(
                f"idempotency key {key!r} was used for redemption {previous.id}", redemption_id=previous.id
            )
        return RewardOutcome(previous, False)
    active = holdings.active(session)
    programme = active.programme
    reward = programme.reward(reward_code)
    stock = holdings.stock_for_update(session, reward.code, now)
    refused = reward_rejection_reason(
        programme,
        reward,
        tier=holdings.member_tier(session, member, programme),
        redeemed_by_member=live_redemptions(session, holdings.person_ids_of(session, member), reward.code),
        redeemed_in_all=stock.redeemed,
    )
    if refused is not None:
        raise RewardRejected(refused, reward=reward.code)
    spend_key = f"reward:{key}"
    spend_points(
        session,
        member,
        reward.points_price,
        key=spend_key,
        reason=f"reward {reward.code}: {reward.name}",
        source="reward",
        source_ref=reward.code,
        actor=actor,
        now=now,
    )
    coupon_id: int | None = None
    if reward.coupon is not None:
        issued = issue_coupons(
            session,
            [member],
            [IssueRequest(reward.coupon)],
            key=f"reward:{key}",
            reason=f"reward {reward.code}",
            actor=actor,
            time_zone=time_zone,
            source="reward",
            now=now,
            programme=active,
        )
        coupon_id = issued.coupons[0].id
    holdings.add_to_stock(session, stock, 1, now)
    redemption = RewardRedemption(
        person_id=member,
        reward_code=reward.code,
        programme_version_id=active.version_id,
        points_price=reward.points_price,
        points_spend_key=spend_key,
        coupon_id=coupon_id,
        status=REDEEMED,
        redeemed_at=now,
        actor=actor,
        idempotency_key=key,
        cancelled_at=None,
        cancelled_by=None,
        cancel_reason=None,
    )
    session.add(redemption)
    session.flush()
    emit_many(
        session,
        [
            DomainEvent(
                topic="reward.redeemed",
                payload={
                    "redemption_id": redemption.id,
                    "reward": reward.code,
                    "points": reward.points_price,
                    "coupon_id": coupon_id,
                    "goods": reward.goods,
                },
                key=f"reward:redeemed:{redemption.id}",
                occurred_at=now,
                person_id=member,
            )
        ],
        now=now,
    )
    return RewardOutcome(redemption, True)


def cancel_redemption(
    session: Session, redemption_id: int, *, reason: str, actor: str, now: datetime | None = None
) -> RewardOutcome:
    """Undo a redemption: its points come back into the lots they left, the stock goes up by one,
    a granted coupon is voided. Cancelling a cancelled redemption changes nothing."""
    reason = holdings.check_reason(reason)
    now = now or utc_now()
    redemption = session.scalars(
        select(RewardRedemption)
        .where(RewardRedemption.id == redemption_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if redemption is None:
        raise NotFound(f"reward redemption {redemption_id} does not exist")
    if redemption.status == CANCELLED:
        return RewardOutcome(redemption, False)
    coupons = holdings.coupons_for_update(session, [redemption.coupon_id] if redemption.coupon_id else [])
    refused = cancellation_rejection_reason(
        redemption.status, coupon_status=coupons[0].status if coupons else None
    )
    if refused is not None:
        raise Conflict(
            f"redemption {redemption.id} cannot be cancelled: {refused}", redemption_id=redemption.id
        )
    stock = holdings.stock_for_update(session, redemption.reward_code, now)
    void_locked(session, coupons, reason=f"reward redemption {redemption.id} cancelled", actor=actor, now=now)
    holdings.add_to_stock(session, stock, -1, now)
    restore_points(
        session,
        redemption.points_spend_key,
        key=f"reward:cancel:{redemption.id}",
        actor=actor,
        reason=f"reward {redemption.reward_code} cancelled: {reason}",
        now=now,
    )
    redemption.status = CANCELLED
    redemption.cancelled_at, redemption.cancelled_by, redemption.cancel_reason = now, actor, reason
    emit_many(
        session,
        [
            DomainEvent(
                topic="reward.cancelled",
                payload={
                    "redemption_id": redemption.id,
                    "reward": redemption.reward_code,
                    "points": redemption.points_price,
                    "reason": reason,
                },
                key=f"reward:cancelled:{redemption.id}",
                occurred_at=now,
                person_id=redemption.person_id,
            )
        ],
        now=now,
    )
    return RewardOutcome(redemption, True)


def redemptions_of(session: Session, person_id: int, *, limit: int = 50) -> list[RewardRedemption]:
    """Return a member's redemptions, newest first."""
    member = holdings.live_person(session, person_id)
    return list(
        session.scalars(
            select(RewardRedemption)
            .where(RewardRedemption.person_id.in_(holdings.person_ids_of(session, member)))
            .order_by(RewardRedemption.id.desc())
            .limit(limit)
        )
    )


def granted_coupon(session: Session, redemption: RewardRedemption) -> Coupon | None:
    """Return the coupon a redemption granted, if any."""
    return session.get(Coupon, redemption.coupon_id) if redemption.coupon_id else None
