"""Growth value and tiers: which tier a growth value earns, upgrades, scheduled downgrades, gifts.

A member's growth is what their growth ledger holds inside the rolling window (``window_months``
back from a day). Upgrades happen at once, as soon as that growth reaches a higher threshold.
Downgrades only happen on the schedule: evaluation dates warn members who are short, and the
downgrade is decided ``grace_days`` later over the window ending that day, never below the
member's manual floor and at most ``max_tiers_down`` tiers at a time. Tiers are compared by their
rank in the programme (0 is the lowest).
"""

from __future__ import annotations

import calendar
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from memberops.loyalty.offers import Gift
from memberops.loyalty.policies import TierEvaluation
from memberops.loyalty.programme import Programme


@dataclass(frozen=True)
class TierChange:
    """A move between tiers, as a tier-history row records it.

    ``reason``: ``growth`` (an upgrade earned by growth), ``floor`` (raised to the manual floor),
    ``evaluation`` (a scheduled downgrade).
    """

    from_tier: str
    to_tier: str
    direction: Literal["up", "down"]
    reason: Literal["growth", "floor", "evaluation"]


@dataclass(frozen=True)
class DowngradeWarning:
    """ "Will go down from ``tier`` to ``to_tier`` on ``on`` unless ``growth_needed`` more growth"."""

    tier: str
    to_tier: str
    on: date
    growth_needed: int


@dataclass(frozen=True)
class NextTier:
    """ "``growth_needed`` more growth to reach ``tier``"."""

    tier: str
    growth_needed: int


@dataclass(frozen=True)
class TierGift:
    """The upgrade gift of ``tier``, due because the member reached it."""

    tier: str
    gift: Gift


def tier_for_growth(programme: Programme, growth: int) -> str:
    """Return the code of the highest tier whose threshold ``growth`` reaches (the lowest for growth < 0)."""
    reached = programme.tiers[0].code
    for tier in programme.tiers:
        if growth >= tier.threshold:
            reached = tier.code
    return reached


def upgrade(
    programme: Programme, current: str, growth: int, *, floor: str | None = None
) -> TierChange | None:
    """Return the upgrade due at once for a member of ``current`` with ``growth`` in the window, if any.

    A manual ``floor`` above the current tier raises the member to it too.
    """
    current_rank = programme.rank(current)
    earned_rank = programme.rank(tier_for_growth(programme, growth))
    floor_rank = programme.rank(floor) if floor is not None else 0
    target = max(current_rank, earned_rank, floor_rank)
    if target == current_rank:
        return None
    reason: Literal["growth", "floor"] = "growth" if earned_rank >= floor_rank else "floor"
    return TierChange(current, programme.tiers[target].code, "up", reason)


def evaluate_downgrade(
    programme: Programme, current: str, growth: int, *, floor: str | None = None
) -> TierChange | None:
    """Return the scheduled downgrade for a member of ``current`` with ``growth`` in the window, if any.

    Call it on a downgrade date (``next_downgrade_date``) with the growth of the window ending that
    day (``growth_window``). The member keeps their tier if they still reach its threshold, never goes
    below ``floor``, and goes down at most ``evaluation.max_tiers_down`` tiers.
    """
    steps = programme.evaluation.max_tiers_down
    current_rank = programme.rank(current)
    earned_rank = programme.rank(tier_for_growth(programme, growth))
    floor_rank = programme.rank(floor) if floor is not None else 0
    target = max(earned_rank, current_rank - steps, floor_rank)
    if steps == 0 or target >= current_rank:
        return None
    return TierChange(current, programme.tiers[target].code, "down", "evaluation")


def downgrade_warning(
    programme: Programme, current: str, growth_kept: int, *, on: date, floor: str | None = None
) -> DowngradeWarning | None:
    """Return "will downgrade on ``on`` unless N more growth", or None if the tier is safe.

    ``on`` is the next downgrade date and ``growth_kept`` the growth already earned that will still
    be inside the window ending on ``on`` (``growth_window(evaluation, on, ...)``, up to now).
    """
    change = evaluate_downgrade(programme, current, growth_kept, floor=floor)
    if change is None:
        return None
    needed = programme.tier(current).threshold - growth_kept
    return DowngradeWarning(current, change.to_tier, on, needed)


def growth_to_next_tier(programme: Programme, current: str, growth: int) -> NextTier | None:
    """Return the tier above ``current`` and the growth still missing for it (None at the top)."""
    rank = programme.rank(current)
    if rank + 1 >= len(programme.tiers):
        return None
    above = programme.tiers[rank + 1]
    return NextTier(above.code, max(0, above.threshold - growth))


def upgrade_gifts(
    programme: Programme, from_tier: str, to_tier: str, *, gifted_tiers: Collection[str] = ()
) -> tuple[TierGift, ...]:
    """Return the upgrade gifts due when a member goes up from ``from_tier`` to ``to_tier``.

    Every tier reached on the way gives its gift (standard to gold gives silver's and gold's), in
    tier order. ``gifted_tiers`` are the tiers whose gift the member already had: they give nothing
    again unless the programme says ``upgrade_gift_repeats``.
    """
    repeats = programme.evaluation.upgrade_gift_repeats
    gifts: list[TierGift] = []
    for tier in programme.tiers[programme.rank(from_tier) + 1 : programme.rank(to_tier) + 1]:
        if tier.upgrade_gift is not None and (repeats or tier.code not in gifted_tiers):
            gifts.append(TierGift(tier.code, tier.upgrade_gift))
    return tuple(gifts)


def task_rejection_reason(programme: Programme, task: str, completed_before: int) -> str | None:
    """Return why a growth task cannot be rewarded again, or None when it can.

    ``completed_before`` is how many times this member was already rewarded for it.
    """
    limit = programme.growth_task(task).limit_per_member
    if limit is not None and completed_before >= limit:
        times = "once" if limit == 1 else f"{limit} times"
        return f'growth task "{task}" is rewarded {times} per member, and this member already had it'
    return None


# --- The schedule ------------------------------------------------------------------------------


def next_evaluation_date(evaluation: TierEvaluation, on_or_after: date) -> date:
    """Return the first scheduled evaluation date on or after ``on_or_after``."""
    year, month = on_or_after.year, on_or_after.month
    while True:
        if (month - 1) % evaluation.every_months == 0:
            candidate = date(year, month, evaluation.day_of_month)
            if candidate >= on_or_after:
                return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def next_downgrade_date(evaluation: TierEvaluation, on_or_after: date) -> date:
    """Return the first day on or after ``on_or_after`` on which downgrades are decided.

    That is an evaluation date plus ``grace_days``; with no grace the two are the same day.
    """
    grace = timedelta(days=evaluation.grace_days)
    return next_evaluation_date(evaluation, on_or_after - grace) + grace


def growth_window(
    evaluation: TierEvaluation, ends_on: date, time_zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """Return the UTC instants ``[start, end)`` of the rolling window that ends when ``ends_on`` begins.

    The window covers the business days from the same day ``window_months`` earlier up to the day
    before ``ends_on``. For the growth that counts right now, pass tomorrow's business date.
    """
    start_day = add_months(ends_on, -evaluation.window_months)
    return _start_of(start_day, time_zone), _start_of(ends_on, time_zone)


def add_months(day: date, months: int) -> date:
    """Return the same day ``months`` later (earlier if negative), clamped to the month's last day."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _start_of(day: date, time_zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=time_zone).astimezone(UTC)
