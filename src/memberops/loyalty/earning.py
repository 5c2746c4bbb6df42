"""What a purchase earns (points and growth value), and what a refund takes back.

Pure integer arithmetic. Every multiplier has at most two decimals, so a line's exact points are a
whole number of ``1 / (base.per_fen × 100^k)``; the order's points are the **floor of the exact
sum** over its lines (so five 9-yuan lines earn 4 points at 1 per 10 yuan, not 0), then capped,
then shared back over the lines by largest remainder so the lines always add up to the order.
Refunds take back the floor of the refunded share, computed on the *cumulative* refunded amount
minus what earlier refunds took, so any sequence of partial refunds that ends in a full refund
takes back exactly what the order earned, never more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from memberops.loyalty.programme import Programme

MultiplierSource = Literal["tier", "channel", "store", "member_day", "promotion", "category", "sku"]
CapKind = Literal["per_order", "per_day"]
#: Everything refunded on an order so far: one order-level amount in fen, or fen per line number.
Refunded = int | Mapping[int, int]
_HUNDRED = 100
#: Growth is per yuan of fen paid, at a rate in hundredths: fen × rate / (100 × 100).
_GROWTH_SCALE = 100 * 100


@dataclass(frozen=True)
class PurchaseLine:
    """A line of an order: ``amount_fen`` is what was paid for it, after ``discount_fen`` came off."""

    line_no: int
    sku: str
    category: str
    quantity: int
    amount_fen: int
    discount_fen: int = 0


@dataclass(frozen=True)
class Purchase:
    """An order as the earn rules see it; ``paid_at`` must be timezone-aware."""

    channel: str
    store: str | None
    paid_at: datetime
    lines: tuple[PurchaseLine, ...]


@dataclass(frozen=True)
class AppliedMultiplier:
    """A multiplier that applied, and the rule it came from (``("tier", "gold", 1.5)``).

    A member day's ``key`` names whose benefit it is: ``tier:silver`` or ``paid_plan:annual``.
    """

    source: MultiplierSource
    key: str
    factor: Decimal


@dataclass(frozen=True)
class LineEarning:
    """What one line earned; ``exclusion`` says why a line earned nothing by rule."""

    line_no: int
    paid_fen: int
    eligible_fen: int
    points: int
    growth: int
    multipliers: tuple[AppliedMultiplier, ...]
    exclusion: str | None = None


@dataclass(frozen=True)
class Earning:
    """What an order earned: the figures for the ledger entries, and the breakdown behind them.

    ``uncapped_points`` is what the rules gave before ``cap`` (if any) cut it to ``points``;
    ``multipliers`` are those that applied to the whole order, each line lists its own.
    """

    points: int
    growth: int
    uncapped_points: int
    cap: CapKind | None
    business_date: date
    multipliers: tuple[AppliedMultiplier, ...]
    lines: tuple[LineEarning, ...]


def compute_earning(
    programme: Programme,
    purchase: Purchase,
    *,
    tier: str,
    time_zone: ZoneInfo,
    earned_today: int = 0,
    paid_plan: str | None = None,
) -> Earning:
    """Return the points and growth value a member of ``tier`` earns for ``purchase``.

    ``earned_today`` is what the member already earned from purchases on the order's business day
    (brand time zone), for the daily cap. ``paid_plan`` is the member's active plan, whose
    member-day benefit counts like the tier's (the larger of the two applies, they never stack).
    """
    _check_purchase(purchase, earned_today)
    table = _earn_table(programme)
    day = purchase.paid_at.astimezone(time_zone).date()
    order_multipliers = _order_multipliers(programme, table, purchase, tier, paid_plan, day)
    order_factors = [table.hundredths[applied] for applied in order_multipliers]
    # Every line's exact points share one denominator: the base amount times 100 per multiplier slot
    # (the order's multipliers plus a line's category and SKU).
    slots = len(order_multipliers) + 2
    denominator = table.per_fen * _power_of_hundred(slots)

    point_weights: list[int] = []
    growth_weights: list[int] = []
    line_parts: list[tuple[PurchaseLine, int, tuple[AppliedMultiplier, ...], str | None]] = []
    for line in purchase.lines:
        own = _line_multipliers(table, line)
        exclusion = None
        if line.category in table.excluded_categories:
            exclusion = f'category "{line.category}" earns nothing'
        elif line.sku in table.excluded_skus:
            exclusion = f'SKU "{line.sku}" earns nothing'
        if exclusion is None:
            eligible = line.amount_fen + (line.discount_fen if table.earn_on_discounted_part else 0)
            factors = [*order_factors, *(table.hundredths[applied] for applied in own)]
            point_weights.append(eligible * table.points * _combine(factors, table.stacking, slots))
            growth_weights.append(line.amount_fen * table.growth_rate)
        else:
            eligible = 0
            point_weights.append(0)
            growth_weights.append(0)
        line_parts.append((line, eligible, own, exclusion))

    uncapped = sum(point_weights) // denominator
    points, cap = _apply_caps(programme, uncapped, earned_today)
    growth = sum(growth_weights) // _GROWTH_SCALE
    line_points = apportion(points, point_weights)
    line_growth = apportion(growth, growth_weights)
    lines = tuple(
        LineEarning(
            line.line_no, line.amount_fen, eligible, line_points[index], line_growth[index], own, exclusion
        )
        for index, (line, eligible, own, exclusion) in enumerate(line_parts)
    )
    return Earning(points, growth, uncapped, cap, day, order_multipliers, lines)


def points_to_take_back(
    earning: Earning, refunded_fen: int | Mapping[int, int], taken_back_before: int
) -> int:
    """Return the points a refund takes back from an order that earned ``earning``.

    ``refunded_fen`` is everything refunded on the order so far, this refund included: either an
    order-level amount (shared over the order in proportion to what was paid) or an amount per
    line number. ``taken_back_before`` is what earlier refunds of the order took back. Use one form
    for all refunds of an order; the sum of all take-backs never exceeds ``earning.points`` and
    equals it once everything is refunded.
    """
    return _take_back(earning, refunded_fen, taken_back_before, [line.points for line in earning.lines])


def growth_to_take_back(
    earning: Earning, refunded_fen: int | Mapping[int, int], taken_back_before: int
) -> int:
    """Return the growth value a refund takes back; the same rule as ``points_to_take_back``."""
    return _take_back(earning, refunded_fen, taken_back_before, [line.growth for line in earning.lines])


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to non-negative ``weights`` by largest remainder.

    The parts add up to ``total`` exactly (when any weight is positive); ties go to the earlier
    weight, so the split is deterministic.
    """
    whole = sum(weights)
    if total == 0 or whole == 0:
        return [0] * len(weights)
    parts: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        part, remainder = divmod(weight * total, whole)
        parts.append(part)
        remainders.append(remainder)
    left = total - sum(parts)
    if left:
        for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
            parts[index] += 1
    return parts


