from datetime import UTC, date, datetime

import pytest

from memberops.kit.clock import InvalidTimestamp, business_date, end_of_day, parse_instant, start_of_day


def test_offsets_are_converted_to_utc() -> None:
    assert parse_instant("2026-03-01T12:30:00+08:00") == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
    assert parse_instant("2026-03-01T04:30:00Z") == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)


def test_a_time_without_offset_is_refused_unless_a_zone_is_declared() -> None:
    with pytest.raises(InvalidTimestamp, match="has no UTC offset"):
        parse_instant("2026-03-01 12:30:00")
    assert parse_instant("2026-03-01 12:30:00", naive_zone="Asia/Shanghai") == datetime(
        2026, 3, 1, 4, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00+08:00"])
def test_unreadable_timestamps_are_refused(text: str) -> None:
    with pytest.raises(InvalidTimestamp):
        parse_instant(text)


def test_business_dates_are_in_the_brand_zone() -> None:
    late_evening_utc = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # 01:00 on 2 March in Shanghai
    assert business_date(late_evening_utc, "Asia/Shanghai") == date(2026, 3, 2)
    assert start_of_day(date(2026, 3, 2), "Asia/Shanghai") == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert end_of_day(date(2026, 3, 2), "Asia/Shanghai") == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
