"""What a brand gives its members, as parts of the programme document.

Gifts, benefits, coupon templates and packs, rewards and paid plans. These models only describe;
the checks that need the whole document (does this coupon template exist? is a percentage coupon
missing its percentage?) run in ``programme.programme_problems`` so every problem is listed at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field

from memberops.loyalty.units import Code, Count, DocumentModel, Fen, Key, Multiplier, Name, Percent


class Gift(DocumentModel):
    """Points, coupons and coupon packs handed over at once (upgrade, birthday, plan purchase).

    ``coupons`` names coupon templates, one coupon each (name a template twice for two coupons).
    """

    points: Count = 0
    coupons: tuple[Code, ...] = ()
    packs: tuple[Code, ...] = ()


class MemberDay(DocumentModel):
    """A day of every month on which purchases earn more points (the 18th, double points).

    Days run 1–28 so that the member day happens in every month, February included.
    """

    day_of_month: int = Field(ge=1, le=28)
    points_multiplier: Multiplier = Decimal(2)


class Benefits(DocumentModel):
    """What holding a tier or a paid plan entitles a member to.

    ``member_discount_percent`` is taken off the list price of everything without a member price of
    its own; ``member_prices`` (yuan per unit, by SKU) override it for those SKUs.
    """

    member_discount_percent: Percent | None = None
    member_prices_fen: Mapping[Key, Fen] = Field(default_factory=dict, alias="member_prices")
    birthday_gift: Gift | None = None
    member_day: MemberDay | None = None
    free_delivery: bool = False
    priority_purchase: bool = False
    exclusive_service: bool = False


class CouponScope(DocumentModel):
    """Where a coupon can be used; an empty list means no restriction on that dimension."""

    skus: tuple[Key, ...] = ()
    categories: tuple[Key, ...] = ()
    stores: tuple[Key, ...] = ()
    channels: tuple[Key, ...] = ()


class CouponValidity(DocumentModel):
    """Either an absolute window or a number of days from issue; exactly one of the two.

    Absolute: from the start of ``starts_on`` to the end of ``ends_on`` (business dates in the brand's
    time zone, both included). Relative: ``days`` business days counting the day of issue, so a
    7-day coupon issued on a Monday is good until the end of Sunday.
    """

    starts_on: date | None = None
    ends_on: date | None = None
    days: int | None = Field(default=None, ge=1, le=3660)


CouponKind = Literal["fixed_amount", "percentage", "no_threshold"]


class CouponTemplate(DocumentModel):
    """The recipe coupons are issued from.

    ``fixed_amount``: ``amount`` off an order of at least ``min_spend`` (满减). ``percentage``:
    ``percent_off`` per cent off, at most ``max_discount`` when given. ``no_threshold``: ``amount``
    off any order (无门槛). Stacking: a coupon that is not ``stackable`` is used alone; stackable ones
    combine, at most one per ``stacking_group``.
    """

    code: Code
    name: Name
    kind: CouponKind
    amount_fen: Fen | None = Field(default=None, alias="amount")
    percent_off: Percent | None = None
    max_discount_fen: Fen | None = Field(default=None, alias="max_discount")
    min_spend_fen: Fen = Field(default=0, alias="min_spend")
    scope: CouponScope = CouponScope()
    validity: CouponValidity
    stackable: bool = False
    stacking_group: Code | None = None


class CouponPack(DocumentModel):
    """Several coupons issued together: template code → how many of it."""

    code: Code
    name: Name
    coupons: Mapping[Code, int] = Field(default_factory=dict)


class Reward(DocumentModel):
    """An item of the rewards catalogue (积分商城), bought with points.

    It grants either one coupon of a template (``coupon``) or goods handed over by the brand
    (``goods`` describes them). ``stock`` is how many the brand offers in all (none: unlimited) and
    ``tiers`` the tiers allowed to redeem it (empty: everyone).
    """

    code: Code
    name: Name
    points_price: int = Field(ge=1, le=1_000_000_000)
    stock: Count | None = None
    limit_per_member: int | None = Field(default=None, ge=1)
    tiers: tuple[Code, ...] = ()
    coupon: Code | None = None
    goods: Name | None = None


class PaidPlan(DocumentModel):
    """A membership bought for a term (付费会员): its price, term, grace and extra benefits.

    ``grace_days`` after the term ends the member keeps the status ``expired`` but may still renew
    from the old end date; the plan's benefits stop at the end of the term.
    """

    code: Code
    name: Name
    months: int = Field(ge=1, le=36)
    price_fen: Fen = Field(alias="price")
    grace_days: int = Field(default=7, ge=0, le=366)
    benefits: Benefits = Benefits()
    welcome_gift: Gift | None = None