def _check_purchase(purchase: Purchase, earned_today: int) -> None:
    if purchase.paid_at.tzinfo is None or purchase.paid_at.utcoffset() is None:
        raise ValueError("paid_at must be timezone-aware")
    if earned_today < 0:
        raise ValueError(f"earned_today must not be negative, not {earned_today}")
    numbers = [line.line_no for line in purchase.lines]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"line numbers repeat: {numbers}")
    for line in purchase.lines:
        if line.amount_fen < 0 or line.discount_fen < 0:
            raise ValueError(f"line {line.line_no} has a negative amount or discount")


@dataclass(frozen=True)
class _EarnTable:
    """The earn rules of one programme, flattened once for the per-order hot path.

    ``hundredths`` maps every multiplier the programme can apply to its factor in hundredths, so
    no ``Decimal`` arithmetic happens per order.
    """

    points: int
    per_fen: int
    stacking: str
    growth_rate: int
    earn_on_discounted_part: bool
    tier_codes: frozenset[str]
    paid_plan_codes: frozenset[str]
    excluded_categories: frozenset[str]
    excluded_skus: frozenset[str]
    by_source: Mapping[MultiplierSource, Mapping[str, AppliedMultiplier]]
    member_days: Mapping[tuple[str, str], tuple[int, AppliedMultiplier]]
    promotions: tuple[tuple[date, date, AppliedMultiplier], ...]
    hundredths: Mapping[AppliedMultiplier, int]

    @classmethod
    def build(cls, programme: Programme) -> _EarnTable:
        earn = programme.earn
        rules = earn.multipliers
        sources: dict[MultiplierSource, Mapping[str, Decimal]] = {
            "tier": rules.tier,
            "channel": rules.channel,
            "store": rules.store,
            "category": rules.category,
            "sku": rules.sku,
        }
        by_source = {
            source: {key: AppliedMultiplier(source, key, factor) for key, factor in factors.items()}
            for source, factors in sources.items()
        }
        holders = [("tier", tier.code, tier.benefits) for tier in programme.tiers]
        holders += [("paid_plan", plan.code, plan.benefits) for plan in programme.paid_plans]
        member_days = {
            (kind, code): (
                benefits.member_day.day_of_month,
                AppliedMultiplier("member_day", f"{kind}:{code}", benefits.member_day.points_multiplier),
            )
            for kind, code, benefits in holders
            if benefits.member_day is not None
        }
        promotions = tuple(
            (
                promotion.starts_on,
                promotion.ends_on,
                AppliedMultiplier("promotion", promotion.code, promotion.multiplier),
            )
            for promotion in earn.promotions
        )
        every = [
            *(applied for table in by_source.values() for applied in table.values()),
            *(applied for _, applied in member_days.values()),
            *(applied for _, _, applied in promotions),
        ]
        return cls(
            points=earn.base.points,
            per_fen=earn.base.per_fen,
            stacking=earn.stacking,
            growth_rate=_hundredths(programme.growth.per_yuan),
            earn_on_discounted_part=earn.exclusions.earn_on_discounted_part,
            tier_codes=frozenset(tier.code for tier in programme.tiers),
            paid_plan_codes=frozenset(plan.code for plan in programme.paid_plans),
            excluded_categories=frozenset(earn.exclusions.categories),
            excluded_skus=frozenset(earn.exclusions.skus),
            by_source=by_source,
            member_days=member_days,
            promotions=promotions,
            hundredths={applied: _hundredths(applied.factor) for applied in every},
        )


