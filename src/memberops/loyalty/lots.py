"""Points lots: when earned points expire, which lots a spend draws on, and refund shortfalls.

Every earning makes a lot with its own expiry; a member's spendable balance is the sum of the
remainders of lots not yet expired. Spending draws soonest-expiring first (ties: the older lot, then
the lower id), so members lose as little as possible to expiry, and each draw names its lot so a
cancelled redemption can put points back exactly where they came from. Instants are aware UTC
datetimes; expiry dates are business dates in the brand's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from memberops.loyalty.policies import ExpiryPolicy, ShortfallPolicy


@dataclass(frozen=True)
class PointsLot:
    """Points from one earning; ``remaining`` is what is left of it, ``expires_at`` None never expires."""

    lot_id: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class LotDraw:
    """``amount`` points taken from lot ``lot_id`` (one allocation row of a spend or take-back)."""

    lot_id: int
    amount: int


@dataclass(frozen=True)
class LotExpiry:
    """``amount`` points of lot ``lot_id`` that expire (or expired) at ``expires_at``."""

    lot_id: int
    amount: int
    expires_at: datetime


@dataclass(frozen=True)
class TakeBack:
    """How a refund's take-back is covered: from lots first, the rest per the shortfall policy.

    ``negative_balance`` is how far the balance goes below zero, ``claw_back_debt`` the debt later
    earnings repay; at most one of the two is non-zero, depending on the policy.
    """

    draws: tuple[LotDraw, ...]
    shortfall: int
    policy: ShortfallPolicy

    @property
    def from_lots(self) -> int:
        """Points taken from lots."""
        return sum(draw.amount for draw in self.draws)

    @property
    def negative_balance(self) -> int:
        """Points by which the balance goes below zero (``negative_balance`` policy)."""
        return self.shortfall if self.policy == "negative_balance" else 0

    @property
    def claw_back_debt(self) -> int:
        """Points owed from future earnings (``claw_back_from_future`` policy)."""
        return self.shortfall if self.policy == "claw_back_from_future" else 0


@dataclass(frozen=True)
class DebtSettlement:
    """How a new earning splits between repaying a shortfall and becoming a spendable lot."""

    repaid: int
    credited: int


def expiry_of(earned_at: datetime, policy: ExpiryPolicy, time_zone: ZoneInfo) -> datetime | None:
    """Return the UTC instant at which points earned at ``earned_at`` expire (None: never).

    ``end_of_year_after_earning``: points earned any day of 2026 (brand time) expire when 2028
    begins there, i.e. at the end of 31 December 2027. ``fixed_days``: at the end of the business
    day ``days`` days after the earning day.
    """
    _require_aware(earned_at, "earned_at")
    local = earned_at.astimezone(time_zone)
    if policy.policy == "never":
        return None
    if policy.policy == "end_of_year_after_earning":
        return datetime(local.year + 2, 1, 1, tzinfo=time_zone).astimezone(UTC)
    if policy.days is None:
        raise ValueError("the fixed_days policy needs a number of days")
    last_day = local.date() + timedelta(days=policy.days)
    return datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=time_zone).astimezone(UTC)


def is_spendable(lot: PointsLot, now: datetime) -> bool:
    """Return whether a lot still has points that have not expired at ``now``."""
    return lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > now)


def draw(lots: Iterable[PointsLot], amount: int, *, now: datetime) -> tuple[LotDraw, ...]:
    """Return which lots a spend of ``amount`` points draws on, soonest-expiring first.

    Expired lots (``expires_at <= now``) are skipped even if the expiry job has not run yet. Raises
    ``ValueError`` when the lots cannot cover the amount: check ``redemption_rejection_reason``
    against the spendable balance first.
    """
    _require_aware(now, "now")
    if amount < 0:
        raise ValueError(f"cannot draw a negative amount ({amount})")
    draws, left = _draw_in_order(_spending_order(lot for lot in lots if is_spendable(lot, now)), amount)
    if left:
        raise ValueError(f"the lots hold {amount - left} spendable points, less than {amount}")
    return draws


def spendable_balance(lots: Iterable[PointsLot], now: datetime) -> int:
    """Return the points a member can spend at ``now``: the remainders of unexpired lots."""
    return sum(lot.remaining for lot in lots if is_spendable(lot, now))


def redemption_rejection_reason(balance: int, amount: int) -> str | None:
    """Return why ``amount`` points cannot be redeemed from ``balance``, or None when they can.

    ``balance`` is the spendable balance (negative under the negative-balance refund policy).
    """
    if amount <= 0:
        return f"a redemption must be a whole number of points above zero, not {amount}"
    if balance < amount:
        return f"the balance is {balance} points, less than the {amount} points asked for"
    return None


def expired_remainders(lots: Iterable[PointsLot], now: datetime) -> tuple[LotExpiry, ...]:
    """Return what the expiry job must expire at ``now``: remainders of lots whose expiry has passed.

    In expiry order, then lot id, so the job writes its entries in a stable order.
    """
    _require_aware(now, "now")
    found = [
        LotExpiry(lot.lot_id, lot.remaining, lot.expires_at)
        for lot in lots
        if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now
    ]
    return tuple(sorted(found, key=lambda expiry: (expiry.expires_at, expiry.lot_id)))


def expiring_between(lots: Iterable[PointsLot], start: datetime, end: datetime) -> tuple[LotExpiry, ...]:
    """Return remainders that will expire in ``(start, end]`` (for "points expiring soon" notices)."""
    found = [
        LotExpiry(lot.lot_id, lot.remaining, lot.expires_at)
        for lot in lots
        if lot.remaining > 0 and lot.expires_at is not None and start < lot.expires_at <= end
    ]
    return tuple(sorted(found, key=lambda expiry: (expiry.expires_at, expiry.lot_id)))


def plan_take_back(
    lots: Iterable[PointsLot],
    amount: int,
    *,
    policy: ShortfallPolicy,
    now: datetime,
    source_lot_id: int | None = None,
) -> TakeBack:
    """Return how a refund takes back ``amount`` points.

    Points are fungible, so the take-back first empties the lot the order created
    (``source_lot_id``), then draws on the member's other spendable lots soonest-expiring first;
    only what the whole spendable balance cannot cover is a shortfall, handled per ``policy``.
    Points that already expired are never taken back from the expired lot (they are gone).
    """
    _require_aware(now, "now")
    if amount < 0:
        raise ValueError(f"cannot take back a negative amount ({amount})")
    spendable = [lot for lot in lots if is_spendable(lot, now)]
    source = [lot for lot in spendable if lot.lot_id == source_lot_id]
    others = _spending_order(lot for lot in spendable if lot.lot_id != source_lot_id)
    draws, left = _draw_in_order([*source, *others], amount)
    return TakeBack(draws, left, policy)


def settle_debt(earned: int, debt: int) -> DebtSettlement:
    """Split a new earning of ``earned`` points: first repay ``debt`` (a shortfall), the rest is credited.

    Under either shortfall policy later earnings fill the hole first; under ``negative_balance``
    ``debt`` is minus the balance, under ``claw_back_from_future`` the outstanding claw-back.
    """
    if earned < 0 or debt < 0:
        raise ValueError(f"earned ({earned}) and debt ({debt}) must not be negative")
    repaid = min(earned, debt)
    return DebtSettlement(repaid=repaid, credited=earned - repaid)


def _spending_order(lots: Iterable[PointsLot]) -> list[PointsLot]:
    """Soonest expiry first, never-expiring last; then the older lot, then the lower id."""
    return sorted(
        lots,
        key=lambda lot: (
            lot.expires_at is None,
            lot.expires_at or lot.earned_at,
            lot.earned_at,
            lot.lot_id,
        ),
    )


def _draw_in_order(lots: Iterable[PointsLot], amount: int) -> tuple[tuple[LotDraw, ...], int]:
    """Take up to ``amount`` from lots in the given order; return the draws and what is left over."""
    draws: list[LotDraw] = []
    left = amount
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            draws.append(LotDraw(lot.lot_id, take))
            left -= take
    return tuple(draws), left


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
