"""Benefits a member holds through their tier and paid plan: member prices, birthday gift, member day…

Pure rules (no I/O). A member holds the benefits of their tier and, while a paid plan is active,
those of the plan. Where both give the same kind of benefit the better one applies, never both:
the lower member price per line, the larger member-day multiplier; flags (free delivery, priority
purchase, exclusive service) hold when either source grants them. Birthday gifts are the one
exception, because they are separate gifts: the tier's and the plan's are each given once a year.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from memberops.loyalty.cart import CartLine
from memberops.loyalty.offers import Benefits, Gift
from memberops.loyalty.programme import Programme


@dataclass(frozen=True)
class BenefitSource:
    """Where benefits come from: ``tier:gold`` or ``paid_plan:annual``, and what they are."""

    key: str
    benefits: Benefits

    @property
    def kind(self) -> str:
        """``tier`` or ``paid_plan``."""
        return self.key.partition(":")[0]


def benefit_sources(
    programme: Programme, tier: str, paid_plan: str | None = None
) -> tuple[BenefitSource, ...]:
    """Return the member's benefit sources: the tier first, then the active paid plan if any."""
    sources = [BenefitSource(f"tier:{tier}", programme.tier(tier).benefits)]
    if paid_plan is not None:
        sources.append(BenefitSource(f"paid_plan:{paid_plan}", programme.paid_plan(paid_plan).benefits))
    return tuple(sources)


def member_line_fen(line: CartLine, benefits: Benefits) -> int:
    """Return what ``line`` costs under ``benefits``: the SKU's member price, else the member discount.

    A member price is per unit; the member discount is taken off the line total and rounded half up
    to the fen, like a percentage coupon. A member price above the list price is ignored.
    """
    member_unit = benefits.member_prices_fen.get(line.sku)
    if member_unit is not None:
        return min(line.list_fen, member_unit * line.quantity)
    percent = benefits.member_discount_percent
    if percent:
        return line.list_fen - (line.list_fen * percent + 50) // 100
    return line.list_fen


def member_price(line: CartLine, sources: Sequence[BenefitSource]) -> tuple[int, str | None]:
    """Return the line's best amount over ``sources`` and the source giving it (None: the list price).

    Ties go to the earlier source, so the tier is named when the plan gives no better price.
    """
    best, giver = line.list_fen, None
    for source in sources:
        amount = member_line_fen(line, source.benefits)
        if amount < best:
            best, giver = amount, source.key
    return best, giver


def free_delivery(sources: Sequence[BenefitSource]) -> bool:
    """Return whether any source waives the delivery fee."""
    return any(source.benefits.free_delivery for source in sources)


def priority_purchase(sources: Sequence[BenefitSource]) -> bool:
    """Return whether any source grants priority purchase (buying before a launch opens to all)."""
    return any(source.benefits.priority_purchase for source in sources)


def exclusive_service(sources: Sequence[BenefitSource]) -> bool:
    """Return whether any source grants exclusive service."""
    return any(source.benefits.exclusive_service for source in sources)


def member_day_multiplier(sources: Sequence[BenefitSource], day: date) -> tuple[Decimal, str] | None:
    """Return the member-day points multiplier of ``day`` (brand business date) and its source, or None.

    The largest applies (the tier's double points and the plan's triple give triple); ties go to
    the earlier source.
    """
    found: tuple[Decimal, str] | None = None
    for source in sources:
        member_day = source.benefits.member_day
        if (
            member_day is not None
            and member_day.day_of_month == day.day
            and (found is None or member_day.points_multiplier > found[0])
        ):
            found = (member_day.points_multiplier, source.key)
    return found


def priority_purchase_rejection_reason(
    *, has_priority: bool, at: datetime, opens_at: datetime, priority_opens_at: datetime
) -> str | None:
    """Say why a member cannot buy a launch at ``at`` yet, or None.

    Everyone may buy from ``opens_at``; members with priority purchase from ``priority_opens_at``.
    """
    if at >= opens_at:
        return None
    if has_priority and at >= priority_opens_at:
        return None
    if has_priority:
        return f"priority purchase opens at {priority_opens_at.isoformat()}"
    return f"this opens to members with priority purchase first, and to everyone at {opens_at.isoformat()}"


def birthday_gifts(sources: Sequence[BenefitSource]) -> tuple[tuple[str, Gift], ...]:
    """Return ``(source kind, gift)`` for every source with a birthday gift: ``tier`` then ``paid_plan``."""
    return tuple(
        (source.kind, source.benefits.birthday_gift)
        for source in sources
        if source.benefits.birthday_gift is not None
    )


def birthday_gift_rejection_reason(
    birthday: date | None, today: date, *, given_this_year: bool
) -> str | None:
    """Say why no birthday gift is due on ``today`` (brand business date), or None when one is.

    The gift is due on any day of the birthday month, once a year (a 29 February birthday is in
    February every year).
    """
    if birthday is None:
        return "no birthday is recorded"
    if birthday.month != today.month:
        return f"the birthday month is {birthday.month}, not {today.month}"
    if given_this_year:
        return f"the birthday gift of {today.year} was already given"
    return None


def birthday_rejection_reason(birthday: date, today: date) -> str | None:
    """Say why ``birthday`` cannot be recorded (in the future, or more than 130 years ago), or None."""
    if birthday > today:
        return "a birthday cannot be in the future"
    if today.year - birthday.year > 130:
        return "a birthday more than 130 years ago is a typo"
    return None
