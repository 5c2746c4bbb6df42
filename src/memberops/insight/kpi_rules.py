"""Pure rules of the KPI, cross-table, cohort, magic-number and preference analyses.

No I/O here. The query modules (``kpis``, ``cross``, ``cohorts``, ``magic``, ``preferences``) build
their expressions from these same definitions (the month boundaries, tier ranks, the "stay"
window, the preference threshold), and the unit tests check them on hand-worked values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from typing import TypeVar

from memberops.insight.periods import day_number
from memberops.kit.errors import ValidationFailed

#: The group of a figure over everyone.
ALL = "all"
#: The store (and store type) of an order with no store, or of a member who joined outside one.
NO_STORE = "none"
#: The tier group of a buyer who is not a member on the as-of date (guests included).
NON_MEMBER = "non_member"
#: The tier of a member when the brand has no programme and no tier change was ever recorded.
NO_TIER = "none"


class InvalidOption(ValidationFailed, ValueError):
    """An analysis option that cannot be read (an unknown dimension or measure, a bad threshold)."""

    code = "invalid_option"


class Dimension(StrEnum):
    """What a KPI or a cross table is broken down by.

    For people (members, new, active, churned, tier moves) ``store``/``store_type``/``channel`` are
    the member's **home**: the store and field of the membership spell they hold; for sales
    (orders, spend, purchasers, repurchase) they are **where the order was placed** (its store and
    its source channel). ``tier`` is the member's tier (see ``kpis``), ``non_member`` otherwise.
    """

    STORE = "store"
    STORE_TYPE = "store_type"
    CHANNEL = "channel"
    TIER = "tier"
    # Cross tables only: the person's attribute on the as-of date, as tag and segment
    # expressions read it (``compiler``), ``none`` for people without one (and guest orders).
    CITY = "city"
    STAGE = "stage"
    RFM = "rfm"
    LAYER = "layer"
    PREFERRED = "preferred"
    PLAN = "plan"


#: What cross tables break down by: every dimension.
DIMENSIONS: tuple[Dimension, ...] = tuple(Dimension)
#: The dimensions' names as help text lists them (the CLI's options, the API's parameters).
DIMENSION_NAMES = ", ".join(item.value for item in DIMENSIONS)
#: What KPIs are broken down by: where people and orders are, and the tier.
KPI_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension.STORE,
    Dimension.STORE_TYPE,
    Dimension.CHANNEL,
    Dimension.TIER,
)
#: The person attributes among them (the rest are columns of the KPI relations).
PERSON_DIMENSIONS: tuple[Dimension, ...] = tuple(item for item in Dimension if item not in KPI_DIMENSIONS)
#: The group of people without the attribute (and of guest orders) in a person dimension.
NO_VALUE = "none"


class Measure(StrEnum):
    """What a cross-table cell counts.

    ``members``: members on the as-of date (by home and tier); ``buyers``: distinct persons with a
    purchase in the period; ``orders``: purchases in the period (guests included); ``sales``: their
    net spend; ``aov``: sales ÷ orders.
    """

    MEMBERS = "members"
    BUYERS = "buyers"
    ORDERS = "orders"
    SALES = "sales"
    AOV = "aov"


_Choice = TypeVar("_Choice", bound=StrEnum)


def _named(choices: type[_Choice], text: str, what: str) -> _Choice:
    """Read one of ``choices`` by its value, refusing an unknown one with the list of known ones.

    Dimensions and measures come as text from the command line and from the API alike, and both
    should refuse a typo with the same message.
    """
    try:
        return choices(text.strip())
    except ValueError:
        known = ", ".join(item.value for item in choices)
        raise InvalidOption(f"{text!r} is not a {what}: use one of {known}") from None


def dimension(text: str) -> Dimension:
    """Read a dimension name, refusing unknown ones with the list of known ones."""
    return _named(Dimension, text, "dimension")


def measure(text: str) -> Measure:
    """Read a measure name, refusing unknown ones with the list of known ones."""
    return _named(Measure, text, "measure")


def share_option(text: str, name: str) -> Fraction:
    """Read a share given as text (``1/2`` or ``0.5``) for the option or parameter ``name``.

    The magic number's threshold and the preference share come as text from the command line and
    from the API, and must lie in (0, 1]; both refuse a bad one with the same message.
    """
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidOption(f"{name} takes a fraction like 1/2 or 0.5, not {text!r}") from None
    if not 0 < value <= 1:
        raise InvalidOption(f"{name} must lie in (0, 1]")
    return value


def tier_rank(tier: str | None, tiers: tuple[str, ...]) -> int:
    """Return a tier's rank, 0 for the lowest; a tier the programme no longer has ranks lowest."""
    if tier is None or tier not in tiers:
        return 0
    return tiers.index(tier)


def tier_move(before: str | None, after: str | None, tiers: tuple[str, ...]) -> str | None:
    """Return ``up``, ``down`` or None for a member's tier at a period's start and end."""
    start, end = tier_rank(before, tiers), tier_rank(after, tiers)
    if end > start:
        return "up"
    if end < start:
        return "down"
    return None


def month_label(day: date) -> str:
    return day.strftime("%Y-%m")


def month_index(day: date) -> int:
    """Return a calendar month as a running number (``year × 12 + month − 1``)."""
    return day.year * 12 + day.month - 1


