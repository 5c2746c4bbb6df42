"""The rewards catalogue (积分商城): who may redeem what, and what is left.

Pure rules (no I/O). A reward costs ``points_price`` points; ``stock`` is how many the brand offers
in all (None: unlimited) and counts redemptions that were not cancelled, so a cancellation puts
one back; ``limit_per_member`` likewise counts a member's redemptions that were not cancelled;
``tiers`` lists the tiers allowed to redeem (empty: everyone). The checks run in the order a member
would want to hear them: tier, own limit, stock, then points.
"""

from __future__ import annotations

from dataclasses import dataclass

from memberops.loyalty.offers import Reward
from memberops.loyalty.programme import Programme

REDEEMED = "redeemed"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class CatalogueItem:
    """A reward as a member sees it: price, what is left, whether they may redeem it and why not."""

    code: str
    name: str
    points_price: int
    stock_left: int | None
    limit_per_member: int | None
    redeemed_by_member: int
    grants: str
    rejection: str | None


def stock_left(reward: Reward, redeemed: int) -> int | None:
    """Return how many of ``reward`` are left after ``redeemed`` live redemptions (None: unlimited)."""
    if reward.stock is None:
        return None
    return max(0, reward.stock - redeemed)


def reward_rejection_reason(
    programme: Programme,
    reward: Reward,
    *,
    tier: str,
    redeemed_by_member: int,
    redeemed_in_all: int,
    balance: int | None = None,
) -> str | None:
    """Say why a member of ``tier`` cannot redeem ``reward`` now, or None.

    ``redeemed_by_member`` and ``redeemed_in_all`` count live (not cancelled) redemptions;
    ``balance`` is the member's spendable points when known (the ledger checks it again when it
    spends, under its lock).
    """
    if reward.tiers and tier not in reward.tiers:
        names = ", ".join(programme.tier(code).name for code in reward.tiers)
        return f'"{reward.name}" is for {names} members only'
    limit = reward.limit_per_member
    if limit is not None and redeemed_by_member >= limit:
        times = "once" if limit == 1 else f"{limit} times"
        return f'"{reward.name}" can be redeemed {times} per member, and this member already has'
    left = stock_left(reward, redeemed_in_all)
    if left == 0:
        return f'"{reward.name}" is out of stock'
    if balance is not None and balance < reward.points_price:
        return f'"{reward.name}" costs {reward.points_price} points and the balance is {balance}'
    return None


def catalogue_item(
    programme: Programme,
    reward: Reward,
    *,
    tier: str | None,
    redeemed_by_member: int,
    redeemed_in_all: int,
    balance: int | None,
) -> CatalogueItem:
    """Return ``reward`` as the catalogue lists it, for a member (``tier`` set) or for everyone."""
    rejection = (
        None
        if tier is None
        else reward_rejection_reason(
            programme,
            reward,
            tier=tier,
            redeemed_by_member=redeemed_by_member,
            redeemed_in_all=redeemed_in_all,
            balance=balance,
        )
    )
    grants = f"coupon:{reward.coupon}" if reward.coupon is not None else f"goods:{reward.goods}"
    return CatalogueItem(
        code=reward.code,
        name=reward.name,
        points_price=reward.points_price,
        stock_left=stock_left(reward, redeemed_in_all),
        limit_per_member=reward.limit_per_member,
        redeemed_by_member=redeemed_by_member,
        grants=grants,
        rejection=rejection,
    )


def cancellation_rejection_reason(status: str, *, coupon_status: str | None) -> str | None:
    """Say why a redemption cannot be cancelled, or None.

    A redemption that granted a coupon can only be cancelled while that coupon is unused (``issued``
    or ``expired``): a coupon already spent on an order cannot come back with the points.
    """
    if status == CANCELLED:
        return "the redemption is already cancelled"
    if coupon_status == "redeemed":
        return "the coupon this redemption granted has been used on an order"
    return None
