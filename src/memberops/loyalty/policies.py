"""How growth, tiers and points behave, as parts of the programme document.

Defaults are the ones ``shared/DOMAIN.md`` §3 gives a brand out of the box: growth 1 per yuan,
1 point per 10 yuan, points expiring at the end of the year after the one they were earned in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from memberops.ingest.records import EVENT_KINDS, EVENT_TYPES
from memberops.loyalty.offers import Benefits, Gift
from memberops.loyalty.units import Code, Count, DocumentModel, Fen, Key, Multiplier, Name


def _event_kind(value: str) -> str:
    if value not in EVENT_KINDS:
        raise ValueError(f"{value!r} is not an event type; use one of {', '.join(EVENT_TYPES)}")
    return value


#: A behaviour event type of the canonical format (``docs/import-formats.md``, "Events").
EventKind = Annotated[str, AfterValidator(_event_kind)]


class Tier(DocumentModel):
    """A tier reached at ``threshold`` growth value within the evaluation window."""

    code: Code
    name: Name
    threshold: Count
    benefits: Benefits = Benefits()
    upgrade_gift: Gift | None = None


class GrowthTask(DocumentModel):
    """An action (complete the profile, first review…) worth growth value and points.

    ``limit_per_member`` is how many times one member can be rewarded for it (none: no limit).
    ``on_event`` names the behaviour event that completes it (a ``review`` completes "first
    review"), so events ingested by the API or an import reward it; without one, the task is
    completed by ``POST /members/{person}/tasks/{task}`` or ``memberops tier task``.
    """

    code: Code
    name: Name
    growth: Count = 0
    points: Count = 0
    limit_per_member: int | None = Field(default=1, ge=1)
    on_event: EventKind | None = None


class GrowthRules(DocumentModel):
    """Growth value from spending (``per_yuan`` of what was paid) and from tasks."""

    per_yuan: Multiplier = Decimal(1)
    tasks: tuple[GrowthTask, ...] = ()


class TierEvaluation(DocumentModel):
    """When and how tiers go down (they go up at once, as soon as growth reaches a threshold).

    Evaluations fall on ``day_of_month`` of every ``every_months``-th month counted from January
    (1: monthly, 3: quarterly, 12: once a year). A member short of their tier on an evaluation date
    is warned and has ``grace_days`` to make it up: the downgrade is decided on the evaluation
    date plus ``grace_days``, over the growth of the ``window_months`` before that day, and goes
    down at most ``max_tiers_down`` tiers (0: tiers never go down). A tier's upgrade gift is given
    once per member unless ``upgrade_gift_repeats``, so falling and climbing again earns nothing.
    """

    window_months: int = Field(default=12, ge=1, le=120)
    every_months: Literal[1, 2, 3, 4, 6, 12] = 1
    day_of_month: int = Field(default=1, ge=1, le=28)
    grace_days: int = Field(default=0, ge=0, le=366)
    max_tiers_down: int = Field(default=1, ge=0)
    upgrade_gift_repeats: bool = False


class BaseRate(DocumentModel):
    """``points`` for every ``per`` yuan eligible (default 1 point per 10 yuan)."""

    points: Count = 1
    per_fen: Fen = Field(default=1000, alias="per")


class Multipliers(DocumentModel):
    """Points multipliers by the member's tier, the order's channel and store, the line's category and SKU.

    A factor below 1 earns less (0: nothing) in that channel, store or category.
    """

    tier: Mapping[Code, Multiplier] = Field(default_factory=dict)
    channel: Mapping[Key, Multiplier] = Field(default_factory=dict)
    store: Mapping[Key, Multiplier] = Field(default_factory=dict)
    category: Mapping[Key, Multiplier] = Field(default_factory=dict)
    sku: Mapping[Key, Multiplier] = Field(default_factory=dict)


class Promotion(DocumentModel):
    """A promotion node (大促: 618, 双11) multiplying points on orders paid within its dates.

    ``starts_on`` and ``ends_on`` are business dates in the brand's time zone, both included.
    """

    code: Code
    name: Name
    starts_on: date
    ends_on: date
    multiplier: Multiplier


class Caps(DocumentModel):
    """Most points one order, and one member in one business day, can earn from purchases."""

    per_order: int | None = Field(default=None, ge=1)
    per_day: int | None = Field(default=None, ge=1)


class Exclusions(DocumentModel):
    """Spending that earns neither points nor growth value.

    Line amounts are what the customer paid; unless ``earn_on_discounted_part``, the discount taken
    off a line earns nothing (with it, points are counted on the price before the discount).
    """

    categories: tuple[Key, ...] = ()
    skus: tuple[Key, ...] = ()
    earn_on_discounted_part: bool = False


class EarnRules(DocumentModel):
    """How purchases earn points.

    ``stacking``: ``multiply`` multiplies every multiplier that applies; ``highest`` applies only the
    largest one (so a 0.5 channel factor counts only when nothing larger applies).
    """

    base: BaseRate = BaseRate()
    multipliers: Multipliers = Multipliers()
    stacking: Literal["multiply", "highest"] = "multiply"
    promotions: tuple[Promotion, ...] = ()
    caps: Caps = Caps()
    exclusions: Exclusions = Exclusions()


ExpiryKind = Literal["end_of_year_after_earning", "fixed_days", "never"]


class ExpiryPolicy(DocumentModel):
    """When earned points expire.

    ``end_of_year_after_earning``: at the end of 31 December of the year after the earning year;
    ``fixed_days``: at the end of the business day ``days`` days after the earning day; ``never``.
    """

    policy: ExpiryKind = "end_of_year_after_earning"
    days: int | None = Field(default=None, ge=1, le=36600)


ShortfallPolicy = Literal["negative_balance", "claw_back_from_future"]


class RefundPolicy(DocumentModel):
    """What happens when a refund takes back points that were already spent.

    ``negative_balance``: the balance goes below zero and later earnings fill it first.
    ``claw_back_from_future``: the balance stays at zero and the shortfall becomes a debt that later
    earnings repay before they become spendable.
    """

    shortfall: ShortfallPolicy = "negative_balance"
