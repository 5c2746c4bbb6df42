"""Plan what the demo's members do with the programme: buy plans, use coupons, spend points.

Pure planning, no I/O: ``plan_activity`` takes the imported history (members and their orders, as
plain values), the programme and a seed, and returns every action members and the brand take, each
at the instant it happens, sorted by time. ``memberops.demo.programme_run`` then carries the plan
out through the loyalty services while the history is replayed, so each action sees the ledger as
it was at its instant. The same facts, programme and seed always give the same plan.

What is planned (rates on ``ActivityParameters``):

- **paid plans**: each paid-plan order is a purchase (or renewal) of the programme plan sold at
  that price, at its payment;
- **welcome coupons**: a weekly run gives the welcome template to everyone who joined since the
  previous run;
- **campaigns**: around 618 and 双11 a coupon pack goes to members who bought in the previous
  ``campaign_lookback_days`` (with 618's cherry coupon in the year its window is open);
- **birthdays**: a share of members recorded a birthday; the birthday job runs on the first of
  each month for members who had joined by then;
- **engagement**: a share of members is engaged (the 80/20 of member programmes). Their orders
  often look for a coupon and are often paid partly with points, and they visit the points mall;
  the other members' orders only sometimes do either;
- **cancellations**: a few mall redemptions are cancelled some days later (points come back).

Whether an intended use happens (a coupon held, points enough) is decided by the runner against
the ledger at that instant, so the plan never spends points that did not exist yet.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from memberops.loyalty.coupons import validity_window
from memberops.loyalty.offers import CouponTemplate
from memberops.loyalty.programme import Programme

#: Members' birthdays are drawn from these years (inclusive).
BIRTH_YEARS = (1960, 2004)


@dataclass(frozen=True)
class ActivityParameters:
    """How often members and the brand act: shares are probabilities, rates are per member-year.

    Engagement follows the 80/20 rule of member programmes: ``engaged_share`` of the members use
    coupons, points and the mall often; the others mostly let what they are given expire.
    """

    welcome_template: str = "welcome_5"
    #: The welcome run goes out this often (days), to everyone who joined since the last one.
    welcome_every_days: int = 7
    campaign_pack: str = "repurchase_pack"
    #: Coupon templates issued with a campaign's pack while their own window is open (618 cherries).
    campaign_extras: tuple[tuple[str, tuple[str, ...]], ...] = (("618", ("cherry_618",)),)
    #: (code, month, day) of each campaign's issue date; the pack goes out at 10:00 brand time.
    campaigns: tuple[tuple[str, int, int], ...] = (("618", 6, 1), ("double11", 11, 1))
    campaign_lookback_days: int = 90
    birthday_share: float = 0.1
    engaged_share: float = 0.3
    #: Share of orders that look for a coupon to use: of engaged members, of the others.
    coupon_use_share: tuple[float, float] = (0.5, 0.15)
    #: Share of orders paid partly with points (when the member holds enough): engaged, the others.
    points_use_share: tuple[float, float] = (0.4, 0.1)
    #: At most this share of an order's amount is paid with points.
    points_use_cap: float = 0.5
    #: Members use points at checkout only when they hold at least this many.
    points_use_minimum: int = 50
    #: Visits to the points mall per engaged member-year.
    reward_visits_per_year: float = 0.25
    #: Share of mall visits that go for goods (fruit knife, durian box) rather than vouchers.
    goods_share: float = 0.4
    cancel_share: float = 0.08
    cancel_days: tuple[int, int] = (1, 7)


@dataclass(frozen=True, slots=True)
class MemberFact:
    """A member as the history knows them: joined at, and left at (None while a member)."""

    person_id: int
    joined_at: datetime
    left_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderFact:
    """An order of a person: when, how much, where, and the paid-plan line's SKU and price if any."""

    order_id: int
    person_id: int
    paid_at: datetime
    amount_fen: int
    source: str
    external_id: str
    plan_sku: str | None = None
    plan_price_fen: int | None = None


@dataclass(frozen=True, slots=True)
class PlanPurchase:
    """A paid-plan order becomes a term of ``plan_code`` (a renewal when it continues a run)."""

    at: datetime
    person_id: int
    plan_code: str
    key: str
    payment_ref: str


@dataclass(frozen=True, slots=True)
class CouponIssue:
    """Coupons (one template, or a pack) issued to many persons at once."""

    at: datetime
    person_ids: tuple[int, ...]
    key: str
    reason: str
    template_codes: tuple[str, ...] = ()
    pack_code: str | None = None


