"""Month boundaries, tier ranks, the stay rule, the magic number and preferences (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from memberops.insight.kpi_rules import (
    MIXED,
    Dimension,
    InvalidOption,
    MagicSettings,
    Measure,
    PreferenceSettings,
    average_fen,
    bucket_labels,
    dimension,
    judged,
    label_of_month,
    line_net_fen,
    magic_number,
    measure,
    month_of_day,
    month_starts,
    preference_tag,
    share_bucket,
    stayed,
    tier_move,
    tier_rank,
    yuan_text,
)
from memberops.insight.periods import day_number

TIERS = ("standard", "silver", "gold")


def test_tier_ranks_and_moves() -> None:
    assert [tier_rank(tier, TIERS) for tier in ("standard", "silver", "gold")] == [0, 1, 2]
    assert tier_rank("platinum", TIERS) == 0  # retired: ranks lowest
    assert tier_rank(None, TIERS) == 0
    assert tier_move("silver", "gold", TIERS) == "up"
    assert tier_move("gold", "standard", TIERS) == "down"
    assert tier_move("platinum", "standard", TIERS) is None
    assert tier_move("silver", "silver", ()) is None


def test_month_starts_and_the_month_of_a_day() -> None:
    starts = month_starts(date(2025, 11, 15), date(2026, 2, 3))

    assert starts == (
        (2025 * 12 + 10, day_number(date(2025, 11, 1))),
        (2025 * 12 + 11, day_number(date(2025, 12, 1))),
        (2026 * 12 + 0, day_number(date(2026, 1, 1))),
        (2026 * 12 + 1, day_number(date(2026, 2, 1))),
    )
    assert label_of_month(month_of_day(day_number(date(2025, 12, 31)), starts) or 0) == "2025-12"
    assert label_of_month(month_of_day(day_number(date(2026, 1, 1)), starts) or 0) == "2026-01"
    assert month_of_day(day_number(date(2025, 10, 31)), starts) is None


def test_stay_rule_counts_the_window_inclusively() -> None:
    settings = MagicSettings(window_days=30)

    assert judged(100, 130, settings)
    assert not judged(101, 130, settings)
    assert stayed(100, 130, settings)
    assert not stayed(100, 131, settings)
    assert not stayed(100, None, settings)


def test_magic_number_is_the_smallest_count_reaching_the_threshold_with_enough_people() -> None:
    rates = {1: (50, 10), 2: (20, 11), 3: (40, 25), 4: (5, 5)}

    assert magic_number(rates, MagicSettings(min_people=30)) == 3  # n=2 has too few people
    assert magic_number(rates, MagicSettings(min_people=1)) == 2
    assert magic_number(rates, MagicSettings(min_people=1, threshold=Fraction(9, 10))) == 4
    assert magic_number({}, MagicSettings()) is None


@pytest.mark.parametrize(
    "settings",
    [{"window_days": 0}, {"threshold": Fraction(0)}, {"threshold": Fraction(3, 2)}, {"min_people": 0}],
)
def test_magic_settings_refuse_nonsense(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        MagicSettings(**settings)  # type: ignore[arg-type]


def test_preference_tag_and_share_buckets() -> None:
    settings = PreferenceSettings()

    assert preference_tag("tea", 50, 100, settings) == "tea"  # exactly half prefers
    assert preference_tag("tea", 49, 100, settings) == MIXED
    assert [share_bucket(top, 100) for top in (10, 25, 49, 50, 74, 75, 100)] == [0, 1, 1, 2, 2, 3, 3]
    assert bucket_labels() == ("0–25%", "25–50%", "50–75%", "75–100%")
    with pytest.raises(ValueError, match="not in"):
        PreferenceSettings(min_share=Fraction(0))


def test_a_refund_is_spread_over_the_lines_rounded_down() -> None:
    # ¥300 order (tea ¥200, snack ¥100) with ¥100 refunded: ¥200 net.
    assert line_net_fen(20000, 20000, 30000) == 13333
    assert line_net_fen(10000, 20000, 30000) == 6666
    assert line_net_fen(100, 100, 0) == 0


def test_average_order_value_rounds_half_to_even() -> None:
    assert average_fen(66500, 6) == Decimal(11083)
    assert average_fen(5, 2) == Decimal(2)  # 2.5 → 2
    assert average_fen(7, 2) == Decimal(4)  # 3.5 → 4
    assert average_fen(100, 0) is None
    assert yuan_text(Decimal(11083)) == "110.83"
    assert yuan_text(None) is None


def test_dimensions_and_measures_are_read_or_refused() -> None:
    assert dimension(" store_type ") is Dimension.STORE_TYPE
    assert measure("aov") is Measure.AOV
    assert dimension("city") is Dimension.CITY
    with pytest.raises(
        InvalidOption, match="store, store_type, channel, tier, city, stage, rfm, layer, preferred, plan"
    ):
        dimension("weather")
    with pytest.raises(InvalidOption, match="not a measure"):
        measure("profit")
