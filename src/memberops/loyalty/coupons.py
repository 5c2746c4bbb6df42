"""Coupons: codes, validity windows, what part of a cart a coupon applies to, its discount, stacking.

Pure rules (no I/O). Decisions, recorded in ADR 0007:

- **Codes** are 12 characters of Crockford's base 32 (no I, L, O, U), the last a Luhn mod 32 check
  character, shown as ``XXXX-XXXX-XXXX``. Typing is forgiving (lower case, dashes, spaces, O for 0,
  I or L for 1) and one mistyped character or one swap of neighbours is caught by the check.
- **Validity**: an absolute window runs from the start of ``starts_on`` to the end of ``ends_on``; a
  relative one from the instant of issue to the end of the ``days``-th business day counting the
  day of issue (brand time zone). ``valid_until`` is exclusive.
- **Scope**: each non-empty list of the scope restricts one dimension and the dimensions combine
  with AND: a line counts when its SKU is listed (if SKUs are) and its category is listed (if
  categories are); the order must be in a listed channel and store (if listed).
- **Amounts**: coupons apply to member-priced amounts. The minimum spend is measured on the eligible
  lines at member price, before any coupon. A percentage discount is taken off what is left of the
  eligible lines and rounded half up to the fen (``19.99 × 15 % = 2.9985 → 3.00``), then capped at
  ``max_discount``. No coupon ever takes off more than what is left of its eligible lines.
- **Stacking**: a coupon that is not ``stackable`` is used alone. Stackable coupons combine, at most
  one per ``stacking_group``; a stackable coupon without a group is its own template's group, so
  two coupons of one template never combine. A combination is applied in one canonical order,
  percentage coupons first, then by template code and coupon id, so the result never depends on
  the order coupons were offered in.
- **Best choice**: when the caller picks none, the combination with the largest discount is chosen;
  ties go to fewer coupons, then to the lower coupon ids.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from memberops.kit.errors import Conflict
from memberops.kit.money import fen_to_yuan
from memberops.loyalty.cart import PricedLine
from memberops.loyalty.offers import CouponScope, CouponTemplate

CouponStatus = Literal["issued", "redeemed", "expired", "void"]
COUPON_STATUSES: tuple[CouponStatus, ...] = ("issued", "redeemed", "expired", "void")
#: How many days before a coupon ends its holder gets a ``coupon.expiring`` notice.
EXPIRY_NOTICE_DAYS = 3

# --- Codes ---------------------------------------------------------------------------------------

#: Crockford's base 32: digits and capitals without I, L, O and U, which read like 1, 1, 0 and V.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Random characters in a code: 11 × 5 = 55 bits (ten million coupons share a code with odds of about
#: 1 in 700, and issuing checks for that and draws again).
BODY_LENGTH = 11
CODE_LENGTH = BODY_LENGTH + 1
_BASE = len(ALPHABET)
_INDEX = {character: index for index, character in enumerate(ALPHABET)}
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
#: The longest external code (a marketplace voucher) memberops stores.
MAX_EXTERNAL_CODE = 64


def check_character(body: str) -> str:
    """Return the Luhn mod 32 check character of ``body`` (characters of ``ALPHABET``).

    Luhn mod N catches every single-character error and every swap of two neighbours but one pair.
    """
    factor = 2
    total = 0
    for character in reversed(body):
        addend = factor * _INDEX[character]
        total += addend // _BASE + addend % _BASE
        factor = 1 if factor == 2 else 2
    return ALPHABET[(_BASE - total % _BASE) % _BASE]


def generate_code(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """Return a new random code with its check character (``randbelow`` is for tests)."""
    body = "".join(ALPHABET[randbelow(_BASE)] for _ in range(BODY_LENGTH))
    return body + check_character(body)


def normalize_code(text: str) -> str:
    """Return ``text`` as a code is stored: capitals, no dashes or spaces, O read as 0, I and L as 1."""
    return text.strip().upper().replace("-", "").replace(" ", "").translate(_READ_AS)


def code_rejection_reason(text: str) -> str | None:
    """Say why ``text`` is not one of our coupon codes (wrong length, letter or check), or None."""
    code = normalize_code(text)
    if len(code) != CODE_LENGTH:
        return f"a coupon code has {CODE_LENGTH} characters, not {len(code)}"
    wrong = sorted({character for character in code if character not in _INDEX})
    if wrong:
        return f"a coupon code has no {', '.join(repr(c) for c in wrong)}"
    if check_character(code[:-1]) != code[-1]:
        return "the coupon code is mistyped (its check character does not match)"
    return None


def format_code(code: str) -> str:
    """Return one of our codes in groups of four (``7KQ2-M9XD-4H0C``); external codes stay as they are."""
    if len(code) != CODE_LENGTH or code_rejection_reason(code) is not None:
        return code
    return "-".join(code[start : start + 4] for start in range(0, CODE_LENGTH, 4))


def external_code_rejection_reason(code: str) -> str | None:
    """Say why ``code`` cannot be stored as an external voucher code, or None."""
    if not code or len(code) > MAX_EXTERNAL_CODE:
        return f"an external code has 1 to {MAX_EXTERNAL_CODE} characters"
    if any(character.isspace() or not character.isprintable() for character in code):
        return "an external code has no spaces or control characters"
    return None


# --- Validity ----------------------------------------------------------------------------------


def validity_window(
    template: CouponTemplate, issued_at: datetime, time_zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """Return ``(valid_from, valid_until)`` of a coupon of ``template`` issued at ``issued_at``.

    ``valid_until`` is exclusive: the instant the last valid business day ends.
    """
    validity = template.validity
    if validity.days is not None:
        issue_day = issued_at.astimezone(time_zone).date()
        return issued_at, _start_of(issue_day + timedelta(days=validity.days), time_zone)
    assert validity.starts_on is not None  # programme_problems
    assert validity.ends_on is not None
    return _start_of(validity.starts_on, time_zone), _start_of(
        validity.ends_on + timedelta(days=1), time_zone
    )


def issuance_rejection_reason(
    template: CouponTemplate, issued_at: datetime, time_zone: ZoneInfo
) -> str | None:
    """Say why a coupon of ``template`` cannot be issued at ``issued_at`` (its window is over), or None."""
    _, valid_until = validity_window(template, issued_at, time_zone)
    if valid_until <= issued_at:
        ended = template.validity.ends_on
        return f'coupon template "{template.code}" was valid until {ended}; it can no longer be issued'
    return None


@dataclass(frozen=True)
class HeldCoupon:
    """A coupon as the rules see it: which one, of what template, its status and window."""

    coupon_id: int
    template: CouponTemplate
    status: CouponStatus
    valid_from: datetime
    valid_until: datetime


def usability_rejection_reason(coupon: HeldCoupon, at: datetime) -> str | None:
    """Say why ``coupon`` cannot be used at ``at`` (status, not yet valid, over), or None."""
    if coupon.status != "issued":
        return f"coupon {coupon.coupon_id} is {coupon.status}"
    if at < coupon.valid_from:
        return f"coupon {coupon.coupon_id} is valid from {coupon.valid_from.isoformat()}"
    if at >= coupon.valid_until:
        return f"coupon {coupon.coupon_id} expired at {coupon.valid_until.isoformat()}"
    return None


def expiry_due(status: CouponStatus, valid_until: datetime, now: datetime) -> bool:
    """Return whether an issued coupon is over and the expiry job should mark it ``expired``."""
    return status == "issued" and valid_until <= now


def expiry_notice_due(
    status: CouponStatus, valid_until: datetime, now: datetime, *, days: int = EXPIRY_NOTICE_DAYS
) -> bool:
    """Return whether an issued coupon ends within ``days`` from ``now`` (time for ``coupon.expiring``)."""
    return status == "issued" and now < valid_until <= now + timedelta(days=days)


# --- Scope and discount ------------------------------------------------------------------------


def line_in_scope(scope: CouponScope, line: PricedLine) -> bool:
    """Return whether ``line`` counts for a coupon of ``scope`` (SKU and category lists, AND-ed)."""
    return (not scope.skus or line.sku in scope.skus) and (
        not scope.categories or line.category in scope.categories
    )


def place_rejection_reason(scope: CouponScope, *, channel: str, store: str | None) -> str | None:
    """Say why a coupon of ``scope`` cannot be used in this channel or store, or None."""
    if scope.channels and channel not in scope.channels:
        return f"only in {', '.join(scope.channels)}, not in {channel}"
    if scope.stores and store not in scope.stores:
        return f"only in the stores {', '.join(scope.stores)}"
    return None


def eligible_fen(template: CouponTemplate, lines: Iterable[PricedLine]) -> int:
    """Return the member-priced amount of the lines ``template`` applies to."""
    return sum(line.amount_fen for line in lines if line_in_scope(template.scope, line))


def applicability_rejection_reason(
    template: CouponTemplate, lines: Sequence[PricedLine], *, channel: str, store: str | None
) -> str | None:
    """Say why ``template`` does not apply to the cart (place, no eligible goods, minimum spend), or None."""
    place = place_rejection_reason(template.scope, channel=channel, store=store)
    if place is not None:
        return place
    eligible = eligible_fen(template, lines)
    if eligible == 0:
        return "nothing in the cart is covered by the coupon"
    if eligible < template.min_spend_fen:
        return (
            f"needs {fen_to_yuan(template.min_spend_fen)} yuan of eligible goods, "
            f"the cart has {fen_to_yuan(eligible)}"
        )
    return None


def discount_fen(template: CouponTemplate, available_fen: int) -> int:
    """Return what ``template`` takes off ``available_fen`` (what is left of its eligible lines).

    Fixed and no-threshold coupons take their amount; a percentage coupon its share rounded half up
    to the fen, at most ``max_discount``. Never more than ``available_fen``, never below zero.
    """
    if available_fen <= 0:
        return 0
    if template.kind == "percentage":
        assert template.percent_off is not None  # programme_problems
        discount = (available_fen * template.percent_off + 50) // 100
        if template.max_discount_fen is not None:
            discount = min(discount, template.max_discount_fen)
    else:
        assert template.amount_fen is not None  # programme_problems
        discount = template.amount_fen
    return min(discount, available_fen)


# --- Stacking and applying a combination --------------------------------------------------------


class CouponRejected(Conflict):
    """A coupon that cannot be used on this cart, or a combination the stacking rules forbid."""

    code = "coupon_rejected"


def stacking_group(template: CouponTemplate) -> str:
    """Return the group of a stackable template: its ``stacking_group``, else the template itself."""
    return template.stacking_group or f"template:{template.code}"


def stacking_rejection_reason(coupons: Sequence[HeldCoupon]) -> str | None:
    """Say why ``coupons`` cannot be used together, or None (one coupon is always fine)."""
    if len({coupon.coupon_id for coupon in coupons}) != len(coupons):
        return "the same coupon is named twice"
    if len(coupons) < 2:
        return None
    for coupon in coupons:
        if not coupon.template.stackable:
            code = coupon.template.code
            return f'coupon {coupon.coupon_id} ("{code}") cannot be combined with other coupons'
    holder: dict[str, HeldCoupon] = {}
    for coupon in canonical_order(coupons):
        group = stacking_group(coupon.template)
        if group in holder:
            return (
                f"coupons {holder[group].coupon_id} and {coupon.coupon_id} are both in stacking group "
                f'"{group}": use one of them'
            )
        holder[group] = coupon
    return None


def canonical_order(coupons: Iterable[HeldCoupon]) -> list[HeldCoupon]:
    """Return ``coupons`` in the order a combination is applied: percentage first, then code, then id."""
    return sorted(
        coupons,
        key=lambda c: (0 if c.template.kind == "percentage" else 1, c.template.code, c.coupon_id),
    )


@dataclass(frozen=True)
class AppliedCoupon:
    """A coupon of a combination and what it took off, in total and line by line (``(line_no, fen)``)."""

    coupon_id: int
    template_code: str
    discount_fen: int
    lines: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CouponApplication:
    """A combination applied to a cart: the coupons in canonical order and what each line has left."""

    applied: tuple[AppliedCoupon, ...]
    remaining: tuple[tuple[int, int], ...]

    @property
    def discount_fen(self) -> int:
        """What the combination takes off in all."""
        return sum(coupon.discount_fen for coupon in self.applied)

    @property
    def coupon_ids(self) -> tuple[int, ...]:
        """The coupons used, ascending."""
        return tuple(sorted(coupon.coupon_id for coupon in self.applied))


def apply_coupons(
    coupons: Sequence[HeldCoupon],
    lines: Sequence[PricedLine],
    *,
    channel: str,
    store: str | None,
    at: datetime,
) -> CouponApplication:
    """Apply a combination chosen by the caller; raise ``CouponRejected`` naming the first problem.

    Every coupon must be usable, apply to the cart, combine with the others and take something off
    (a coupon that would take nothing is refused rather than wasted).
    """
    reason = stacking_rejection_reason(coupons)
    if reason is not None:
        raise CouponRejected(reason)
    for coupon in canonical_order(coupons):
        reason = usability_rejection_reason(coupon, at) or applicability_rejection_reason(
            coupon.template, lines, channel=channel, store=store
        )
        if reason is not None:
            raise CouponRejected(
                f'coupon {coupon.coupon_id} ("{coupon.template.code}"): {reason}', coupon_id=coupon.coupon_id
            )
    application = _apply(canonical_order(coupons), lines)
    for applied in application.applied:
        if applied.discount_fen == 0:
            raise CouponRejected(
                f"coupon {applied.coupon_id} would take nothing off: other coupons already cover its goods",
                coupon_id=applied.coupon_id,
            )
    return application


def usable_coupons(
    coupons: Iterable[HeldCoupon],
    lines: Sequence[PricedLine],
    *,
    channel: str,
    store: str | None,
    at: datetime,
) -> list[HeldCoupon]:
    """Return the coupons that could be used on this cart on their own, ascending by id."""
    return sorted(
        (
            coupon
            for coupon in coupons
            if usability_rejection_reason(coupon, at) is None
            and applicability_rejection_reason(coupon.template, lines, channel=channel, store=store) is None
        ),
        key=lambda coupon: coupon.coupon_id,
    )


def best_combination(
    coupons: Iterable[HeldCoupon],
    lines: Sequence[PricedLine],
    *,
    channel: str,
    store: str | None,
    at: datetime,
) -> CouponApplication:
    """Return the allowed combination of ``coupons`` that takes the most off this cart.

    The candidates are every usable coupon alone and one stack: per stacking group, the stackable
    coupon worth most on its own (ties: the one ending sooner, then the lower id). Coupons that
    take nothing within the stack are left out of it. The winner has the largest discount, then
    the fewest coupons, then the lowest ids; the result depends only on the set of coupons.
    """
    usable = usable_coupons(coupons, lines, channel=channel, store=store, at=at)
    options: list[CouponApplication] = [_apply([coupon], lines) for coupon in usable]
    best_in_group: dict[str, tuple[tuple[int, datetime, int], HeldCoupon]] = {}
    for coupon in usable:
        if not coupon.template.stackable:
            continue
        alone = discount_fen(coupon.template, eligible_fen(coupon.template, lines))
        rank = (-alone, coupon.valid_until, coupon.coupon_id)
        group = stacking_group(coupon.template)
        if group not in best_in_group or rank < best_in_group[group][0]:
            best_in_group[group] = (rank, coupon)
    if len(best_in_group) > 1:
        stack = canonical_order(coupon for _, coupon in best_in_group.values())
        stacked = _apply(stack, lines)
        worthwhile = [coupon for coupon in stack if _discount_of(stacked, coupon.coupon_id) > 0]
        options.append(_apply(worthwhile, lines) if len(worthwhile) < len(stack) else stacked)
    options = [option for option in options if option.discount_fen > 0]
    if not options:
        return _apply([], lines)
    return min(options, key=lambda option: (-option.discount_fen, len(option.applied), option.coupon_ids))


def _discount_of(application: CouponApplication, coupon_id: int) -> int:
    return next(applied.discount_fen for applied in application.applied if applied.coupon_id == coupon_id)


def _apply(ordered: Sequence[HeldCoupon], lines: Sequence[PricedLine]) -> CouponApplication:
    """Apply coupons already checked and in canonical order; share each discount over its lines."""
    remaining = {line.line_no: line.amount_fen for line in lines}
    applied: list[AppliedCoupon] = []
    for coupon in ordered:
        eligible = [line.line_no for line in lines if line_in_scope(coupon.template.scope, line)]
        weights = [remaining[number] for number in eligible]
        discount = discount_fen(coupon.template, sum(weights))
        shares = apportion(discount, weights)
        for number, share in zip(eligible, shares, strict=True):
            remaining[number] -= share
        applied.append(
            AppliedCoupon(
                coupon.coupon_id,
                coupon.template.code,
                discount,
                tuple((number, share) for number, share in zip(eligible, shares, strict=True) if share),
            )
        )
    return CouponApplication(tuple(applied), tuple(sorted(remaining.items())))


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over non-negative ``weights`` in proportion, by largest remainder.

    The parts add up to ``total`` when ``total <= sum(weights)``, and no part exceeds its weight;
    ties go to the earlier weight, so the split is deterministic.
    """
    whole = sum(weights)
    if total <= 0 or whole <= 0:
        return [0] * len(weights)
    parts: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        part, remainder = divmod(weight * total, whole)
        parts.append(part)
        remainders.append(remainder)
    left = total - sum(parts)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return parts


def _start_of(day: date, time_zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=time_zone).astimezone(UTC)
