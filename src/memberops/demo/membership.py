"""Who joins the programme, when, where, and who leaves it again.

A member usually registers at the till or in the mini program on the day of a first purchase, some only
after a few purchases as a guest; Tmall shoppers join by binding their Tmall account. The register
event is what ties a person's phone, card number and channel account together for OneID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memberops.demo.catalogue import Channel, Field
from memberops.demo.population import Population
from memberops.demo.purchases import PurchaseHistory

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class MembershipParameters:
    """Shares that shape joining and leaving, saved to params.json."""

    register_later: float = 0.25  # buying members who register at their 2nd-4th purchase, not the first
    pos_buyers_joining_in_mini_program: float = 0.40  # scan the till's QR code instead of signing up at POS
    cancel_share: float = 0.01


@dataclass(frozen=True)
class Membership:
    """Per person: when and where they registered and when they cancelled (NEVER when not)."""

    register_seconds: I64
    register_field: I64  # a Field, -1 for non-members
    register_store: I64  # store index for the register event, -1 when none
    cancel_seconds: I64

    def is_member(self) -> Bools:
        """People who ever registered."""
        return self.register_field >= 0

    def member_at(self, people: I64, seconds: I64) -> Bools:
        """Whether each person was a member at that moment."""
        registered = self.register_seconds[people]
        return (registered <= seconds) & (seconds < self.cancel_seconds[people])


def decide_membership(
    rng: np.random.Generator,
    population: Population,
    history: PurchaseHistory,
    order_channel: I64,
    order_store: I64,
    arrivals: I64,
    horizon_seconds: int,
    params: MembershipParameters,
) -> Membership:
    """Register every member at one of their purchases (or at arrival if they never buy)."""
    size = population.size
    register_seconds = np.full(size, NEVER, dtype=np.int64)
    register_field = np.full(size, -1, dtype=np.int64)
    register_store = np.full(size, -1, dtype=np.int64)
    members = np.arange(population.members, dtype=np.int64)
    wechat = population.wechat[members]
    register_seconds[members] = arrivals[members]
    register_field[members] = np.where(wechat, Field.MINI_PROGRAM, Field.POS)
    with_store = ~wechat | (rng.random(members.size) < 0.5)
    register_store[members] = np.where(with_store, population.home_store[members], -1)

    buying = history.buyers[history.buyers < population.members]
    first = np.searchsorted(history.person, buying, side="left")
    count = np.searchsorted(history.person, buying, side="right") - first
    later = rng.random(buying.size) < params.register_later
    nth = np.where(later, rng.integers(1, 4, size=buying.size), 0)
    order = first + np.minimum(nth, count - 1)
    before = rng.integers(30, 600, size=buying.size)
    register_seconds[buying] = np.maximum(history.seconds[order] - before, 0)
    channel = order_channel[order]
    via_mini_program = population.wechat[buying] & (
        (channel == Channel.MINI_PROGRAM)
        | (channel == Channel.DOUYIN)
        | (channel == Channel.MEITUAN)
        | ((channel == Channel.POS) & (rng.random(buying.size) < params.pos_buyers_joining_in_mini_program))
    )
    field = np.where(
        channel == Channel.TMALL, Field.TMALL, np.where(via_mini_program, Field.MINI_PROGRAM, Field.POS)
    )
    register_field[buying] = field
    register_store[buying] = np.where(
        field == Field.POS,
        np.where(channel == Channel.POS, order_store[order], population.home_store[buying]),
        np.where(field == Field.MINI_PROGRAM, register_store[buying], -1),
    )
    return Membership(
        register_seconds=register_seconds,
        register_field=register_field,
        register_store=register_store,
        cancel_seconds=_cancellations(rng, register_seconds, members, horizon_seconds, params.cancel_share),
    )


def _cancellations(
    rng: np.random.Generator, register_seconds: I64, members: I64, horizon_seconds: int, share: float
) -> I64:
    """Pick the members who leave, at a uniform time between joining and the end of the period."""
    cancel = np.full(register_seconds.size, NEVER, dtype=np.int64)
    leaving = members[rng.random(members.size) < share]
    joined = register_seconds[leaving]
    cancel[leaving] = (
        joined + 1 + (rng.random(leaving.size) * (horizon_seconds - 1 - joined)).astype(np.int64)
    )
    return cancel
