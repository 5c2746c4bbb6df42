"""The pure helpers of the ledger services: window sums, lot taking, rebuilt earnings, replay dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from memberops.loyalty.earning import points_to_take_back
from memberops.loyalty.growth import _Timeline, known_tier, lowest_tier
from memberops.loyalty.jobs import _checkpoints
from memberops.loyalty.ledger import LotState, _take
from memberops.loyalty.programme import demo_programme
from memberops.loyalty.purchases import stored_earning
from memberops.loyalty.versions import ActiveProgramme
from memberops.models import OrderEarning

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_timeline_sums_growth_in_half_open_windows_whatever_the_insertion_order() -> None:
    timeline = _Timeline()
    for days, delta in [(5, 10), (1, 100), (3, -40), (5, 1)]:
        timeline.add(T0 + timedelta(days=days), delta)

    assert timeline.total(T0, T0 + timedelta(days=10)) == 71
    assert timeline.total(T0 + timedelta(days=1), T0 + timedelta(days=5)) == 60  # the end is excluded
    assert timeline.total(T0 + timedelta(days=6), T0 + timedelta(days=9)) == 0


def test_taking_from_lots_goes_in_order_and_reports_what_is_left() -> None:
    lots = [LotState(i, 1, 10, left, T0, None) for i, left in enumerate([3, 0, 5])]

    taken, left = _take(lots, 7)
    assert [(lot.lot_id, amount) for lot, amount in taken] == [(0, 3), (2, 4)]
    assert left == 0
    assert _take(lots, 9)[1] == 1
    assert all(lot.remaining in {3, 0, 5} for lot in lots)  # taking plans, it does not change the lots


def test_a_stored_earning_takes_back_like_the_computed_one() -> None:
    row = OrderEarning(
        order_id=1,
        person_id=1,
        business_date=date(2026, 3, 2),
        points=10,
        growth=105,
        lines=[[1, 5000, 5, 50], [2, 5500, 5, 55]],
    )
    earning = stored_earning(row)

    assert points_to_take_back(earning, 5250, 0) == 5
    assert points_to_take_back(earning, {2: 5500}, 0) == 5
    assert points_to_take_back(earning, 10500, 7) == 3


def test_replay_stops_at_every_downgrade_date_in_between() -> None:
    active = ActiveProgramme(1, "2026.1", "x", T0, "test", True, demo_programme())

    found = _checkpoints(
        active, datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 4, 15, tzinfo=UTC), SHANGHAI
    )

    # evaluations on the 1st of each month, decided 30 days later (grace), at the start of the day
    assert [moment.astimezone(SHANGHAI).date() for moment in found] == [
        date(2026, 1, 31),
        date(2026, 3, 3),
        date(2026, 3, 31),
    ]
    assert all(moment.astimezone(SHANGHAI).hour == 0 for moment in found)


def test_a_retired_tier_reads_as_the_lowest() -> None:
    programme = demo_programme()

    assert lowest_tier(programme) == "standard"
    assert known_tier(programme, "gold") == "gold"
    assert known_tier(programme, "platinum") == "standard"
