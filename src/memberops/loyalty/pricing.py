"""The checkout quote: member + cart → member prices, coupons, points, the final price.

Pure and deterministic (no I/O): the same member, cart, coupons and points give the same quote
whatever order the lines or coupons arrive in. The steps, each on what the previous one left:

1. **Member prices** per line: the better of the tier's and the active plan's (``benefits``).
2. **Coupons**: the caller's choice, checked (``coupons.apply_coupons``), or the best allowed
   combination of the member's coupons (``coupons.best_combination``); each discount is shared over
   its eligible lines so every line knows what it paid.
3. **Points**: at most ``CheckoutPolicy.points_max_percent`` of the goods amount left after coupons
   (default half), in whole points of ``point_value_fen``, never more than the balance. They are
   shared over the lines in proportion to what each has left.
4. **Delivery**: the fee is charged unless a benefit waives it; coupons and points never pay it.

Every line's payable amount is what it has left; the final price is their sum plus delivery, never
negative, and no discount takes off more than the amount it applies to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from memberops.kit.errors import Conflict, ValidationFailed
from memberops.loyalty.benefits import (
    benefit_sources,
    exclusive_service,
    free_delivery,
    member_day_multiplier,
    member_price,
    priority_purchase,
)
from memberops.loyalty.cart import Cart, PricedLine, cart_rejection_reason, sorted_lines
from memberops.loyalty.coupons import (
    CouponApplication,
    CouponRejected,
    HeldCoupon,
    applicability_rejection_reason,
    apply_coupons,
    apportion,
    best_combination,
    discount_fen,
    eligible_fen,
    usability_rejection_reason,
)
from memberops.loyalty.programme import Programme


class InsufficientPoints(Conflict):
    """More points were asked for than the member holds (the ledger's code, for one meaning)."""

    code = "insufficient_points"


class PointsOverLimit(Conflict):
    """More points were asked for than the checkout policy lets this order take."""

    code = "points_over_limit"


@dataclass(frozen=True)
class CheckoutPolicy:
    """How far points may pay for an order: ``points_max_percent`` of the goods left after coupons."""

    points_max_percent: int = 50

    def __post_init__(self) -> None:
        if not 0 <= self.points_max_percent <= 100:
            raise ValidationFailed("points_max_percent must be 0 to 100")


#: The policy used when a brand sets none: points pay at most half of the goods after coupons.
DEFAULT_POLICY = CheckoutPolicy()


@dataclass(frozen=True)
class QuotedLine:
    """One line: list price, member price (and whose), coupon and points shares, what is left to pay."""

    line_no: int
    sku: str
    category: str
    quantity: int
    list_fen: int
    member_fen: int
    member_price_source: str | None
    coupon_fen: int
    points_fen: int
    payable_fen: int


@dataclass(frozen=True)
class CouponOffer:
    """One of the member's coupons on this cart: what it would take off alone, or why it cannot apply.

    ``applied_fen`` is what it takes off in the quoted combination (0 when not used).
    """

    coupon_id: int
    template_code: str
    name: str
    alone_fen: int
    rejection: str | None
    applied_fen: int

    @property
    def used(self) -> bool:
        """Whether the quote uses this coupon."""
        return self.applied_fen > 0


@dataclass(frozen=True)
class Quote:
    """The priced cart. Amounts in fen; ``payable_fen`` is what the member pays in money."""

    lines: tuple[QuotedLine, ...]
    list_fen: int
    member_discount_fen: int
    coupon_discount_fen: int
    coupons: tuple[CouponOffer, ...]
    coupon_ids: tuple[int, ...]
    coupons_chosen_by: str
    points_balance: int
    points_usable: int
    points_used: int
    points_value_fen: int
    delivery_fen: int
    delivery_waived: bool
    goods_payable_fen: int
    payable_fen: int
    benefit_sources: tuple[str, ...]
    member_day_multiplier: Decimal | None
    priority_purchase: bool
    exclusive_service: bool


def quote(
    programme: Programme,
    cart: Cart,
    *,
    tier: str,
    paid_plan: str | None,
    coupons: Sequence[HeldCoupon],
    selected: Sequence[int] | None,
    points_balance: int,
    points: int = 0,
    policy: CheckoutPolicy = DEFAULT_POLICY,
    time_zone: ZoneInfo,
) -> Quote:
    """Price ``cart`` for a member of ``tier`` holding ``paid_plan`` (None: no active plan).

    ``coupons`` are the member's coupons; ``selected`` the ids the member chose (None: choose the
    best combination; empty: no coupon). ``points`` is how many points to pay with. Raises
    ``ValidationFailed`` for a bad cart, ``CouponRejected`` for a chosen coupon that cannot be
    used, ``InsufficientPoints`` / ``PointsOverLimit`` for too many points.
    """
    reason = cart_rejection_reason(cart)
    if reason is not None:
        raise ValidationFailed(reason)
    if points < 0:
        raise ValidationFailed(f"points to use must be zero or more, not {points}")
    sources = benefit_sources(programme, tier, paid_plan)
    lines = sorted_lines(cart.lines)
    member: list[tuple[int, str | None]] = [member_price(line, sources) for line in lines]
    priced = [
        PricedLine(line.line_no, line.sku, line.category, amount)
        for line, (amount, _) in zip(lines, member, strict=True)
    ]
    held = sorted(coupons, key=lambda coupon: coupon.coupon_id)
    application = _choose(held, selected, priced, cart)
    remaining = dict(application.remaining)
    goods_after_coupons = sum(remaining.values())

    usable = points_usable(goods_after_coupons, points_balance, programme.point_value_fen, policy)
    if points > max(points_balance, 0):
        raise InsufficientPoints(
            f"the balance is {points_balance} points, less than the {points} points asked for",
            balance=points_balance,
            asked=points,
        )
    if points > usable:
        raise PointsOverLimit(
            f"this order can take at most {usable} points, not {points}", usable=usable, asked=points
        )
    points_value = points * programme.point_value_fen
    points_shares = apportion(points_value, [remaining[line.line_no] for line in lines])

    coupon_by_line: dict[int, int] = {}
    for applied in application.applied:
        for number, share in applied.lines:
            coupon_by_line[number] = coupon_by_line.get(number, 0) + share
    quoted = tuple(
        QuotedLine(
            line_no=line.line_no,
            sku=line.sku,
            category=line.category,
            quantity=line.quantity,
            list_fen=line.list_fen,
            member_fen=amount,
            member_price_source=source,
            coupon_fen=coupon_by_line.get(line.line_no, 0),
            points_fen=points_share,
            payable_fen=remaining[line.line_no] - points_share,
        )
        for line, (amount, source), points_share in zip(lines, member, points_shares, strict=True)
    )
    waived = free_delivery(sources) and cart.delivery_fen > 0
    delivery = 0 if waived else cart.delivery_fen
    goods_payable = goods_after_coupons - points_value
    day = cart.at.astimezone(time_zone).date()
    member_day = member_day_multiplier(sources, day)
    list_total = sum(line.list_fen for line in quoted)
    member_total = sum(line.member_fen for line in quoted)
    return Quote(
        lines=quoted,
        list_fen=list_total,
        member_discount_fen=list_total - member_total,
        coupon_discount_fen=application.discount_fen,
        coupons=_offers(held, application, priced, cart),
        coupon_ids=application.coupon_ids,
        coupons_chosen_by="best" if selected is None else "caller",
        points_balance=points_balance,
        points_usable=usable,
        points_used=points,
        points_value_fen=points_value,
        delivery_fen=delivery,
        delivery_waived=waived,
        goods_payable_fen=goods_payable,
        payable_fen=goods_payable + delivery,
        benefit_sources=tuple(source.key for source in sources),
        member_day_multiplier=member_day[0] if member_day else None,
        priority_purchase=priority_purchase(sources),
        exclusive_service=exclusive_service(sources),
    )


def points_usable(goods_fen: int, balance: int, point_value_fen: int, policy: CheckoutPolicy) -> int:
    """Return the most whole points an order of ``goods_fen`` (after coupons) can take."""
    if goods_fen <= 0 or balance <= 0:
        return 0
    cap_fen = goods_fen * policy.points_max_percent // 100
    return min(balance, cap_fen // point_value_fen)


def _choose(
    held: Sequence[HeldCoupon], selected: Sequence[int] | None, priced: Sequence[PricedLine], cart: Cart
) -> CouponApplication:
    if selected is None:
        return best_combination(held, priced, channel=cart.channel, store=cart.store, at=cart.at)
    by_id = {coupon.coupon_id: coupon for coupon in held}
    chosen: list[HeldCoupon] = []
    for coupon_id in sorted(selected):
        if coupon_id not in by_id:
            raise CouponRejected(f"coupon {coupon_id} is not held by this member", coupon_id=coupon_id)
        chosen.append(by_id[coupon_id])
    return apply_coupons(chosen, priced, channel=cart.channel, store=cart.store, at=cart.at)


def _offers(
    held: Sequence[HeldCoupon], application: CouponApplication, priced: Sequence[PricedLine], cart: Cart
) -> tuple[CouponOffer, ...]:
    applied = {coupon.coupon_id: coupon.discount_fen for coupon in application.applied}
    offers = []
    for coupon in held:
        rejection = usability_rejection_reason(coupon, cart.at) or applicability_rejection_reason(
            coupon.template, priced, channel=cart.channel, store=cart.store
        )
        alone = 0 if rejection else discount_fen(coupon.template, eligible_fen(coupon.template, priced))
        offers.append(
            CouponOffer(
                coupon_id=coupon.coupon_id,
                template_code=coupon.template.code,
                name=coupon.template.name,
                alone_fen=alone,
                rejection=rejection,
                applied_fen=applied.get(coupon.coupon_id, 0),
            )
        )
    return tuple(offers)
