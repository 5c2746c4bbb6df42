"""The demo's programme activity plan: what members and the brand do, when, decided by the seed alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from memberops.demo.programme_activity import (
    ActivityParameters,
    ActivityPlan,
    BirthdayRun,
    CouponIssue,
    CouponUse,
    MemberFact,
    OrderFact,
    PlanPurchase,
    PointsUse,
    RewardVisit,
    plan_activity,
    plan_for_price,
)
from memberops.loyalty.programme import demo_programme

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)  # a Thursday, brand time
END = datetime(2026, 7, 1, tzinfo=SHANGHAI).astimezone(UTC)
#: Nobody does anything by chance: only what follows from the history.
QUIET = ActivityParameters(
    birthday_share=0.0,
    engaged_share=0.0,
    coupon_use_share=(0.0, 0.0),
    points_use_share=(0.0, 0.0),
    reward_visits_per_year=0.0,
)


def local(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


MEMBERS = (
    MemberFact(1, local(2026, 1, 2)),
    MemberFact(2, local(2026, 1, 5, 19)),  # after the 18:00 run of its day
    MemberFact(3, local(2026, 1, 20), left_at=local(2026, 5, 1)),
)
ORDERS = (
    OrderFact(10, 1, local(2026, 1, 3), 12_000, "pos", "P10"),
    OrderFact(11, 1, local(2026, 3, 10), 8_000, "pos", "P11"),
    OrderFact(12, 2, local(2026, 1, 1), 5_000, "pos", "P12"),  # before joining
    OrderFact(13, 2, local(2026, 2, 1), 9_900, "mini_program", "M13", "PLAN-HALF", 9_900),
    OrderFact(14, 3, local(2026, 4, 2), 16_800, "mini_program", "M14", "PLAN-ANNUAL", 16_800),
    OrderFact(15, 3, local(2026, 5, 20), 16_800, "mini_program", "M15", "PLAN-ANNUAL", 16_800),  # left
    OrderFact(16, 9, local(2026, 4, 1), 3_000, "meituan", "T16"),  # not a member
    OrderFact(17, 1, local(2026, 5, 15), 4_000, "pos", "P17"),
)


def plan(parameters: ActivityParameters = QUIET, seed: int = 7) -> ActivityPlan:
    return plan_activity(
        MEMBERS,
        ORDERS,
        demo_programme(),
        seed=seed,
        start=START,
        end=END,
        time_zone=SHANGHAI,
        parameters=parameters,
    )


def test_paid_plan_orders_become_plan_purchases_matched_by_price_while_a_member() -> None:
    found = [activity for activity in plan().activities if isinstance(activity, PlanPurchase)]

    assert found == [
        PlanPurchase(local(2026, 2, 1), 2, "half_year", "demo:plan:mini_program:M13", "M13"),
        PlanPurchase(local(2026, 4, 2), 3, "annual", "demo:plan:mini_program:M14", "M14"),
    ]
    assert plan().unmatched_plan_orders == 1  # bought after leaving the programme


def test_a_plan_is_found_by_its_price_and_else_by_the_term_its_sku_names() -> None:
    programme = demo_programme()

    assert plan_for_price(programme, "PLAN-ANNUAL", 16_800) == "annual"
    assert plan_for_price(programme, "ANYTHING", 9_900) == "half_year"
    assert plan_for_price(programme, "PLAN-HALF", 12_300) == "half_year"
    assert plan_for_price(programme, "PLAN-X", 12_300) is None


def test_welcome_coupons_go_out_weekly_to_those_who_joined_since_the_last_run() -> None:
    found = [
        activity
        for activity in plan().activities
        if isinstance(activity, CouponIssue) and activity.key.startswith("demo:welcome")
    ]

    assert [(a.at, a.person_ids, a.key, a.template_codes) for a in found] == [
        (local(2026, 1, 8, 18), (1, 2), "demo:welcome:2026-01-08", ("welcome_5",)),
        (local(2026, 1, 22, 18), (3,), "demo:welcome:2026-01-22", ("welcome_5",)),
    ]


def test_the_618_pack_goes_to_members_who_bought_in_the_90_days_before_with_the_open_cherry_coupon() -> None:
    found = [
        activity
        for activity in plan().activities
        if isinstance(activity, CouponIssue) and activity.key.startswith("demo:campaign")
    ]

    # Member 3 bought on 2 April but left on 1 May; member 1 bought on 10 March and 15 May.
    assert [(a.at, a.person_ids, a.key, a.pack_code, a.template_codes) for a in found] == [
        (local(2026, 6, 1, 10), (1,), "demo:campaign:618:2026", "repurchase_pack", ()),
        (local(2026, 6, 1, 10), (1,), "demo:campaign:618:2026:extras", None, ("cherry_618",)),
    ]


def test_every_order_of_an_engaged_member_looks_for_a_coupon_and_points_when_all_are_engaged() -> None:
    everyone = replace(QUIET, engaged_share=1.0, coupon_use_share=(1.0, 1.0), points_use_share=(1.0, 0.0))

    activities = plan(everyone).activities
    uses = [(a.order_id, a.key) for a in activities if isinstance(a, CouponUse)]
    points = [(a.order_id, a.cap_points) for a in activities if isinstance(a, PointsUse)]

    # Fruit orders of members while members: not 12 (before joining), 16 (no member), plans.
    assert uses == [(10, "demo:coupon:10"), (11, "demo:coupon:11"), (17, "demo:coupon:17")]
    assert points == [(10, 60), (11, 40), (17, 20)]  # half the order, at 1 point per yuan


def test_birthday_runs_are_monthly_for_members_with_a_birthday_that_month() -> None:
    result = plan(replace(QUIET, birthday_share=1.0))
    birthdays = dict(result.birthdays)
    runs = [activity for activity in result.activities if isinstance(activity, BirthdayRun)]

    assert sorted(birthdays) == [1, 2]  # member 3 left the programme
    assert all(1960 <= day.year <= 2004 for day in birthdays.values())
    expected = [
        (
            local(2026, month, 1, 9),
            date(2026, month, 1),
            tuple(p for p in (1, 2) if birthdays[p].month == month),
        )
        for month in range(2, 7)
    ]
    assert [(run.at, run.today, run.person_ids) for run in runs] == [row for row in expected if row[2]]


def test_mall_visits_belong_to_engaged_members_while_in_the_programme() -> None:
    result = plan(replace(QUIET, engaged_share=1.0, reward_visits_per_year=24.0, cancel_share=1.0))
    visits = [activity for activity in result.activities if isinstance(activity, RewardVisit)]

    assert visits
    for visit in visits:
        member = MEMBERS[visit.person_id - 1]
        assert member.joined_at <= visit.at < (member.left_at or END)
        assert visit.cancel_after is not None and timedelta(days=1) <= visit.cancel_after < timedelta(days=8)
    assert len({visit.key for visit in visits}) == len(visits)


def test_the_plan_is_the_same_for_the_same_seed_sorted_in_time_and_inside_the_period() -> None:
    first, again, other = (
        plan(ActivityParameters()),
        plan(ActivityParameters()),
        plan(ActivityParameters(), 8),
    )

    assert first == again
    assert first != other
    instants = [activity.at for activity in first.activities]
    assert instants == sorted(instants)
    assert all(START <= at <= END for at in instants)
    assert first.counts == {
        name: sum(1 for activity in first.activities if type(activity).__name__ == name)
        for name in first.counts
    }