@dataclass(frozen=True, slots=True)
class BirthdayRun:
    """The birthday-gift job on the first of a month, for the members with a birthday in it."""

    at: datetime
    today: date
    person_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CouponUse:
    """An order that uses the member's best usable coupon, if they hold one."""

    at: datetime
    person_id: int
    order_id: int
    amount_fen: int
    source: str
    external_id: str
    key: str


@dataclass(frozen=True, slots=True)
class PointsUse:
    """An order paid partly with points: up to ``cap_points``, if the member has enough."""

    at: datetime
    person_id: int
    order_id: int
    cap_points: int
    source: str
    external_id: str
    key: str


@dataclass(frozen=True, slots=True)
class RewardVisit:
    """A visit to the points mall: redeem one reward the member can afford, goods or a voucher.

    ``cancel_after`` set: the redemption (if any) is cancelled that long afterwards.
    """

    at: datetime
    person_id: int
    key: str
    wants_goods: bool
    cancel_after: timedelta | None = None


Activity = PlanPurchase | CouponIssue | BirthdayRun | CouponUse | PointsUse | RewardVisit
#: Order of activities at one instant: the brand's issues first, then what members do.
_RANK: dict[type, int] = {
    CouponIssue: 0,
    BirthdayRun: 1,
    PlanPurchase: 2,
    RewardVisit: 3,
    PointsUse: 4,
    CouponUse: 5,
}


@dataclass(frozen=True)
class ActivityPlan:
    """Birthdays to record, and the activities in time order."""

    birthdays: tuple[tuple[int, date], ...]
    activities: tuple[Activity, ...]
    unmatched_plan_orders: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def plan_activity(
    members: Sequence[MemberFact],
    orders: Sequence[OrderFact],
    programme: Programme,
    *,
    seed: int,
    start: datetime,
    end: datetime,
    time_zone: ZoneInfo,
    parameters: ActivityParameters | None = None,
) -> ActivityPlan:
    """Plan the activity of ``members`` between ``start`` and ``end`` (UTC instants), deterministically.

    ``orders`` may hold orders of non-members and orders before joining: only a member's own
    orders while a member take part. Every activity falls in ``[start, end]``.
    """
    params = parameters or ActivityParameters()
    by_person = {member.person_id: member for member in members}
    ordered_members = sorted(members, key=lambda member: member.person_id)
    ordered_orders = sorted(orders, key=lambda order: (order.paid_at, order.order_id))
    engaged_draw = random.Random(f"{seed}:engaged")
    engaged = {member.person_id for member in ordered_members if engaged_draw.random() < params.engaged_share}
    activities: list[Activity] = []
    plans, unmatched = _plan_purchases(ordered_orders, by_person, programme)
    activities += plans
    activities += _welcome_issues(ordered_members, params, start, end, time_zone)
    activities += _campaign_issues(ordered_orders, by_person, programme, params, start, end, time_zone)
    birthdays = _birthdays(ordered_members, params, random.Random(f"{seed}:birthdays"))
    activities += _birthday_runs(ordered_members, dict(birthdays), start, end, time_zone)
    activities += _order_intents(
        ordered_orders, by_person, engaged, programme, params, random.Random(f"{seed}:orders")
    )
    activities += _reward_visits(
        [member for member in ordered_members if member.person_id in engaged],
        params,
        random.Random(f"{seed}:rewards"),
        start,
        end,
    )
    activities = [activity for activity in activities if start <= activity.at <= end]
    activities.sort(key=_sort_key)
    counts: dict[str, int] = {}
    for activity in activities:
        name = type(activity).__name__
        counts[name] = counts.get(name, 0) + 1
    return ActivityPlan(tuple(birthdays), tuple(activities), unmatched, counts)


def _sort_key(activity: Activity) -> tuple[datetime, int, str]:
    return activity.at, _RANK[type(activity)], activity.key if not isinstance(activity, BirthdayRun) else ""


def _is_member_at(member: MemberFact | None, at: datetime) -> bool:
    return member is not None and member.joined_at <= at and (member.left_at is None or at < member.left_at)


