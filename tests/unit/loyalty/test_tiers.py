"""Growth and tiers: upgrades at once, scheduled downgrades with grace and floor, gifts and tasks."""

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memberops.kit.errors import NotFound
from memberops.loyalty.policies import TierEvaluation
from memberops.loyalty.programme import Programme, demo_programme, load_programme
from memberops.loyalty.tiers import (
    DowngradeWarning,
    NextTier,
    TierChange,
    add_months,
    downgrade_warning,
    evaluate_downgrade,
    growth_to_next_tier,
    growth_window,
    next_downgrade_date,
    next_evaluation_date,
    task_rejection_reason,
    tier_for_growth,
    upgrade,
    upgrade_gifts,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO = demo_programme()


def four_tiers(**evaluation: Any) -> Programme:
    doc = {
        "version": "t4",
        "name": "Four tiers",
        "tiers": [
            {"code": "standard", "name": "Standard", "threshold": 0},
            {"code": "silver", "name": "Silver", "threshold": 3000, "upgrade_gift": {"points": 100}},
            {"code": "gold", "name": "Gold", "threshold": 6000},
            {"code": "black", "name": "Black", "threshold": 20000, "upgrade_gift": {"points": 1000}},
        ],
        "evaluation": evaluation,
    }
    return load_programme(json.dumps(doc), "json")


# --- Tier for growth and upgrades ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("growth", "tier"),
    [
        (-50, "standard"),
        (0, "standard"),
        (2999, "standard"),
        (3000, "silver"),
        (5999, "silver"),
        (6000, "gold"),
        (10**9, "gold"),
    ],
)
def test_tier_for_growth_follows_the_domain_thresholds(growth: int, tier: str) -> None:
    assert tier_for_growth(DEMO, growth) == tier


def test_an_upgrade_happens_as_soon_as_growth_reaches_a_threshold() -> None:
    assert upgrade(DEMO, "standard", 3000) == TierChange("standard", "silver", "up", "growth")
    assert upgrade(DEMO, "standard", 7000) == TierChange("standard", "gold", "up", "growth")
    assert upgrade(DEMO, "silver", 5999) is None


def test_growth_below_the_current_tier_never_downgrades_at_once() -> None:
    assert upgrade(DEMO, "gold", 10) is None


def test_a_manual_floor_raises_the_member_to_it() -> None:
    assert upgrade(DEMO, "standard", 100, floor="gold") == TierChange("standard", "gold", "up", "floor")
    assert upgrade(DEMO, "standard", 100, floor="standard") is None


# --- Scheduled downgrades ------------------------------------------------------------------------


def test_a_member_short_of_their_tier_goes_down_one_tier_at_a_time_by_default() -> None:
    assert evaluate_downgrade(DEMO, "gold", 100) == TierChange("gold", "silver", "down", "evaluation")
    assert evaluate_downgrade(DEMO, "gold", 4000) == TierChange("gold", "silver", "down", "evaluation")
    assert evaluate_downgrade(DEMO, "silver", 2999) == TierChange("silver", "standard", "down", "evaluation")


def test_a_member_who_still_reaches_the_threshold_keeps_the_tier() -> None:
    assert evaluate_downgrade(DEMO, "gold", 6000) is None
    assert evaluate_downgrade(DEMO, "standard", 0) is None
    assert evaluate_downgrade(DEMO, "silver", 9000) is None


def test_more_steps_down_and_the_floor() -> None:
    rules = four_tiers(max_tiers_down=2)

    assert evaluate_downgrade(rules, "black", 100) == TierChange("black", "silver", "down", "evaluation")
    assert evaluate_downgrade(rules, "black", 100, floor="gold") == TierChange(
        "black", "gold", "down", "evaluation"
    )
    assert evaluate_downgrade(rules, "gold", 100, floor="gold") is None


def test_tiers_never_go_down_when_max_tiers_down_is_zero() -> None:
    assert evaluate_downgrade(four_tiers(max_tiers_down=0), "black", 0) is None


def test_will_downgrade_on_a_date_unless_more_growth() -> None:
    on = date(2026, 5, 1)

    assert downgrade_warning(DEMO, "gold", 5000, on=on) == DowngradeWarning("gold", "silver", on, 1000)
    assert downgrade_warning(DEMO, "gold", 6000, on=on) is None
    assert downgrade_warning(DEMO, "gold", 10, on=on, floor="gold") is None


def test_growth_to_the_next_tier() -> None:
    assert growth_to_next_tier(DEMO, "standard", 1200) == NextTier("silver", 1800)
    assert growth_to_next_tier(DEMO, "silver", 200) == NextTier("gold", 5800)
    assert growth_to_next_tier(DEMO, "silver", 7000) == NextTier("gold", 0)
    assert growth_to_next_tier(DEMO, "gold", 9000) is None


# --- The schedule and the window -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("evaluation", "on_or_after", "expected"),
    [
        (TierEvaluation(), date(2026, 3, 1), date(2026, 3, 1)),
        (TierEvaluation(), date(2026, 3, 2), date(2026, 4, 1)),
        (TierEvaluation(), date(2026, 12, 2), date(2027, 1, 1)),
        (TierEvaluation(every_months=3, day_of_month=15), date(2026, 2, 20), date(2026, 4, 15)),
        (TierEvaluation(every_months=3, day_of_month=15), date(2026, 1, 15), date(2026, 1, 15)),
        (TierEvaluation(every_months=12), date(2026, 1, 2), date(2027, 1, 1)),
    ],
)
def test_next_evaluation_date(evaluation: TierEvaluation, on_or_after: date, expected: date) -> None:
    assert next_evaluation_date(evaluation, on_or_after) == expected


