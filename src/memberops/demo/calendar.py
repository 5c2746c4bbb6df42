"""The demo brand's business calendar: seasonality factors, time of day and UTC offsets.

Fresh fruit sells by the calendar: the 618 and 双11 promotions, the member day on the 18th, weekends and
the gift-box rush before the Spring Festival (with stores half closed during it). Purchases are thinned
by these factors, so the factors are recorded with the data for CLV models to be checked against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SECONDS_PER_DAY = 86_400

#: First day of the lunar new year (春节) by Gregorian year.
SPRING_FESTIVAL: dict[int, date] = {
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
    2036: date(2036, 1, 28),
    2037: date(2037, 2, 15),
    2038: date(2038, 2, 4),
    2039: date(2039, 1, 24),
    2040: date(2040, 2, 12),
}

#: Relative weight of each local hour for a purchase: lunch and the evening after work.
HOUR_WEIGHTS: tuple[float, ...] = (
    0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 1.0, 1.6, 2.0, 2.6, 3.4,
    3.6, 2.8, 2.2, 2.2, 2.8, 3.8, 4.6, 4.6, 4.0, 3.0, 1.6, 0.6,
)  # fmt: skip


@dataclass(frozen=True)
class Seasonality:
    """Multiplicative demand factors by day; every factor applies where its window matches."""

    weekend: float = 1.25
    presale_618: float = 1.5  # June 1-18
    presale_double11: float = 1.7  # November 1-11
    peak_double11: float = 1.6  # November 11 on top of the presale factor
    member_day: float = 1.4  # the 18th of every month
    spring_festival_rise: float = 1.5  # the days before the festival: gift boxes
    spring_festival_rise_days: int = 21
    spring_festival_holiday: float = 0.7  # the festival week: stores half closed
    spring_festival_holiday_days: int = 7

    def as_dict(self) -> dict[str, float | int]:
        """The factors, for params.json."""
        return asdict(self)


@dataclass(frozen=True)
class Period:
    """The simulated days: ``start`` to ``end`` inclusive, in the brand's time zone."""

    start: date
    end: date

    @classmethod
    def ending(cls, end: date, years: int) -> Period:
        """The ``years`` years that end on ``end`` (inclusive)."""
        if years < 1:
            raise ValueError("years must be at least 1")
        try:
            anniversary = end.replace(year=end.year - years)
        except ValueError:  # 29 February
            anniversary = end.replace(year=end.year - years, day=28)
        return cls(anniversary + timedelta(days=1), end)

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1

    @property
    def epoch_day(self) -> int:
        """Days from 1970-01-01 to the first day (local calendar)."""
        return (self.start - date(1970, 1, 1)).days


def day_factors(period: Period, seasonality: Seasonality) -> F64:
    """Demand factor of every day of the period, normalised to mean 1.

    Normalising keeps the BG/NBD rate λ the average purchases per day, so a fitted model compares to it.
    """
    raw = raw_day_factors(period, seasonality)
    normalised: F64 = raw / raw.mean()
    return normalised


def raw_day_factors(period: Period, seasonality: Seasonality) -> F64:
    """Product of the seasonality factors that apply to each day of the period (before normalising)."""
    days = np.arange(period.days, dtype=np.int64) + period.epoch_day
    as_dates = days.astype("datetime64[D]")
    month = as_dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day_of_month = (as_dates - as_dates.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    factor = np.ones(period.days, dtype=np.float64)
    factor[weekday >= 5] *= seasonality.weekend
    factor[(month == 6) & (day_of_month <= 18)] *= seasonality.presale_618
    factor[(month == 11) & (day_of_month <= 11)] *= seasonality.presale_double11
    factor[(month == 11) & (day_of_month == 11)] *= seasonality.peak_double11
    factor[day_of_month == 18] *= seasonality.member_day
    for festival in spring_festivals(period):
        offset = days - (festival - date(1970, 1, 1)).days
        factor[(offset < 0) & (offset >= -seasonality.spring_festival_rise_days)] *= (
            seasonality.spring_festival_rise
        )
        factor[(offset >= 0) & (offset < seasonality.spring_festival_holiday_days)] *= (
            seasonality.spring_festival_holiday
        )
    return factor


def spring_festivals(period: Period) -> list[date]:
    """Festival dates that can touch the period; fail loudly outside the known table."""
    years = range(period.start.year, period.end.year + 2)
    missing = [year for year in years if year not in SPRING_FESTIVAL]
    if missing:
        known = f"{min(SPRING_FESTIVAL)}-{max(SPRING_FESTIVAL) - 1}"
        raise ValueError(f"the demo calendar knows the Spring Festival for periods within {known} only")
    return [SPRING_FESTIVAL[year] for year in years]


def hour_probabilities() -> F64:
    """Probability of each local hour for a purchase."""
    weights = np.asarray(HOUR_WEIGHTS, dtype=np.float64)
    probabilities: F64 = weights / weights.sum()
    return probabilities


def seconds_of_day(rng: np.random.Generator, count: int) -> I64:
    """Draw local times of day (seconds after midnight) with the purchase hour profile."""
    hours = rng.choice(24, size=count, p=hour_probabilities())
    seconds: I64 = hours.astype(np.int64) * 3600 + rng.integers(0, 3600, size=count)
    return seconds


def utc_offset_minutes(period: Period, time_zone: str) -> I64:
    """UTC offset (minutes) of every local hour of the period, plus a spare day past the end.

    Per hour because a daylight-saving zone changes offset at an hour boundary; a local time in a
    spring-forward gap takes the offset before the change.
    """
    zone = ZoneInfo(time_zone)
    first = datetime(period.start.year, period.start.month, period.start.day)
    hours = (period.days + 1) * 24
    offsets = np.empty(hours, dtype=np.int64)
    for hour in range(hours):
        offset = (first + timedelta(hours=hour)).replace(tzinfo=zone).utcoffset()
        offsets[hour] = 0 if offset is None else int(offset.total_seconds()) // 60
    return offsets