def plan_for_price(programme: Programme, sku: str | None, price_fen: int | None) -> str | None:
    """Return the code of the programme's paid plan sold as ``sku`` at ``price_fen``, or None.

    The price decides; between plans of one price, the SKU naming the term (``HALF``: 6 months,
    ``ANNUAL``: 12) does.
    """
    priced = [plan for plan in programme.paid_plans if plan.price_fen == price_fen]
    if len(priced) == 1:
        return priced[0].code
    months = {"HALF": 6, "ANNUAL": 12}
    wanted = next((count for word, count in months.items() if sku and word in sku.upper()), None)
    found = [plan for plan in priced or programme.paid_plans if plan.months == wanted]
    return found[0].code if len(found) == 1 else None


def _plan_purchases(
    orders: Sequence[OrderFact], members: dict[int, MemberFact], programme: Programme
) -> tuple[list[PlanPurchase], int]:
    """A plan purchase for each paid-plan order of a member; the others are counted as unmatched."""
    found: list[PlanPurchase] = []
    unmatched = 0
    for order in orders:
        if order.plan_price_fen is None and order.plan_sku is None:
            continue
        code = plan_for_price(programme, order.plan_sku, order.plan_price_fen)
        if code is None or not _is_member_at(members.get(order.person_id), order.paid_at):
            unmatched += 1
            continue
        found.append(
            PlanPurchase(
                order.paid_at,
                order.person_id,
                code,
                key=f"demo:plan:{order.source}:{order.external_id}",
                payment_ref=order.external_id,
            )
        )
    return found, unmatched


