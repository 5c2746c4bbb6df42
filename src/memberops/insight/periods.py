"""Business periods and day numbers: what an analysis's ``--as-of`` and ``--period`` mean.

Storage is UTC; an analysis counts business days in the brand's time zone. Inside the query a
business day is an integer, days since 1970-01-01 in the brand's zone, computed from the epoch
seconds of a timestamp plus the zone's UTC offset at that instant. Integer arithmetic is exact and
identical on every engine, where date arithmetic is not (SQLite before 3.46 has no day arithmetic
in Ibis, and SQLite rounds fractional seconds to the millisecond).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from memberops.kit.errors import ValidationFailed

EPOCH = date(1970, 1, 1)
#: No period starts earlier (the previous period of the first one still has a date).
EARLIEST = date(1970, 2, 1)
SECONDS_PER_DAY = 86_400
#: How far back the zone's offset history is resolved (orders older than this take its offset then).
_HISTORY_START = datetime(1970, 1, 1, tzinfo=UTC)

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_TRAILING = re.compile(r"^(\d{1,4})([dm])$")


class InvalidPeriod(ValidationFailed, ValueError):
    """A period or as-of date that cannot be read or does not fit together."""

    code = "invalid_period"


@dataclass(frozen=True)
class Period:
    """Business dates ``start`` to ``end``, both included; ``label`` is how the user named it."""

    start: date
    end: date
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """Return the period just before: the previous month or year for those, else as many days."""
        if _MONTH.match(self.label) and self.start.day == 1:
            start = _add_months(self.start, -1)
            return Period(start, self.start - timedelta(days=1), start.strftime("%Y-%m"))
        if _YEAR.match(self.label) and self.start.month == 1 and self.start.day == 1:
            start = self.start.replace(year=self.start.year - 1)
            return Period(start, self.start - timedelta(days=1), str(start.year))
        end = self.start - timedelta(days=1)
        start = end - timedelta(days=self.days - 1)
        return Period(start, end, f"{start}..{end}")


def period_heading(as_of: date, period: Period) -> dict[str, str]:
    """Return the fields a period report opens with: its as-of date, the period's label, start, end.

    Every analysis names its date and period alike (the API views and CLI tables read them by
    these names), so they are written in one place; the caller adds the time zone and anything
    that belongs between them, such as the previous period.
    """
    return {
        "as_of": as_of.isoformat(),
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
    }


def day_number(day: date) -> int:
    """Return the business day number of a date: days since 1970-01-01."""
    return (day - EPOCH).days


def from_day_number(number: int) -> date:
    """Return the date of a business day number (the inverse of ``day_number``)."""
    return EPOCH + timedelta(days=number)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_end(first: date) -> date:
    return _add_months(first, 1) - timedelta(days=1)


def parse_period(text: str, *, as_of: date) -> Period:
    """Read a period: ``2026-10`` (a month), ``2026`` (a year), ``2026-10-01..2026-10-31``,
    or ``30d`` / ``12m`` (the trailing days or calendar-length months ending on ``as_of``).

    A calendar period that runs past ``as_of`` is cut at it (month to date), because nothing after
    the as-of date may change an answer; one that starts after it is refused.
    """
    raw = text.strip()
    if match := _MONTH.match(raw):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise InvalidPeriod(f"{text!r}: month {month} does not exist")
        start = date(year, month, 1)
        period = Period(start, _month_end(start), raw)
    elif match := _YEAR.match(raw):
        year = int(match[1])
        period = Period(date(year, 1, 1), date(year, 12, 31), raw)
    elif match := _RANGE.match(raw):
        try:
            start, end = date.fromisoformat(match[1]), date.fromisoformat(match[2])
        except ValueError:
            raise InvalidPeriod(f"{text!r} names a date that does not exist") from None
        if end < start:
            raise InvalidPeriod(f"{text!r} ends before it starts")
        period = Period(start, end, raw)
    elif match := _TRAILING.match(raw):
        count, unit = int(match[1]), match[2]
        if count < 1:
            raise InvalidPeriod(f"{text!r} is empty")
        if unit == "d":
            start = as_of - timedelta(days=count - 1)
        else:
            start = _same_day_months_back(as_of, count) + timedelta(days=1)
        if start < EARLIEST:
            raise InvalidPeriod(f"period {raw} starts before {EARLIEST}")
        return Period(start, as_of, raw)
    else:
        raise InvalidPeriod(
            f"{text!r} is not a period: write 2026-10, 2026, 2026-10-01..2026-10-31, 90d or 12m"
        )
    if period.start > as_of:
        raise InvalidPeriod(f"period {raw} starts after the as-of date {as_of}")
    if period.start < EARLIEST:
        raise InvalidPeriod(f"period {raw} starts before {EARLIEST}")
    return Period(period.start, min(period.end, as_of), period.label)


def _same_day_months_back(day: date, months: int) -> date:
    """Return the same day ``months`` earlier, clipped to the end of a shorter month."""
    first = _add_months(day.replace(day=1), -months)
    return first.replace(day=min(day.day, _month_end(first).day))


def checked_as_of(as_of: date, *, today: date) -> date:
    """Refuse an as-of date in the future (its answer could still change) or before 1970."""
    if as_of > today:
        raise InvalidPeriod(f"the as-of date {as_of} is after today ({today}): its answer could still change")
    if as_of < EARLIEST:
        raise InvalidPeriod(f"the as-of date {as_of} is before {EARLIEST}")
    return as_of


def default_as_of(period_text: str | None, *, today: date) -> date:
    """Return the as-of date when none is given: the end of a calendar period, else today."""
    if period_text is None:
        return today
    raw = period_text.strip()
    if _MONTH.match(raw) or _YEAR.match(raw) or _RANGE.match(raw):
        end = parse_period(raw, as_of=date.max).end
        return min(end, today)
    return today


@dataclass(frozen=True)
class OffsetSegment:
    """From ``since_epoch`` (UTC seconds) on, the zone is ``offset_seconds`` ahead of UTC."""

    since_epoch: int
    offset_seconds: int


def _offset_at(epoch: int, tz: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(epoch, tz).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def offset_segments(time_zone: str, until: datetime) -> tuple[OffsetSegment, ...]:
    """Return the zone's UTC offsets from 1970 to ``until`` as segments, oldest first.

    The query turns them into one CASE over epoch seconds, so a zone with daylight saving gets the
    right business date on both sides of every change; a zone without (Asia/Shanghai since 1991)
    has a handful of segments. Each change is found to the second by bisection.
    """
    tz = ZoneInfo(time_zone)
    start = int(_HISTORY_START.timestamp())
    stop = int(until.timestamp()) + SECONDS_PER_DAY
    segments = [OffsetSegment(start, _offset_at(start, tz))]
    moment = start
    while moment < stop:
        following = min(moment + SECONDS_PER_DAY, stop)
        offset = _offset_at(following, tz)
        if offset != segments[-1].offset_seconds:
            low, high = moment, following  # offset(low) is the old one, offset(high) the new
            while high - low > 1:
                middle = (low + high) // 2
                if _offset_at(middle, tz) == offset:
                    high = middle
                else:
                    low = middle
            segments.append(OffsetSegment(high, offset))
        moment = following
    return tuple(segments)


def local_day_of(epoch: int, segments: tuple[OffsetSegment, ...]) -> int:
    """Return the business day number of an instant (the rule the query expression mirrors)."""
    offset = segments[0].offset_seconds
    for segment in segments:
        if epoch >= segment.since_epoch:
            offset = segment.offset_seconds
    return (epoch + offset) // SECONDS_PER_DAY


def day_end_epoch(day: date, time_zone: str) -> int:
    """Return the UTC epoch second at which business ``day`` ends (the next day's first second)."""
    from memberops.kit.clock import end_of_day

    return int(end_of_day(day, time_zone).timestamp())
