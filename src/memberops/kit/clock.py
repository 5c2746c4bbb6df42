"""Time: UTC in storage, the brand's time zone for business dates.

Every instant that enters the system must say its offset; a local time without an offset is only
accepted where a source profile declares the zone it is in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from memberops.kit.errors import ValidationFailed


class InvalidTimestamp(ValidationFailed, ValueError):
    """A timestamp that cannot be read, or one without an offset where one is required."""

    code = "invalid_timestamp"


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA name, cached (it is asked for per row in imports)."""
    return ZoneInfo(name)


def utc_now() -> datetime:
    """Return the current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


def parse_instant(text: str, *, naive_zone: str | None = None) -> datetime:
    """Parse ISO 8601 into an aware UTC datetime.

    ``naive_zone`` is the zone a time without offset is in; without it such a time is refused,
    because guessing the zone silently shifts business dates.
    """
    raw = text.strip()
    if not raw:
        raise InvalidTimestamp("timestamp is empty")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise InvalidTimestamp(f"{text!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        if naive_zone is None:
            raise InvalidTimestamp(f"{text!r} has no UTC offset (write it like 2026-03-01T12:30:00+08:00)")
        parsed = parsed.replace(tzinfo=zone(naive_zone))
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidTimestamp(f"{text!r} is outside the range of dates") from None


def business_date(instant: datetime, time_zone: str) -> date:
    """Return the calendar date of an instant in the brand's time zone."""
    return instant.astimezone(zone(time_zone)).date()


def start_of_day(day: date, time_zone: str) -> datetime:
    """Return the UTC instant at which ``day`` begins in ``time_zone``."""
    return datetime.combine(day, time.min, tzinfo=zone(time_zone)).astimezone(UTC)


def end_of_day(day: date, time_zone: str) -> datetime:
    """Return the UTC instant at which ``day`` ends (the next day's start) in ``time_zone``."""
    return start_of_day(day + timedelta(days=1), time_zone)