def _welcome_issues(
    members: Sequence[MemberFact],
    params: ActivityParameters,
    start: datetime,
    end: datetime,
    time_zone: ZoneInfo,
) -> list[CouponIssue]:
    """The welcome run every ``welcome_every_days`` days (counted from ``start``'s business day), at
    18:00 brand time, to the members who joined since the previous run."""
    first = start.astimezone(time_zone).date()
    runs: dict[int, list[int]] = {}
    for member in members:
        if start <= member.joined_at <= end:
            joined = member.joined_at.astimezone(time_zone)
            # A member who joins after the run's hour waits for the next run.
            late = joined.time() >= time(18)
            days = (joined.date() - first).days + late
            number = -(-days // params.welcome_every_days)
            runs.setdefault(number, []).append(member.person_id)
    issues: list[CouponIssue] = []
    for number, persons in sorted(runs.items()):
        day = first + timedelta(days=number * params.welcome_every_days)
        issues.append(
            CouponIssue(
                _local(day, 18, time_zone),
                tuple(sorted(persons)),
                key=f"demo:welcome:{day.isoformat()}",
                reason="welcome coupon for new members",
                template_codes=(params.welcome_template,),
            )
        )
    return issues


def _local(day: date, hour: int, time_zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=time_zone).astimezone(UTC)


def _campaign_issues(
    orders: Sequence[OrderFact],
    members: dict[int, MemberFact],
    programme: Programme,
    params: ActivityParameters,
    start: datetime,
    end: datetime,
    time_zone: ZoneInfo,
) -> list[CouponIssue]:
    first, last = start.astimezone(time_zone).year, end.astimezone(time_zone).year
    runs = sorted(
        (_local(date(year, month, day), 10, time_zone), code)
        for year in range(first, last + 1)
        for code, month, day in params.campaigns
    )
    runs = [(at, code) for at, code in runs if start <= at <= end]
    if not runs:
        return []
    instants = [at for at, _ in runs]
    lookback = timedelta(days=params.campaign_lookback_days)
    buyers: list[set[int]] = [set() for _ in runs]
    for order in orders:
        # The campaigns whose look-back window [at - lookback, at) holds this order.
        first_run = bisect.bisect_right(instants, order.paid_at)
        last_run = bisect.bisect_right(instants, order.paid_at + lookback)
        for index in range(first_run, last_run):
            if _is_member_at(members.get(order.person_id), runs[index][0]):
                buyers[index].add(order.person_id)
    extras = dict(params.campaign_extras)
    issues: list[CouponIssue] = []
    for (at, code), persons in zip(runs, buyers, strict=True):
        if not persons:
            continue
        year = at.astimezone(time_zone).year
        chosen = tuple(sorted(persons))
        issues.append(
            CouponIssue(
                at,
                chosen,
                key=f"demo:campaign:{code}:{year}",
                reason=f"{code} {year} campaign for recent buyers",
                pack_code=params.campaign_pack,
            )
        )
        templates = tuple(
            template
            for template in extras.get(code, ())
            if _within_window(programme.coupon_template(template), at, time_zone)
        )
        if templates:
            issues.append(
                CouponIssue(
                    at,
                    chosen,
                    key=f"demo:campaign:{code}:{year}:extras",
                    reason=f"{code} {year} campaign for recent buyers",
                    template_codes=templates,
                )
            )
    return issues


def _within_window(template: CouponTemplate, at: datetime, time_zone: ZoneInfo) -> bool:
    """Whether a coupon of ``template`` issued at ``at`` can be used at once (a campaign's own window)."""
    valid_from, valid_until = validity_window(template, at, time_zone)
    return valid_from <= at < valid_until


def _birthdays(
    members: Sequence[MemberFact], params: ActivityParameters, rng: random.Random
) -> list[tuple[int, date]]:
    """A birthday for ``birthday_share`` of the members still in the programme."""
    found: list[tuple[int, date]] = []
    for member in members:
        share, year, day = rng.random(), rng.randint(*BIRTH_YEARS), rng.randrange(365)
        if member.left_at is None and share < params.birthday_share:
            found.append((member.person_id, date(year, 1, 1) + timedelta(days=day)))
    return found


def _birthday_runs(
    members: Sequence[MemberFact],
    birthdays: dict[int, date],
    start: datetime,
    end: datetime,
    time_zone: ZoneInfo,
) -> list[BirthdayRun]:
    """The birthday job on the first of every month, for members with a birthday then who had joined."""
    by_month: dict[int, list[MemberFact]] = {}
    for member in members:
        birthday = birthdays.get(member.person_id)
        if birthday is not None:
            by_month.setdefault(birthday.month, []).append(member)
    runs: list[BirthdayRun] = []
    month = start.astimezone(time_zone).date().replace(day=1)
    while True:
        at = _local(month, 9, time_zone)
        if at > end:
            return runs
        persons = tuple(
            member.person_id for member in by_month.get(month.month, ()) if _is_member_at(member, at)
        )
        if persons and at >= start:
            runs.append(BirthdayRun(at, month, persons))
        month = (month + timedelta(days=32)).replace(day=1)


def _order_intents(
    orders: Sequence[OrderFact],
    members: dict[int, MemberFact],
    engaged: set[int],
    programme: Programme,
    params: ActivityParameters,
    rng: random.Random,
) -> list[CouponUse | PointsUse]:
    """Orders that look for a coupon, and orders paid partly with points (engaged members' more often)."""
    found: list[CouponUse | PointsUse] = []
    point_value = programme.point_value_fen
    engaged_share, other_share = params.coupon_use_share
    for order in orders:
        coupon, points = rng.random(), rng.random()
        if order.plan_price_fen is not None or order.plan_sku is not None:
            continue
        if not _is_member_at(members.get(order.person_id), order.paid_at):
            continue
        keen = order.person_id in engaged
        if coupon < (engaged_share if keen else other_share):
            found.append(
                CouponUse(
                    order.paid_at,
                    order.person_id,
                    order.order_id,
                    order.amount_fen,
                    order.source,
                    order.external_id,
                    key=f"demo:coupon:{order.order_id}",
                )
            )
        cap = int(order.amount_fen * params.points_use_cap) // point_value
        if points < params.points_use_share[0 if keen else 1] and cap > 0:
            found.append(
                PointsUse(
                    order.paid_at,
                    order.person_id,
                    order.order_id,
                    cap,
                    order.source,
                    order.external_id,
                    key=f"demo:points:{order.order_id}",
                )
            )
    return found


def _reward_visits(
    members: Sequence[MemberFact],
    params: ActivityParameters,
    rng: random.Random,
    start: datetime,
    end: datetime,
) -> list[RewardVisit]:
    """Mall visits of ``members`` as a Poisson process over each one's time in the programme."""
    found: list[RewardVisit] = []
    year = timedelta(days=365).total_seconds()
    low, high = params.cancel_days
    for member in members:
        since = max(member.joined_at, start)
        until = min(member.left_at or end, end)
        at = since
        visit = 0
        while params.reward_visits_per_year > 0:
            at += timedelta(seconds=rng.expovariate(params.reward_visits_per_year) * year)
            if at >= until:
                break
            visit += 1
            wants_goods = rng.random() < params.goods_share
            cancel = rng.random() < params.cancel_share
            delay = timedelta(days=rng.randint(low, high), hours=rng.randrange(24))
            found.append(
                RewardVisit(
                    at,
                    member.person_id,
                    key=f"demo:reward:{member.person_id}:{visit}",
                    wants_goods=wants_goods,
                    cancel_after=delay if cancel else None,
                )
            )
    return found
