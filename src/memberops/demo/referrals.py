"""Shares by members and the orders they bring: the raw material of KOCs and propagation value.

A share happens before the order that carries its id, and the buyer is often a newcomer whose very
first order came through a friend's link, which is what referral (裂变) means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memberops.demo.calendar import SECONDS_PER_DAY
from memberops.demo.catalogue import PRODUCTS, Channel
from memberops.demo.membership import Membership
from memberops.demo.ordering import stable_order
from memberops.demo.population import Population

I64 = npt.NDArray[np.int64]

SHARE_TARGETS: tuple[str, ...] = ("product", "live", "video", "page")
SHARE_TARGET_SHARES: tuple[float, ...] = (0.5, 0.15, 0.15, 0.2)


@dataclass(frozen=True)
class ReferralParameters:
    """Shares that shape sharing and referral, saved to params.json."""

    sharer_share: float = 0.10  # of WeChat members who buy, more likely the more they buy
    shares_per_sharer: float = 4.0  # 1 + Poisson(this)
    first_order_referred: float = 0.30  # of first orders placed in the mini program
    other_order_referred: float = 0.03  # of later mini-program orders
    window_days: int = 14  # a share leads to orders within this many days


@dataclass(frozen=True)
class Shares:
    """One entry per share, sorted by time; the share id is ``serial`` (its row number + 1)."""

    sharer: I64
    seconds: I64
    target: I64
    sku: I64

    @property
    def size(self) -> int:
        """Number of shares."""
        return int(self.sharer.size)


def make_shares(
    rng: np.random.Generator,
    population: Population,
    membership: Membership,
    order_person: I64,
    order_seconds: I64,
    horizon_seconds: int,
    params: ReferralParameters,
) -> Shares:
    """Pick sharers among buying WeChat members and spread their shares over their active time."""
    count = np.bincount(order_person, minlength=population.size)
    last = np.zeros(population.size, dtype=np.int64)
    np.maximum.at(last, order_person, order_seconds)
    candidates = np.flatnonzero(membership.is_member() & population.wechat & (count > 0))
    propensity = np.minimum(0.9, params.sharer_share * count[candidates] / max(count[candidates].mean(), 1.0))
    sharers = candidates[rng.random(candidates.size) < propensity]
    sharer = np.repeat(sharers, 1 + rng.poisson(params.shares_per_sharer, sharers.size))
    start = membership.register_seconds[sharer]
    stop = np.minimum(horizon_seconds, last[sharer] + 30 * SECONDS_PER_DAY)
    seconds = start + (rng.random(sharer.size) * np.maximum(stop - start, 1)).astype(np.int64)
    order = stable_order(seconds, sharer)
    return Shares(
        sharer=sharer[order],
        seconds=seconds[order],
        target=rng.choice(len(SHARE_TARGETS), size=sharer.size, p=SHARE_TARGET_SHARES),
        sku=rng.integers(0, len(PRODUCTS), size=sharer.size),
    )


def refer_orders(
    rng: np.random.Generator,
    shares: Shares,
    person: I64,
    seconds: I64,
    channel: I64,
    first_of_person: npt.NDArray[np.bool_],
    params: ReferralParameters,
) -> I64:
    """The share row each order came through, or -1: a recent share by somebody else."""
    size = person.size
    chance = np.where(first_of_person, params.first_order_referred, params.other_order_referred)
    wants = (channel == Channel.MINI_PROGRAM) & (rng.random(size) < chance)
    low = np.searchsorted(shares.seconds, seconds - params.window_days * SECONDS_PER_DAY, side="left")
    high = np.searchsorted(shares.seconds, seconds, side="left")
    pick = low + (rng.random(size) * (high - low)).astype(np.int64)
    found = wants & (high > low)
    share = np.where(found, pick, -1)
    if shares.size:
        own = found & (shares.sharer[np.minimum(pick, shares.size - 1)] == person)
        share = np.where(own, -1, share)
    return share
