"""The brand's insight thresholds: RFM cuts, the repurchase cycle, the magic number's window…

A brand sets them once, for the nightly run (and every scheduled job) to use, instead of passing
options on every command: as environment variables ``MEMBEROPS_INSIGHT_*`` beside the process
settings (``kit.settings``), or in the ``[insight]`` table of a TOML file named by
``MEMBEROPS_INSIGHT_FILE`` or ``--config``. A key left out keeps the default of DOMAIN.md §5
(population medians and quintiles, a 30-day cycle…). Values are text in the same notation as the
``memberops analyze`` options (``--class-cuts 30,2,500`` is ``rfm_class_cuts = "30,2,500"``), and
they are read here into the analyses' settings, refusing a bad one with the option's name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from memberops.insight.kpi_rules import InvalidOption, MagicSettings, PreferenceSettings, share_option
from memberops.insight.rules import (
    QUINTILES,
    LayerSettings,
    LifecycleSettings,
    RfmCuts,
    RfmSettings,
)
from memberops.kit.money import InvalidAmount, yuan_to_fen


class InsightConfig(BaseSettings):
    """The thresholds as the brand wrote them (text), before they are checked."""

    model_config = SettingsConfigDict(env_prefix="MEMBEROPS_INSIGHT_", extra="forbid")

    file: Path | None = Field(default=None, description="a TOML file whose [insight] table sets the rest")
    rfm_score_quantiles: str | None = Field(default=None, description="e.g. 1/5,2/5,3/5,4/5 (scores 1–5)")
    rfm_recency_cuts: str | None = Field(default=None, description="score cuts in days, ascending")
    rfm_frequency_cuts: str | None = Field(default=None, description="score cuts in purchase days")
    rfm_monetary_cuts: str | None = Field(default=None, description="score cuts in yuan, ascending")
    rfm_class_cuts: str | None = Field(default=None, description="DAYS,PURCHASE_DAYS,YUAN (default medians)")
    cycle_days: int = Field(default=30, description="the repurchase cycle in days")
    stage_cycles: str = Field(default="1,1,2,6", description="NEW,ACTIVE,SILENT,SLEEPING in cycles")
    magic_window_days: int = 60
    magic_threshold: str = "1/2"
    magic_min_people: int = 30
    magic_max_purchases: int = 10
    preference_min_share: str = "1/2"
    preference_excluded_categories: str | None = Field(
        default=None, description="order-line categories that are not products, e.g. paid_plan,gift_card"
    )


@dataclass(frozen=True)
class BrandSettings:
    """Every analysis's settings, checked: what a nightly run computes with."""

    rfm: RfmSettings = field(default_factory=RfmSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    layers: LayerSettings = field(default_factory=LayerSettings)
    magic: MagicSettings = field(default_factory=MagicSettings)
    preferences: PreferenceSettings = field(default_factory=PreferenceSettings)


def load_config(path: Path | None = None) -> InsightConfig:
    """Read the thresholds from the environment and, if given (or named there), a TOML file.

    A key in the file wins over the environment, so the file a brand keeps in version control
    says what the run used.
    """
    try:
        from_environment = InsightConfig()
    except ValidationError as error:
        raise InvalidOption(_first_problem(error, "MEMBEROPS_INSIGHT_")) from None
    path = path or from_environment.file
    if path is None:
        return from_environment
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidOption(f"cannot read the insight settings in {path}: {error}") from None
    table = document.get("insight", {})
    if not isinstance(table, dict):
        raise InvalidOption(f"{path}: [insight] must be a table")
    unknown = sorted(set(table) - set(InsightConfig.model_fields) - {"file"})
    if unknown:
        raise InvalidOption(f"{path}: unknown insight setting {unknown[0]!r}")
    # A list (``rfm_recency_cuts = [7, 30, 90, 180]``) reads as the options' comma notation.
    values: dict[str, Any] = {
        key: ",".join(str(item) for item in value) if isinstance(value, list) else value
        for key, value in table.items()
    }
    values["file"] = path
    try:
        return InsightConfig.model_validate({**from_environment.model_dump(), **values})
    except ValidationError as error:
        raise InvalidOption(_first_problem(error, f"{path}: ")) from None


def _first_problem(error: ValidationError, where: str) -> str:
    """Name the first bad setting as written: ``MEMBEROPS_INSIGHT_CYCLE_DAYS`` or the file's key."""
    problem = error.errors()[0]
    key = str(problem["loc"][0]) if problem["loc"] else "?"
    name = f"{where}{key.upper()}" if where.endswith("_") else f"{where}{key}"
    return f"{name}: {problem['msg']} (got {problem.get('input')!r})"


def whole_numbers(text: str | None, name: str, *, ascending: bool = True) -> tuple[int, ...] | None:
    """Read whole numbers separated by commas (``7,30,90,180``), ascending unless told; None stays None."""
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidOption(f"{name} takes whole numbers separated by commas, not {text!r}") from None
    if ascending and list(values) != sorted(values):
        raise InvalidOption(f"{name} must be ascending")
    return values


def yuan_amounts(text: str | None, name: str) -> tuple[int, ...] | None:
    """Read ascending yuan amounts separated by commas, in fen; None stays None."""
    if text is None:
        return None
    try:
        values = tuple(yuan_to_fen(part.strip()) for part in text.split(","))
    except InvalidAmount as error:
        raise InvalidOption(f"{name}: {error.message}") from None
    if list(values) != sorted(values):
        raise InvalidOption(f"{name} must be ascending")
    return values


def quantiles(text: str | None, name: str) -> tuple[Fraction, ...]:
    """Read score quantiles as fractions (``1/5,2/5`` or ``0.2,0.4``); the quintiles by default."""
    if text is None:
        return QUINTILES
    try:
        values = tuple(Fraction(part.strip()) for part in text.split(","))
    except (ValueError, ZeroDivisionError):
        raise InvalidOption(f"{name} takes fractions like 1/5,2/5 or 0.2,0.4, not {text!r}") from None
    if any(not 0 < value <= 1 for value in values):
        raise InvalidOption(f"{name} must lie in (0, 1]")
    if list(values) != sorted(set(values)):
        raise InvalidOption(f"{name} must rise: each cut above the one before")
    return values


def categories(text: str | None) -> tuple[str, ...]:
    """Read category names separated by commas (``paid_plan,gift_card``); none by default."""
    if text is None:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def class_cuts(text: str | None, name: str) -> RfmCuts | None:
    """Read the brand's class thresholds ``DAYS,PURCHASE_DAYS,YUAN``; None keeps the medians."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 3:
        raise InvalidOption(f"{name} takes DAYS,DAYS_OF_PURCHASE,YUAN")
    try:
        return RfmCuts(int(parts[0]), int(parts[1]), yuan_to_fen(parts[2].strip()))
    except (ValueError, InvalidAmount):
        raise InvalidOption(f"{name}: cannot read {text!r}") from None


def lifecycle_settings(cycle_days: int, stage_cycles: str, name: str) -> LifecycleSettings:
    """Read the repurchase cycle and the four stage bounds (``NEW,ACTIVE,SILENT,SLEEPING``)."""
    # Only ACTIVE ≤ SILENT ≤ SLEEPING must rise (``LifecycleSettings`` says so); NEW stands apart:
    # a brand may call a first-time buyer new for two cycles while active means one.
    bounds = whole_numbers(stage_cycles, name, ascending=False) if "," in stage_cycles else None
    if bounds is None or len(bounds) != 4:
        raise InvalidOption(f"{name} takes four whole numbers: NEW,ACTIVE,SILENT,SLEEPING")
    try:
        return LifecycleSettings(cycle_days, *bounds)
    except ValueError as error:
        raise InvalidOption(str(error)) from None


def brand_settings(config: InsightConfig) -> BrandSettings:
    """Check the configured thresholds and return the analyses' settings (defaults where unset).

    Read through the same ``…_with`` functions as a command's options, so a threshold means the
    same and is refused alike wherever it is written; errors name the environment variable.
    """
    return BrandSettings(
        rfm=rfm_with(
            RfmSettings(),
            score_quantiles=config.rfm_score_quantiles,
            recency_cuts=config.rfm_recency_cuts,
            frequency_cuts=config.rfm_frequency_cuts,
            monetary_cuts=config.rfm_monetary_cuts,
            cuts=config.rfm_class_cuts,
            name=_variable("RFM_"),
        ),
        lifecycle=lifecycle_with(
            LifecycleSettings(),
            cycle_days=config.cycle_days,
            stage_cycles=config.stage_cycles,
            name=_variable(""),
        ),
        magic=magic_with(
            MagicSettings(),
            window_days=config.magic_window_days,
            threshold=config.magic_threshold,
            min_people=config.magic_min_people,
            max_purchases=config.magic_max_purchases,
            name=_variable("MAGIC_"),
        ),
        preferences=replace(
            preferences_with(
                PreferenceSettings(), min_share=config.preference_min_share, name=_variable("PREFERENCE_")
            ),
            excluded_categories=categories(config.preference_excluded_categories),
        ),
    )


def _variable(group: str) -> OptionName:
    """Name an option as its variable: ``recency-cuts`` → ``MEMBEROPS_INSIGHT_RFM_RECENCY_CUTS``."""
    return lambda option: f"MEMBEROPS_INSIGHT_{group}{option.upper().replace('-', '_')}"


def current(path: Path | None = None) -> BrandSettings:
    """The brand's checked thresholds as configured now (environment, then the TOML file)."""
    return brand_settings(load_config(path))


# An analysis asked for by hand (CLI or API) starts from the brand's settings, and an option
# given with the request replaces that one threshold only: the same command with no options shows
# what the nightly run, the tags and the segments computed with. Errors name the option as the
# caller wrote it (``--min-share`` on the command line, ``min_share`` in a query).

OptionName = Callable[[str], str]


def api_parameter(option: str) -> str:
    """``min-share`` as a query parameter: ``min_share``."""
    return option.replace("-", "_")


def cli_option(option: str) -> str:
    """``min-share`` as a command-line option: ``--min-share``."""
    return f"--{option}"


def rfm_with(
    brand: RfmSettings,
    *,
    score_quantiles: str | None = None,
    recency_cuts: str | None = None,
    frequency_cuts: str | None = None,
    monetary_cuts: str | None = None,
    cuts: str | None = None,
    name: OptionName = api_parameter,
) -> RfmSettings:
    """The brand's RFM settings with the given options ."""
    return replace(
        brand,
        score_quantiles=brand.score_quantiles
        if score_quantiles is None
        else quantiles(score_quantiles, name("score-quantiles")),
        recency_score_cuts=whole_numbers(recency_cuts, name("recency-cuts")) or brand.recency_score_cuts,
        frequency_score_cuts=whole_numbers(frequency_cuts, name("frequency-cuts"))
        or brand.frequency_score_cuts,
        monetary_score_cuts=yuan_amounts(monetary_cuts, name("monetary-cuts")) or brand.monetary_score_cuts,
        class_cuts=class_cuts(cuts, name("class-cuts")) or brand.class_cuts,
    )


def lifecycle_with(
    brand: LifecycleSettings,
    *,
    cycle_days: int | None = None,
    stage_cycles: str | None = None,
    name: OptionName = api_parameter,
) -> LifecycleSettings:
    """The brand's cycle and stage bounds with the given options."""
    bounds = (brand.new_cycles, brand.active_cycles, brand.silent_cycles, brand.sleeping_cycles)
    return lifecycle_settings(
        brand.cycle_days if cycle_days is None else cycle_days,
        ",".join(map(str, bounds)) if stage_cycles is None else stage_cycles,
        name("stage-cycles"),
    )


def magic_with(
    brand: MagicSettings,
    *,
    window_days: int | None = None,
    threshold: str | None = None,
    min_people: int | None = None,
    max_purchases: int | None = None,
    name: OptionName = api_parameter,
) -> MagicSettings:
    """The brand's magic-number settings with the given options."""
    try:
        return MagicSettings(
            brand.window_days if window_days is None else window_days,
            brand.threshold if threshold is None else share_option(threshold, name("threshold")),
            brand.min_people if min_people is None else min_people,
            brand.max_purchases if max_purchases is None else max_purchases,
        )
    except ValueError as error:
        raise InvalidOption(str(error)) from None


def preferences_with(
    brand: PreferenceSettings, *, min_share: str | None = None, name: OptionName = api_parameter
) -> PreferenceSettings:
    """The brand's preference share with the given option."""
    if min_share is None:
        return brand
    try:
        return replace(brand, min_share=share_option(min_share, name("min-share")))
    except ValueError as error:
        raise InvalidOption(str(error)) from None
