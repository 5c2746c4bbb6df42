"""Periods, as-of dates and business day numbers (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from memberops.insight.periods import (
    InvalidPeriod,
    OffsetSegment,
    Period,
    checked_as_of,
    day_end_epoch,
    day_number,
    default_as_of,
    from_day_number,
    local_day_of,
    offset_segments,
    parse_period,
)


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp())


def test_a_month_is_cut_at_the_as_of_date() -> None:
    assert parse_period("2026-10", as_of=date(2026, 10, 31)) == Period(
        date(2026, 10, 1), date(2026, 10, 31), "2026-10"
    )
    assert parse_period("2026-10", as_of=date(2026, 10, 15)) == Period(
        date(2026, 10, 1), date(2026, 10, 15), "2026-10"
    )


def test_years_ranges_and_trailing_windows() -> None:
    as_of = date(2026, 10, 31)
    assert parse_period("2025", as_of=as_of) == Period(date(2025, 1, 1), date(2025, 12, 31), "2025")
    assert parse_period("2026-09-01..2026-09-10", as_of=as_of).days == 10
    assert parse_period("30d", as_of=as_of) == Period(date(2026, 10, 2), date(2026, 10, 31), "30d")
    assert parse_period("12m", as_of=as_of) == Period(date(2025, 11, 1), date(2026, 10, 31), "12m")
    # 31 March back one month is 28 February (clipped), so the window starts on 1 March.
    assert parse_period("1m", as_of=date(2026, 3, 31)).start == date(2026, 3, 1)


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-10-31..2026-10-01", "soon", "0d", "2026-02-30..2026-03-01"]
)
def test_unreadable_periods_are_refused(text: str) -> None:
    with pytest.raises(InvalidPeriod):
        parse_period(text, as_of=date(2026, 10, 31))


def test_a_period_after_the_as_of_date_is_refused() -> None:
    with pytest.raises(InvalidPeriod, match="starts after"):
        parse_period("2026-11", as_of=date(2026, 10, 31))


def test_the_previous_period() -> None:
    as_of = date(2026, 10, 31)
    assert parse_period("2026-03", as_of=as_of).previous() == Period(
        date(2026, 2, 1), date(2026, 2, 28), "2026-02"
    )
    assert parse_period("2026-01", as_of=as_of).previous().label == "2025-12"
    assert parse_period("2025", as_of=as_of).previous() == Period(
        date(2024, 1, 1), date(2024, 12, 31), "2024"
    )
    assert parse_period("30d", as_of=as_of).previous() == Period(
        date(2026, 9, 2), date(2026, 10, 1), "2026-09-02..2026-10-01"
    )


def test_the_default_as_of_date() -> None:
    today = date(2026, 11, 26)
    assert default_as_of(None, today=today) == today
    assert default_as_of("2026-10", today=today) == date(2026, 10, 31)
    assert default_as_of("2026-11", today=today) == today
    assert default_as_of("12m", today=today) == today


def test_day_numbers() -> None:
    assert day_number(date(1970, 1, 1)) == 0
    assert day_number(date(2026, 10, 15)) == 20741
    assert from_day_number(20741) == date(2026, 10, 15)


def test_shanghai_has_one_offset_since_1991() -> None:
    segments = offset_segments("Asia/Shanghai", datetime(2026, 11, 1, tzinfo=UTC))

    assert segments[-1] == OffsetSegment(epoch("1991-09-14T17:00:00+00:00"), 8 * 3600)
    # 23:59:59 on 15 October in Shanghai is 15:59:59 UTC; one second later is the 16th.
    assert local_day_of(epoch("2026-10-15T15:59:59+00:00"), segments) == 20741
    assert local_day_of(epoch("2026-10-15T16:00:00+00:00"), segments) == 20742


def test_daylight_saving_changes_are_found_to_the_second() -> None:
    segments = offset_segments("America/New_York", datetime(2026, 12, 31, tzinfo=UTC))

    # 2026: clocks go forward on 8 March at 07:00 UTC and back on 1 November at 06:00 UTC.
    assert OffsetSegment(epoch("2026-03-08T07:00:00+00:00"), -4 * 3600) in segments
    assert OffsetSegment(epoch("2026-11-01T06:00:00+00:00"), -5 * 3600) in segments
    # 23:30 on 31 October (EDT) is 03:30 UTC on 1 November: still the 31st there.
    assert local_day_of(epoch("2026-11-01T03:30:00+00:00"), segments) == day_number(date(2026, 10, 31))
    # 23:30 on 1 November (EST) is 04:30 UTC on the 2nd.
    assert local_day_of(epoch("2026-11-02T04:30:00+00:00"), segments) == day_number(date(2026, 11, 1))


def test_the_end_of_a_business_day() -> None:
    assert day_end_epoch(date(2026, 10, 31), "Asia/Shanghai") == epoch("2026-10-31T16:00:00+00:00")


def test_as_of_dates_in_the_future_or_before_1970_are_refused() -> None:
    today = date(2026, 11, 26)
    assert checked_as_of(today, today=today) == today
    with pytest.raises(InvalidPeriod, match="after today"):
        checked_as_of(date(2026, 11, 27), today=today)
    with pytest.raises(InvalidPeriod, match="before"):
        checked_as_of(date(1969, 12, 31), today=today)
    with pytest.raises(InvalidPeriod, match="before"):
        parse_period("0001-01", as_of=today)
    with pytest.raises(InvalidPeriod, match="before"):
        parse_period("9999m", as_of=today)
