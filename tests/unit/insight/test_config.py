"""The brand's insight thresholds: read from the environment or a TOML file, checked, defaults otherwise."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from memberops.insight.config import BrandSettings, brand_settings, load_config
from memberops.insight.kpi_rules import InvalidOption
from memberops.insight.rules import LifecycleSettings, RfmCuts


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RFM_CLASS_CUTS", "CYCLE_DAYS", "FILE", "RFM_MONETARY_CUTS", "MAGIC_THRESHOLD"):
        monkeypatch.delenv(f"MEMBEROPS_INSIGHT_{name}", raising=False)


def test_nothing_set_gives_the_domain_defaults() -> None:
    assert brand_settings(load_config()) == BrandSettings()


def test_environment_sets_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBEROPS_INSIGHT_RFM_CLASS_CUTS", "30,2,99.5")
    monkeypatch.setenv("MEMBEROPS_INSIGHT_CYCLE_DAYS", "45")

    settings = brand_settings(load_config())

    assert settings.rfm.class_cuts == RfmCuts(30, 2, 9950)
    assert settings.lifecycle == LifecycleSettings(45, 1, 1, 2, 6)


def test_a_toml_file_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBEROPS_INSIGHT_CYCLE_DAYS", "45")
    path = tmp_path / "insight.toml"
    path.write_text(
        "[insight]\n"
        "cycle_days = 20\n"
        'stage_cycles = "1,2,3,9"\n'
        "rfm_monetary_cuts = [50, 200, 500, 1000]\n"
        'rfm_score_quantiles = "1/4,1/2,3/4"\n'
        'magic_threshold = "0.6"\n'
        'preference_min_share = "2/3"\n'
    )

    settings = brand_settings(load_config(path))

    assert settings.lifecycle == LifecycleSettings(20, 1, 2, 3, 9)
    assert settings.rfm.monetary_score_cuts == (5000, 20000, 50000, 100000)
    assert settings.rfm.score_quantiles == (Fraction(1, 4), Fraction(1, 2), Fraction(3, 4))
    assert settings.magic.threshold == Fraction(3, 5)
    assert settings.preferences.min_share == Fraction(2, 3)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RFM_CLASS_CUTS", "30,2", "MEMBEROPS_INSIGHT_RFM_CLASS_CUTS takes DAYS,DAYS_OF_PURCHASE,YUAN"),
        ("RFM_MONETARY_CUTS", "500,50", "MEMBEROPS_INSIGHT_RFM_MONETARY_CUTS must be ascending"),
        ("MAGIC_THRESHOLD", "3/2", "MEMBEROPS_INSIGHT_MAGIC_THRESHOLD must lie in (0, 1]"),
        (
            "RFM_SCORE_QUANTILES",
            "4/5,1/5",
            "MEMBEROPS_INSIGHT_RFM_SCORE_QUANTILES must rise: each cut above the one before",
        ),
        ("STAGE_CYCLES", "1,3,2,6", "stage bounds must rise: active ≤ silent ≤ sleeping cycles"),
    ],
)
def test_a_bad_threshold_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"MEMBEROPS_INSIGHT_{name}", value)

    with pytest.raises(InvalidOption) as refused:
        brand_settings(load_config())

    assert refused.value.message == message


def test_a_value_of_the_wrong_type_is_refused_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMBEROPS_INSIGHT_CYCLE_DAYS", "abc")
    with pytest.raises(InvalidOption) as refused:
        load_config()
    assert refused.value.message == (
        "MEMBEROPS_INSIGHT_CYCLE_DAYS: Input should be a valid integer, unable to parse string as an "
        "integer (got 'abc')"
    )

    monkeypatch.delenv("MEMBEROPS_INSIGHT_CYCLE_DAYS")
    path = tmp_path / "insight.toml"
    path.write_text('[insight]\nmagic_min_people = "many"\n')
    with pytest.raises(InvalidOption) as refused:
        load_config(path)
    assert refused.value.message == (
        f"{path}: magic_min_people: Input should be a valid integer, unable to parse string as an "
        "integer (got 'many')"
    )


def test_categories_that_are_no_product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBEROPS_INSIGHT_PREFERENCE_EXCLUDED_CATEGORIES", "paid_plan, gift_card,")
    assert brand_settings(load_config()).preferences.excluded_categories == ("paid_plan", "gift_card")

    path = tmp_path / "insight.toml"
    path.write_text('[insight]\npreference_excluded_categories = ["paid_plan"]\n')
    assert brand_settings(load_config(path)).preferences.excluded_categories == ("paid_plan",)


def test_new_may_last_longer_than_active(monkeypatch: pytest.MonkeyPatch) -> None:
    # NEW is not one of the rising bounds: new for two cycles, active within one.
    monkeypatch.setenv("MEMBEROPS_INSIGHT_STAGE_CYCLES", "2,1,2,6")

    lifecycle = brand_settings(load_config()).lifecycle

    assert (lifecycle.new_cycles, lifecycle.active_cycles, lifecycle.sleeping_cycles) == (2, 1, 6)


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "insight.toml"
    path.write_text("[insight]\ncycle = 20\n")

    with pytest.raises(InvalidOption, match="unknown insight setting 'cycle'"):
        load_config(path)