def month_starts(first: date, last: date) -> tuple[tuple[int, int], ...]:
    """Return ``(month index, first day number)`` of every month from ``first``'s to ``last``'s.

    The query turns them into one CASE over day numbers (the month of a business day), so no
    engine does date arithmetic; a month starts on its first business day.
    """
    found = []
    for index in range(month_index(first), month_index(last) + 1):
        found.append((index, day_number(date(index // 12, index % 12 + 1, 1))))
    return tuple(found)


def month_of_day(day: int, starts: tuple[tuple[int, int], ...]) -> int | None:
    """Return the month index of a day number (the rule the query form mirrors); None before the first."""
    found = None
    for index, first_day in starts:
        if day >= first_day:
            found = index
    return found


def label_of_month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass(frozen=True)
class MagicSettings:
    """When a person "stays" after their n-th purchase, and where the magic number is drawn.

    A person **stays** after their n-th purchase day when they purchase again on a later day no
    more than ``window_days`` after it (default 60 = two repurchase cycles: the lifecycle's
    silent bound, so they never become sleeping). Only people whose n-th purchase day is at least
    ``window_days`` before the as-of date are judged (the window has fully passed by the as-of
    date, not the period's end: a month's purchases are judged once their windows have run out).
    The **magic number** is the smallest n whose stay rate reaches ``threshold`` among at least
    ``min_people`` judged people. ``max_purchases`` (N) caps the table: the last row, N+, counts
    each person once, at their N-th purchase (in the period, judged and stayed by the window after
    it); purchases after the N-th make no row.
    """

    window_days: int = 60
    threshold: Fraction = Fraction(1, 2)
    min_people: int = 30
    max_purchases: int = 10

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError("the stay window must be at least one day")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"the stay threshold {self.threshold} is not in (0, 1]")
        if self.min_people < 1:
            raise ValueError("min_people must be at least 1")
        if self.max_purchases < 1:
            raise ValueError("max_purchases must be at least 1")


def judged(nth_day: int, as_of_day: int, settings: MagicSettings) -> bool:
    """Whether the stay window after a purchase day has fully passed by the as-of date."""
    return nth_day + settings.window_days <= as_of_day


def stayed(nth_day: int, next_day: int | None, settings: MagicSettings) -> bool:
    """Whether a person purchased again within the stay window after their n-th purchase day."""
    return next_day is not None and next_day - nth_day <= settings.window_days


def magic_number(rates: dict[int, tuple[int, int]], settings: MagicSettings) -> int | None:
    """Return the smallest purchase count whose stay rate reaches the threshold, or None.

    ``rates`` maps n to (judged people, stayed people); counts with fewer than ``min_people``
    judged people are not considered.
    """
    for count in sorted(rates):
        people, stayed_people = rates[count]
        if people >= settings.min_people and Fraction(stayed_people, people) >= settings.threshold:
            return count
    return None


#: The preference tag of a person whose top category is below the threshold.
MIXED = "mixed"


@dataclass(frozen=True)
class PreferenceSettings:
    """A person **prefers** their top category when it holds at least ``min_share`` of their spend.

    ``excluded_categories`` are order-line categories that are not products — a paid plan, a gift
    card, a delivery fee — left out of everyone's spend, so a member who bought an annual plan
    does not "prefer" it over the fruit they buy every week.
    """

    min_share: Fraction = Fraction(1, 2)
    excluded_categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.min_share <= 1:
            raise ValueError(f"the preference share {self.min_share} is not in (0, 1]")


#: Top-category share buckets of the preference summary: [0, ¼), [¼, ½), [½, ¾), [¾, 1].
SHARE_BUCKETS: tuple[Fraction, ...] = (Fraction(1, 4), Fraction(1, 2), Fraction(3, 4))


def bucket_labels() -> tuple[str, ...]:
    bounds = [Fraction(0), *SHARE_BUCKETS, Fraction(1)]
    return tuple(f"{int(low * 100)}–{int(high * 100)}%" for low, high in pairwise(bounds))


def share_bucket(top_fen: int, total_fen: int) -> int:
    """Return the bucket (0–3) of a top-category share: how many bucket bounds it reaches."""
    return sum(1 for bound in SHARE_BUCKETS if top_fen * bound.denominator >= bound.numerator * total_fen)


def preference_tag(top_category: str, top_fen: int, total_fen: int, settings: PreferenceSettings) -> str:
    """Return the person's preferred category, or ``mixed`` below the threshold."""
    share = settings.min_share
    return top_category if top_fen * share.denominator >= share.numerator * total_fen else MIXED


def line_net_fen(line_fen: int, order_net_fen: int, order_lines_fen: int) -> int:
    """Return a line's share of its order's net payment, rounded down to the fen.

    Refunds are recorded per order, so a partial refund (and any order-level discount) is spread
    over the lines in proportion to their amounts.
    """
    if order_lines_fen <= 0:
        return 0
    return line_fen * order_net_fen // order_lines_fen


def average_fen(total_fen: int, count: int) -> Decimal | None:
    """Return total ÷ count in fen, rounded half to even to the fen (None for no count)."""
    if count == 0:
        return None
    return (Decimal(total_fen) / Decimal(count)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)


def yuan_text(fen: Decimal | None) -> str | None:
    """Return whole fen as a yuan string with two decimals (None stays None)."""
    if fen is None:
        return None
    return str((fen / 100).quantize(Decimal("0.01")))
