"""RFM scoring and classes, lifecycle stages and relationship layers (no database)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from memberops.insight.rules import (
    MEDIAN,
    QUINTILES,
    Layer,
    LifecycleSettings,
    RfmClass,
    RfmCuts,
    RfmSettings,
    Stage,
    layer,
    nearest_rank,
    quantile_cut,
    ratio,
    rfm_class,
    score,
    stage,
)


def test_nearest_rank_uses_exact_fractions() -> None:
    # 0.2 × 5 is exactly 1: a float ceiling would say 2.
    assert nearest_rank(Fraction(1, 5), 5) == 1
    assert nearest_rank(Fraction(1, 5), 7) == 2
    assert nearest_rank(MEDIAN, 7) == 4
    assert nearest_rank(MEDIAN, 8) == 4
    assert nearest_rank(Fraction(1, 100), 3) == 1
    assert nearest_rank(Fraction(1), 3) == 3


def test_nearest_rank_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not in"):
        nearest_rank(Fraction(0), 3)
    with pytest.raises(ValueError, match="no population"):
        nearest_rank(MEDIAN, 0)


def test_quantile_cuts_are_observed_values() -> None:
    values = [1000, 2500, 6000, 7000, 10000, 17000, 19500]
    assert [quantile_cut(values, q) for q in QUINTILES] == [2500, 6000, 10000, 17000]
    assert quantile_cut(values, MEDIAN) == 7000
    assert quantile_cut([3, 5], MEDIAN) == 3


def test_scores_count_the_cuts_beaten_strictly() -> None:
    cuts = (2500, 6000, 10000, 17000)
    assert [score(value, cuts) for value in (1000, 2500, 2501, 17000, 19500)] == [1, 1, 2, 4, 5]
    recency = (6, 17, 24, 25)
    assert [score(days, recency, lower_is_better=True) for days in (0, 6, 17, 25, 28)] == [5, 4, 3, 1, 1]


def test_the_eight_classes() -> None:
    cuts = RfmCuts(recency_days=30, frequency=1, monetary_fen=10000)
    cases = {
        (5, 2, 20000): RfmClass.IMPORTANT_VALUE,
        (5, 1, 20000): RfmClass.IMPORTANT_DEVELOP,
        (30, 2, 20000): RfmClass.IMPORTANT_KEEP,
        (90, 1, 20000): RfmClass.IMPORTANT_WIN_BACK,
        (5, 3, 10000): RfmClass.GENERAL_VALUE,
        (29, 1, 500): RfmClass.GENERAL_DEVELOP,
        (31, 2, 500): RfmClass.GENERAL_KEEP,
        (31, 1, 10000): RfmClass.GENERAL_WIN_BACK,
    }
    assert {values: rfm_class(*values, cuts) for values in cases} == cases


def test_rfm_settings_refuse_descending_cuts() -> None:
    with pytest.raises(ValueError, match="ascending"):
        RfmSettings(frequency_score_cuts=(3, 1))


def test_stages_at_their_bounds() -> None:
    settings = LifecycleSettings()  # 30-day cycle: new < 30, active < 30, silent < 60, sleeping < 180
    assert stage(None, None, settings) is Stage.REGISTERED
    assert stage(29, 29, settings) is Stage.NEW
    assert stage(30, 0, settings) is Stage.ACTIVE
    assert stage(90, 29, settings) is Stage.ACTIVE
    assert stage(90, 30, settings) is Stage.SILENT
    assert stage(90, 59, settings) is Stage.SILENT
    assert stage(90, 60, settings) is Stage.SLEEPING
    assert stage(400, 179, settings) is Stage.SLEEPING
    assert stage(400, 180, settings) is Stage.CHURNED


def test_stage_settings_must_rise() -> None:
    with pytest.raises(ValueError, match="rise"):
        LifecycleSettings(active_cycles=3, silent_cycles=2)
    with pytest.raises(ValueError, match="at least one day"):
        LifecycleSettings(cycle_days=0)


def test_layers() -> None:
    assert layer(member=False, connected=False, purchase_days=3, propagated=True) is None
    assert layer(member=False, connected=True, purchase_days=3, propagated=True) is Layer.CONNECTED
    assert layer(member=True, connected=False, purchase_days=0, propagated=True) is Layer.MEMBER_NOT_PURCHASED
    assert layer(member=True, connected=False, purchase_days=1, propagated=True) is Layer.PURCHASED
    assert layer(member=True, connected=True, purchase_days=2, propagated=False) is Layer.REPURCHASE
    assert layer(member=True, connected=False, purchase_days=2, propagated=True) is Layer.KOC
    assert [item.code for item in Layer] == [
        "connected",
        "member_not_purchased",
        "purchased",
        "repurchase",
        "koc",
    ]


def test_ratio() -> None:
    assert ratio(4, 9) == Fraction(4, 9)
    assert ratio(1, 0) is None