#: Tables by programme identity; each entry keeps its programme alive so an id is never reused
#: while it is cached. A handful of programmes are live at once (the active one, a new version).
_TABLES: dict[int, tuple[Programme, _EarnTable]] = {}
_TABLES_KEPT = 8


def _earn_table(programme: Programme) -> _EarnTable:
    cached = _TABLES.get(id(programme))
    if cached is not None and cached[0] is programme:
        return cached[1]
    if len(_TABLES) >= _TABLES_KEPT:
        _TABLES.clear()
    table = _EarnTable.build(programme)
    _TABLES[id(programme)] = (programme, table)
    return table


def _order_multipliers(
    programme: Programme, table: _EarnTable, purchase: Purchase, tier: str, paid_plan: str | None, day: date
) -> tuple[AppliedMultiplier, ...]:
    """The multipliers of the whole order, in a fixed order: tier, channel, store, member day, promotions."""
    if tier not in table.tier_codes:
        programme.rank(tier)  # raises NotFound, naming the programme version
    if paid_plan is not None and paid_plan not in table.paid_plan_codes:
        programme.paid_plan(paid_plan)
    rules = table.by_source
    found = (
        rules["tier"].get(tier),
        rules["channel"].get(purchase.channel),
        rules["store"].get(purchase.store) if purchase.store is not None else None,
    )
    applied = [multiplier for multiplier in found if multiplier is not None]
    member_days = [
        table.member_days[holder]
        for holder in (("tier", tier), ("paid_plan", paid_plan or ""))
        if holder in table.member_days and table.member_days[holder][0] == day.day
    ]
    if member_days:
        # The larger wins; on a tie the tier's, which is listed first (max keeps the first maximum).
        applied.append(max(member_days, key=lambda entry: entry[1].factor)[1])
    applied.extend(
        promotion for starts_on, ends_on, promotion in table.promotions if starts_on <= day <= ends_on
    )
    return tuple(applied)


def _line_multipliers(table: _EarnTable, line: PurchaseLine) -> tuple[AppliedMultiplier, ...]:
    category = table.by_source["category"].get(line.category)
    sku = table.by_source["sku"].get(line.sku)
    if category is None and sku is None:
        return ()
    return tuple(applied for applied in (category, sku) if applied is not None)


def _hundredths(factor: Decimal) -> int:
    """A factor of at most two decimals as a whole number of hundredths (``1.5`` -> ``150``)."""
    return int(factor * _HUNDRED)


def _combine(factors: Sequence[int], stacking: str, slots: int) -> int:
    """The combined factor in units of ``1 / 100^slots``."""
    if stacking == "highest":
        return (max(factors) if factors else _HUNDRED) * _power_of_hundred(slots - 1)
    product = _power_of_hundred(slots - len(factors))
    for factor in factors:
        product *= factor
    return product


def _power_of_hundred(exponent: int) -> int:
    # int ** int is typed as Any (a negative exponent gives a float); exponents here are never negative.
    return int(_HUNDRED**exponent)


def _apply_caps(programme: Programme, uncapped: int, earned_today: int) -> tuple[int, CapKind | None]:
    caps = programme.earn.caps
    points: int = uncapped
    cap: CapKind | None = None
    if caps.per_order is not None and points > caps.per_order:
        points, cap = caps.per_order, "per_order"
    if caps.per_day is not None and points > max(0, caps.per_day - earned_today):
        points, cap = max(0, caps.per_day - earned_today), "per_day"
    return points, cap


def _take_back(
    earning: Earning,
    refunded_fen: int | Mapping[int, int],
    taken_back_before: int,
    line_amounts: Sequence[int],
) -> int:
    total = sum(line_amounts)
    if taken_back_before < 0:
        raise ValueError(f"taken_back_before must not be negative, not {taken_back_before}")
    if isinstance(refunded_fen, int):
        if refunded_fen < 0:
            raise ValueError(f"a refunded amount must not be negative, not {refunded_fen}")
        paid = sum(line.paid_fen for line in earning.lines)
        # An order nothing was paid for is taken back whole by any refund of it.
        due = total if paid == 0 else total * min(refunded_fen, paid) // paid
    else:
        known = {line.line_no for line in earning.lines}
        unknown = sorted(set(refunded_fen) - known)
        if unknown:
            raise ValueError(f"the order has no line {unknown[0]}")
        due = 0
        for line, amount in zip(earning.lines, line_amounts, strict=True):
            if line.line_no not in refunded_fen:
                continue
            refunded = refunded_fen[line.line_no]
            if refunded < 0:
                raise ValueError(f"a refunded amount must not be negative, not {refunded}")
            due += amount if line.paid_fen == 0 else amount * min(refunded, line.paid_fen) // line.paid_fen
    return max(0, min(due, total) - taken_back_before)