def test_downgrades_are_decided_grace_days_after_the_evaluation() -> None:
    evaluation = DEMO.evaluation  # monthly on the 1st, 30 days of grace

    assert next_downgrade_date(evaluation, date(2026, 3, 15)) == date(2026, 3, 31)
    assert next_downgrade_date(evaluation, date(2026, 3, 31)) == date(2026, 3, 31)
    assert next_downgrade_date(evaluation, date(2026, 4, 1)) == date(2026, 5, 1)
    assert next_downgrade_date(TierEvaluation(), date(2026, 4, 2)) == date(2026, 5, 1)


def test_the_growth_window_is_the_twelve_months_before_the_day_in_brand_time() -> None:
    start, end = growth_window(DEMO.evaluation, date(2026, 3, 31), SHANGHAI)

    assert start == datetime(2025, 3, 30, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 30, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 15), -12, date(2025, 1, 15)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_last_day(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


# --- Gifts and tasks -----------------------------------------------------------------------------


def test_every_tier_reached_on_the_way_gives_its_upgrade_gift_once() -> None:
    silver_gift = DEMO.tier("silver").upgrade_gift
    gold_gift = DEMO.tier("gold").upgrade_gift
    assert silver_gift is not None and gold_gift is not None

    gifts = upgrade_gifts(DEMO, "standard", "gold")

    assert [(gift.tier, gift.gift) for gift in gifts] == [("silver", silver_gift), ("gold", gold_gift)]
    assert [gift.tier for gift in upgrade_gifts(DEMO, "standard", "gold", gifted_tiers={"silver"})] == [
        "gold"
    ]
    assert upgrade_gifts(DEMO, "gold", "gold") == ()
    assert upgrade_gifts(DEMO, "gold", "silver") == ()


def test_upgrade_gifts_repeat_when_the_programme_says_so() -> None:
    rules = four_tiers(upgrade_gift_repeats=True)

    gifts = upgrade_gifts(rules, "standard", "black", gifted_tiers={"silver", "black"})

    assert [(gift.tier, gift.gift.points) for gift in gifts] == [("silver", 100), ("black", 1000)]


def test_growth_tasks_are_rewarded_up_to_their_limit() -> None:
    assert task_rejection_reason(DEMO, "complete_profile", 0) is None
    assert task_rejection_reason(DEMO, "complete_profile", 1) == (
        'growth task "complete_profile" is rewarded once per member, and this member already had it'
    )
    with pytest.raises(NotFound, match='no growth task "dance"'):
        task_rejection_reason(DEMO, "dance", 0)


def test_a_task_without_a_limit_is_always_rewarded() -> None:
    doc = json.loads(DEMO.canonical_json())
    doc["growth"]["tasks"] = [{"code": "review", "name": "Review", "growth": 5, "limit_per_member": None}]
    rules = load_programme(json.dumps(doc), "json")

    assert task_rejection_reason(rules, "review", 10_000) is None


# --- Properties ------------------------------------------------------------------------------------

RULES = four_tiers(max_tiers_down=2)
TIER_CODES = [tier.code for tier in RULES.tiers]
growths = st.integers(min_value=-1000, max_value=30_000)
tier_codes = st.sampled_from(TIER_CODES)


@given(growths, growths)
def test_tier_for_growth_is_monotone(first: int, second: int) -> None:
    low, high = sorted((first, second))

    assert RULES.rank(tier_for_growth(RULES, low)) <= RULES.rank(tier_for_growth(RULES, high))


@given(tier_codes, growths, st.one_of(st.none(), tier_codes))
def test_upgrades_only_go_up_and_downgrades_only_down_within_their_limits(
    current: str, growth: int, floor: str | None
) -> None:
    rank = RULES.rank(current)
    floor_rank = RULES.rank(floor) if floor else 0

    up = upgrade(RULES, current, growth, floor=floor)
    down = evaluate_downgrade(RULES, current, growth, floor=floor)

    if up is not None:
        assert RULES.rank(up.to_tier) > rank
        assert RULES.rank(up.to_tier) == max(RULES.rank(tier_for_growth(RULES, growth)), floor_rank)
    if down is not None:
        assert rank - 2 <= RULES.rank(down.to_tier) < rank
        assert RULES.rank(down.to_tier) >= max(floor_rank, RULES.rank(tier_for_growth(RULES, growth)))
    if growth >= RULES.tier(current).threshold:
        assert down is None


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)),
    st.sampled_from([1, 2, 3, 4, 6, 12]),
    st.integers(min_value=1, max_value=28),
    st.integers(min_value=0, max_value=90),
)
def test_the_next_dates_are_the_first_scheduled_ones(
    day: date, every: int, day_of_month: int, grace: int
) -> None:
    evaluation = TierEvaluation(every_months=every, day_of_month=day_of_month, grace_days=grace)

    def scheduled(candidate: date) -> bool:
        return candidate.day == day_of_month and (candidate.month - 1) % every == 0

    found = next_evaluation_date(evaluation, day)
    assert found >= day and scheduled(found)
    assert not any(scheduled(day + timedelta(days=offset)) for offset in range((found - day).days))
    decided = next_downgrade_date(evaluation, day)
    assert decided >= day and scheduled(decided - timedelta(days=grace))
    assert not any(scheduled(day + timedelta(days=offset - grace)) for offset in range((decided - day).days))
