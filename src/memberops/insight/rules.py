"""Pure rules of the analyses: quantile ranks, RFM scores and classes, lifecycle stages, layers.

No I/O here. The query modules build their expressions from these same definitions (the cut
points, the stage bounds, the layer order), and the unit tests check them on hand-worked values.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, StrEnum
from fractions import Fraction


def nearest_rank(quantile: Fraction, population: int) -> int:
    """Return the 1-based rank of the ``quantile`` value among ``population`` sorted values.

    Nearest-rank (``percentile_disc``): ceil(q × n), at least 1. The cut is always an observed
    value, so integer days and fen stay exact and every engine agrees; q is a fraction, so no
    floating-point ceiling ever lands one rank off (0.2 × 5 is 1, not 1.0000000000000002).
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile {quantile} is not in (0, 1]")
    if population < 1:
        raise ValueError("no population to rank")
    return max(1, -(-quantile.numerator * population // quantile.denominator))


def quantile_cut(sorted_values: list[int], quantile: Fraction) -> int:
    """Return the nearest-rank quantile of already sorted values."""
    return sorted_values[nearest_rank(quantile, len(sorted_values)) - 1]


def score(value: int, cuts: tuple[int, ...], *, lower_is_better: bool = False) -> int:
    """Return 1 + how many cut points ``value`` beats: strictly above (or below, for recency).

    With the quintile cuts this is the classic 1–5 score; a value equal to a cut does not beat it,
    so ties always score alike.
    """
    if lower_is_better:
        return 1 + sum(1 for cut in cuts if value < cut)
    return 1 + sum(1 for cut in cuts if value > cut)


class RfmClass(StrEnum):
    """The eight classic RFM classes (R, F, M each high or low against the class cut)."""

    IMPORTANT_VALUE = "important_value"  # 重要价值 R↑F↑M↑
    IMPORTANT_DEVELOP = "important_develop"  # 重要发展 R↑F↓M↑
    IMPORTANT_KEEP = "important_keep"  # 重要保持 R↓F↑M↑
    IMPORTANT_WIN_BACK = "important_win_back"  # 重要挽留 R↓F↓M↑
    GENERAL_VALUE = "general_value"  # 一般价值 R↑F↑M↓
    GENERAL_DEVELOP = "general_develop"  # 一般发展 R↑F↓M↓
    GENERAL_KEEP = "general_keep"  # 一般保持 R↓F↑M↓
    GENERAL_WIN_BACK = "general_win_back"  # 一般挽留 R↓F↓M↓


#: Chinese names, as operators know them.
RFM_CLASS_NAMES: dict[RfmClass, str] = {
    RfmClass.IMPORTANT_VALUE: "重要价值",
    RfmClass.IMPORTANT_DEVELOP: "重要发展",
    RfmClass.IMPORTANT_KEEP: "重要保持",
    RfmClass.IMPORTANT_WIN_BACK: "重要挽留",
    RfmClass.GENERAL_VALUE: "一般价值",
    RfmClass.GENERAL_DEVELOP: "一般发展",
    RfmClass.GENERAL_KEEP: "一般保持",
    RfmClass.GENERAL_WIN_BACK: "一般挽留",
}

#: (recency high, frequency high, monetary high) → class.
RFM_CLASS_OF: dict[tuple[bool, bool, bool], RfmClass] = {
    (True, True, True): RfmClass.IMPORTANT_VALUE,
    (True, False, True): RfmClass.IMPORTANT_DEVELOP,
    (False, True, True): RfmClass.IMPORTANT_KEEP,
    (False, False, True): RfmClass.IMPORTANT_WIN_BACK,
    (True, True, False): RfmClass.GENERAL_VALUE,
    (True, False, False): RfmClass.GENERAL_DEVELOP,
    (False, True, False): RfmClass.GENERAL_KEEP,
    (False, False, False): RfmClass.GENERAL_WIN_BACK,
}


@dataclass(frozen=True)
class RfmCuts:
    """Where R, F and M turn "high": recency below ``recency_days``, F and M above theirs."""

    recency_days: int
    frequency: int
    monetary_fen: int


def rfm_class(recency_days: int, frequency: int, monetary_fen: int, cuts: RfmCuts) -> RfmClass:
    """Return the class of one person: high R is more recent than the cut, high F and M above it."""
    return RFM_CLASS_OF[
        (recency_days < cuts.recency_days, frequency > cuts.frequency, monetary_fen > cuts.monetary_fen)
    ]


#: Quintile cut points: scores 1 to 5.
QUINTILES: tuple[Fraction, ...] = (Fraction(1, 5), Fraction(2, 5), Fraction(3, 5), Fraction(4, 5))
MEDIAN = Fraction(1, 2)


@dataclass(frozen=True)
class RfmSettings:
    """How RFM scores and classes are cut: population quantiles, or the brand's own thresholds.

    ``score_quantiles`` give the score cut points (quintiles: scores 1–5) and ``class_quantile`` the
    class cut (the median) of each dimension. A brand that fixes its thresholds instead gives
    ``score_cuts`` (ascending, per dimension) and/or ``class_cuts``; given ones win over quantiles.
    """

    score_quantiles: tuple[Fraction, ...] = QUINTILES
    class_quantile: Fraction = MEDIAN
    recency_score_cuts: tuple[int, ...] | None = None
    frequency_score_cuts: tuple[int, ...] | None = None
    monetary_score_cuts: tuple[int, ...] | None = None
    class_cuts: RfmCuts | None = None

    def __post_init__(self) -> None:
        for cuts in (self.recency_score_cuts, self.frequency_score_cuts, self.monetary_score_cuts):
            if cuts is not None and list(cuts) != sorted(cuts):
                raise ValueError("score cuts must be ascending")
        for quantile in (*self.score_quantiles, self.class_quantile):
            if not 0 < quantile <= 1:
                raise ValueError(f"quantile {quantile} is not in (0, 1]")


class Stage(StrEnum):
    """Lifecycle stages of a person on the as-of date (DOMAIN.md §4)."""

    REGISTERED = "registered"  # a member who never purchased
    NEW = "new"
    ACTIVE = "active"
    SILENT = "silent"
    SLEEPING = "sleeping"
    CHURNED = "churned"


STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)


@dataclass(frozen=True)
class LifecycleSettings:
    """The repurchase cycle and the stage bounds, in cycles since the last purchase.

    A purchaser is active while the days since the last purchase are under ``active_cycles`` ×
    cycle, silent under ``silent_cycles`` ×, sleeping under ``sleeping_cycles`` ×, churned after;
    new while the first purchase is under ``new_cycles`` × cycle ago. Days count business days:
    a purchase on the as-of date is 0 days ago.
    """

    cycle_days: int = 30
    new_cycles: int = 1
    active_cycles: int = 1
    silent_cycles: int = 2
    sleeping_cycles: int = 6

    def __post_init__(self) -> None:
        if self.cycle_days < 1:
            raise ValueError("the repurchase cycle must be at least one day")
        if not 0 < self.active_cycles <= self.silent_cycles <= self.sleeping_cycles:
            raise ValueError("stage bounds must rise: active ≤ silent ≤ sleeping cycles")
        if self.new_cycles < 0:
            raise ValueError("new_cycles must not be negative")

    @property
    def new_days(self) -> int:
        return self.new_cycles * self.cycle_days

    @property
    def active_days(self) -> int:
        return self.active_cycles * self.cycle_days

    @property
    def silent_days(self) -> int:
        return self.silent_cycles * self.cycle_days

    @property
    def sleeping_days(self) -> int:
        return self.sleeping_cycles * self.cycle_days


def stage(days_since_first: int | None, days_since_last: int | None, settings: LifecycleSettings) -> Stage:
    """Return the stage of one person; ``None`` days mean the person never purchased."""
    if days_since_last is None or days_since_first is None:
        return Stage.REGISTERED
    if days_since_first < settings.new_days:
        return Stage.NEW
    if days_since_last < settings.active_days:
        return Stage.ACTIVE
    if days_since_last < settings.silent_days:
        return Stage.SILENT
    if days_since_last < settings.sleeping_days:
        return Stage.SLEEPING
    return Stage.CHURNED


class Layer(IntEnum):
    """The five relationship layers (DOMAIN.md §2), in the order a relationship deepens."""

    CONNECTED = 1
    MEMBER_NOT_PURCHASED = 2
    PURCHASED = 3
    REPURCHASE = 4
    KOC = 5

    @property
    def code(self) -> str:
        return self.name.lower()


LAYER_ORDER: tuple[Layer, ...] = tuple(Layer)


def layer(*, member: bool, connected: bool, purchase_days: int, propagated: bool) -> Layer | None:
    """Return a person's layer for a period, or None when they hold none.

    ``member`` and ``connected`` are judged at the period's end; ``purchase_days`` and
    ``propagated`` count what happened inside it.
    """
    if member:
        if purchase_days >= 2:
            return Layer.KOC if propagated else Layer.REPURCHASE
        return Layer.PURCHASED if purchase_days == 1 else Layer.MEMBER_NOT_PURCHASED
    return Layer.CONNECTED if connected else None


@dataclass(frozen=True)
class LayerSettings:
    """What counts as reachable and as a positive review, for the relationship layers."""

    follow_kinds: tuple[str, str] = ("follow", "unfollow")
    group_kinds: tuple[str, str] = ("join_group", "leave_group")
    #: Consent channels whose latest grant makes a person reachable: the exclusive WeCom contact
    #: and the mini-program subscription.
    reach_consent_channels: tuple[str, ...] = ("wecom", "subscription")
    positive_ratings: tuple[int, ...] = (4, 5)
    visit_kind: str = "visit"


def ratio(numerator: int, denominator: int) -> Fraction | None:
    """Return numerator ÷ denominator exactly, or None when there is nothing to divide by."""
    return None if denominator == 0 else Fraction(numerator, denominator)


def decimal_text(value: Fraction | None) -> str | None:
    """Return a ratio as a decimal string with four places (None stays None).

    The one form every analysis prints a ratio in (JSON, CSV and the API alike), so a share
    computed by one analysis reads the same as the same share in another.
    """
    if value is None:
        return None
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.0001")))
