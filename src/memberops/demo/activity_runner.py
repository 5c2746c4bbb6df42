"""The replay's hook that carries out the demo's planned programme activity through the services.

``ActivityRunner`` is called by ``loyalty.jobs.replay`` after each batch (and each checkpoint) has
committed history up to ``clock``; it then does, in time order and each at its own instant, every
planned action up to ``clock``, in one transaction per call, and runs the coupon expiry job (and,
once a month, the paid-plan expiry job) as of ``clock``.

Historic correctness: an action at ``t`` only spends points of lots earned before ``t`` (the runner
checks the member's lots as of ``t`` before it spends, and the ledger draws the soonest-expiring,
then oldest, lots first, so the spend never takes points earned later in the batch); coupons are
used only after they were issued and inside their window. Everything goes through the services
(plans, coupons, rewards, birthday gifts, points), none writes a table directly. Services that can
keep quiet do (``emit_events=False``); the others store their events in the outbox with the
historic instant, where no webhook subscription of a fresh demo database picks them up.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from memberops.demo.programme_activity import (
    Activity,
    ActivityParameters,
    ActivityPlan,
    BirthdayRun,
    CouponIssue,
    CouponUse,
    PlanPurchase,
    PointsUse,
    RewardVisit,
)
from memberops.identity.repository import chunks
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict
from memberops.loyalty import benefit_service, coupon_service, plan_service, reward_service
from memberops.loyalty.offers import CouponTemplate, Reward
from memberops.loyalty.points import spend_points
from memberops.loyalty.programme import Programme
from memberops.loyalty.rewards import REDEEMED, reward_rejection_reason
from memberops.loyalty.versions import programme_version
from memberops.models import Coupon, MemberTier, PointsLot, RewardRedemption, RewardStock

ACTOR = "demo-activity"
#: Persons per bulk coupon issue (well under the coupon service's limit per call).
ISSUE_CHUNK = 20_000


@dataclass
class ActivityReport:
    """What the runner did (the attempts that found nothing to do are counted apart)."""

    birthdays_recorded: int = 0
    plan_terms: int = 0
    plan_renewals: int = 0
    plan_orders_unmatched: int = 0
    coupons_issued: int = 0
    birthday_gifts: int = 0
    coupon_uses: int = 0
    coupon_discount_fen: int = 0
    coupon_uses_without_coupon: int = 0
    points_uses: int = 0
    points_used: int = 0
    rewards_redeemed: int = 0
    reward_points: int = 0
    rewards_cancelled: int = 0
    rewards_refused: int = 0
    coupons_expired: int = 0
    plans_expired: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the figures by name."""
        return dict(self.__dict__)


@dataclass(slots=True)
class _HeldCoupon:
    coupon_id: int
    template: CouponTemplate
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True, order=True)
class _Cancellation:
    """A planned change of mind: cancel a redemption made earlier in the replay."""

    at: datetime
    redemption_id: int


@dataclass
class _Window:
    """What one call reads once, then keeps up to date as it acts: lots, tiers and coupons.

    ``coupons`` holds the usable coupons of ``users``, the members who look for one in this call.
    """

    lots: dict[int, list[tuple[datetime, datetime | None, int]]]
    spent: defaultdict[int, int]
    tiers: dict[int, str]
    users: frozenset[int]
    coupons: defaultdict[int, list[_HeldCoupon]] = field(default_factory=lambda: defaultdict(list))


class ActivityRunner:
    """The replay's ``between_batches`` hook: do every planned action up to ``clock``, in time order."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        plan: ActivityPlan,
        *,
        time_zone: ZoneInfo,
        programme: Programme,
        parameters: ActivityParameters | None = None,
        actor: str = ACTOR,
    ) -> None:
        self.sessions = sessions
        self.parameters = parameters or ActivityParameters()
        self.time_zone = time_zone
        self.programme = programme
        self.actor = actor
        self.report = ActivityReport(plan_orders_unmatched=plan.unmatched_plan_orders)
        self._planned = plan.activities
        self._next = 0
        self._cancellations: list[_Cancellation] = []
        self._plan_month: tuple[int, int] | None = None
        self._templates: dict[tuple[int, str], CouponTemplate] = {}
        self._by_member: defaultdict[tuple[int, str], int] = defaultdict(int)
        self._in_all: dict[str, int] = {}
        self._goods = sorted(
            (reward for reward in programme.rewards if reward.goods is not None),
            key=lambda reward: (-reward.points_price, reward.code),
        )
        self._vouchers = sorted(
            (reward for reward in programme.rewards if reward.coupon is not None),
            key=lambda reward: (-reward.points_price, reward.code),
        )
        with unit_of_work(sessions) as session:
            self._load_redemptions(session)

    def __call__(self, clock: datetime) -> None:
        """Do every action planned up to ``clock`` (one transaction), then run the coupon and plan jobs."""
        due = self._take_due(clock)
        with unit_of_work(self.sessions) as session:
            if due:
                window = self._read_window(session, due)
                for activity in due:
                    self._do(session, window, activity)
            self._expire(session, clock)

    # ------------------------------------------------------------------ reading

    def _take_due(self, clock: datetime) -> list[Activity | _Cancellation]:
        planned: list[Activity | _Cancellation] = []
        while self._next < len(self._planned) and self._planned[self._next].at <= clock:
            planned.append(self._planned[self._next])
            self._next += 1
        cancellations: list[_Cancellation] = []
        while self._cancellations and self._cancellations[0].at <= clock:
            cancellations.append(heapq.heappop(self._cancellations))
        if not cancellations:
            return planned
        # Stable merge: at one instant the planned actions go first.
        planned.extend(cancellations)
        return sorted(planned, key=lambda item: (item.at, isinstance(item, _Cancellation)))

    def _load_redemptions(self, session: Session) -> None:
        for person_id, code, count in session.execute(
            select(RewardRedemption.person_id, RewardRedemption.reward_code, func.count())
            .where(RewardRedemption.status == REDEEMED)
            .group_by(RewardRedemption.person_id, RewardRedemption.reward_code)
        ):
            self._by_member[(int(person_id), str(code))] = int(count)
        self._in_all = {
            str(code): int(redeemed)
            for code, redeemed in session.execute(select(RewardStock.reward_code, RewardStock.redeemed))
        }

    def _read_window(self, session: Session, due: Sequence[Activity | _Cancellation]) -> _Window:
        spenders = sorted({item.person_id for item in due if isinstance(item, PointsUse | RewardVisit)})
        visitors = sorted({item.person_id for item in due if isinstance(item, RewardVisit)})
        users = sorted({item.person_id for item in due if isinstance(item, CouponUse)})
        lots: dict[int, list[tuple[datetime, datetime | None, int]]] = defaultdict(list)
        for part in chunks(spenders):
            for person_id, earned_at, expires_at, remaining in session.execute(
                select(PointsLot.person_id, PointsLot.earned_at, PointsLot.expires_at, PointsLot.remaining)
                .where(PointsLot.person_id.in_(part), PointsLot.remaining > 0)
                .order_by(PointsLot.person_id, PointsLot.id)
            ):
                lots[int(person_id)].append((earned_at, expires_at, int(remaining)))
        tiers: dict[int, str] = {}
        for part in chunks(visitors):
            tiers.update(
                (int(person_id), str(tier))
                for person_id, tier in session.execute(
                    select(MemberTier.person_id, MemberTier.tier).where(MemberTier.person_id.in_(part))
                )
            )
        window = _Window(lots, defaultdict(int), tiers, frozenset(users))
        first = due[0].at
        self._add_coupons(
            session,
            window,
            [
                coupon
                for part in chunks(users)
                for coupon in session.scalars(
                    select(Coupon)
                    .where(Coupon.person_id.in_(part), Coupon.status == "issued", Coupon.valid_until > first)
                    .order_by(Coupon.id)
                )
            ],
        )
        return window

    def _template(self, session: Session, version_id: int, code: str) -> CouponTemplate:
        found = self._templates.get((version_id, code))
        if found is None:
            found = programme_version(session, version_id).programme.coupon_template(code)
            self._templates[(version_id, code)] = found
        return found

    def _add_coupons(self, session: Session, window: _Window, coupons: Iterable[Coupon]) -> None:
        for coupon in coupons:
            if coupon.person_id in window.users and coupon.status == "issued":
                window.coupons[coupon.person_id].append(
                    _HeldCoupon(
                        coupon.id,
                        self._template(session, coupon.programme_version_id, coupon.template_code),
                        coupon.issued_at,
                        coupon.valid_from,
                        coupon.valid_until,
                    )
                )

    def _reload_coupons(self, session: Session, window: _Window, person_id: int, at: datetime) -> None:
        """Read again the coupons of a member a service just gave some to (when they use coupons now)."""
        if person_id not in window.users:
            return
        held = {coupon.coupon_id for coupon in window.coupons[person_id]}
        fresh = session.scalars(
            select(Coupon).where(
                Coupon.person_id == person_id, Coupon.status == "issued", Coupon.valid_until > at
            )
        )
        self._add_coupons(session, window, [coupon for coupon in fresh if coupon.id not in held])

    # ------------------------------------------------------------------ acting

    def _do(self, session: Session, window: _Window, item: Activity | _Cancellation) -> None:
        if isinstance(item, CouponIssue):
            self._issue(session, window, item)
        elif isinstance(item, BirthdayRun):
            self._birthdays(session, window, item)
        elif isinstance(item, PlanPurchase):
            self._buy_plan(session, window, item)
        elif isinstance(item, RewardVisit):
            self._visit_mall(session, window, item)
        elif isinstance(item, PointsUse):
            self._use_points(session, window, item)
        elif isinstance(item, CouponUse):
            self._use_coupon(session, window, item)
        else:
            self._cancel(session, window, item)

    def _issue(self, session: Session, window: _Window, item: CouponIssue) -> None:
        for part in chunks(item.person_ids, ISSUE_CHUNK):
            if item.pack_code is not None:
                outcome = coupon_service.issue_pack(
                    session,
                    part,
                    item.pack_code,
                    key=item.key,
                    reason=item.reason,
                    actor=self.actor,
                    time_zone=self.time_zone,
                    now=item.at,
                    emit_events=False,
                )
            else:
                outcome = coupon_service.issue_coupons(
                    session,
                    part,
                    [coupon_service.IssueRequest(code) for code in item.template_codes],
                    key=item.key,
                    reason=item.reason,
                    actor=self.actor,
                    time_zone=self.time_zone,
                    source="bulk",
                    now=item.at,
                    emit_events=False,
                )
            self.report.coupons_issued += len(outcome.created)
            self._add_coupons(session, window, outcome.created)

    def _birthdays(self, session: Session, window: _Window, item: BirthdayRun) -> None:
        given = benefit_service.grant_birthday_gifts(
            session,
            item.person_ids,
            today=item.today,
            actor=self.actor,
            time_zone=self.time_zone,
            now=item.at,
        )
        self.report.birthday_gifts += len(given)
        for person_id in sorted({gift.person_id for gift in given if gift.coupon_ids}):
            self._reload_coupons(session, window, person_id, item.at)

    def _buy_plan(self, session: Session, window: _Window, item: PlanPurchase) -> None:
        try:
            with session.begin_nested():
                outcome = plan_service.buy_plan(
                    session,
                    item.person_id,
                    item.plan_code,
                    key=item.key,
                    actor=self.actor,
                    time_zone=self.time_zone,
                    payment_ref=item.payment_ref[:64],
                    now=item.at,
                )
        except Conflict:
            self.report.plan_orders_unmatched += 1
            return
        if outcome.created:
            self.report.plan_terms += 1
            self.report.plan_renewals += outcome.term.kind == "renewal"
        self._reload_coupons(session, window, item.person_id, item.at)

    def _spendable(self, window: _Window, person_id: int, at: datetime) -> int:
        """Points of lots earned before ``at`` and not expired then, less what this call spent."""
        held = sum(
            remaining
            for earned_at, expires_at, remaining in window.lots.get(person_id, ())
            if earned_at < at and (expires_at is None or expires_at > at)
        )
        return held - window.spent[person_id]

    def _use_points(self, session: Session, window: _Window, item: PointsUse) -> None:
        spendable = self._spendable(window, item.person_id, item.at)
        if spendable < self.parameters.points_use_minimum:
            return
        points = min(item.cap_points, spendable)
        order = f"{item.source}:{item.external_id}"
        try:
            with session.begin_nested():
                spend_points(
                    session,
                    item.person_id,
                    points,
                    key=item.key,
                    reason=f"points used at checkout of order {order}"[:200],
                    source="checkout",
                    source_ref=order[:64],
                    actor=self.actor,
                    now=item.at,
                )
        except Conflict:
            return
        window.spent[item.person_id] += points
        self.report.points_uses += 1
        self.report.points_used += points

    def _choose_reward(self, window: _Window, item: RewardVisit) -> Reward | None:
        balance = self._spendable(window, item.person_id, item.at)
        tier = window.tiers.get(item.person_id, self.programme.tiers[0].code)
        choices = [*self._goods, *self._vouchers] if item.wants_goods else self._vouchers
        for reward in choices:
            refused = reward_rejection_reason(
                self.programme,
                reward,
                tier=tier,
                redeemed_by_member=self._by_member[(item.person_id, reward.code)],
                redeemed_in_all=self._in_all.get(reward.code, 0),
                balance=balance,
            )
            if refused is None:
                return reward
        return None

    def _visit_mall(self, session: Session, window: _Window, item: RewardVisit) -> None:
        reward = self._choose_reward(window, item)
        if reward is None:
            return
        try:
            with session.begin_nested():
                outcome = reward_service.redeem_reward(
                    session,
                    item.person_id,
                    reward.code,
                    key=item.key,
                    actor=self.actor,
                    time_zone=self.time_zone,
                    now=item.at,
                )
        except Conflict:
            self.report.rewards_refused += 1
            return
        if not outcome.created:
            return
        window.spent[item.person_id] += reward.points_price
        self._by_member[(item.person_id, reward.code)] += 1
        self._in_all[reward.code] = self._in_all.get(reward.code, 0) + 1
        self.report.rewards_redeemed += 1
        self.report.reward_points += reward.points_price
        if outcome.redemption.coupon_id is not None:
            self._reload_coupons(session, window, item.person_id, item.at)
        if item.cancel_after is not None:
            heapq.heappush(
                self._cancellations,
                _Cancellation(item.at + item.cancel_after, outcome.redemption.id),
            )

    def _cancel(self, session: Session, window: _Window, item: _Cancellation) -> None:
        try:
            with session.begin_nested():
                outcome = reward_service.cancel_redemption(
                    session,
                    item.redemption_id,
                    reason="the member changed their mind",
                    actor=self.actor,
                    now=item.at,
                )
        except Conflict:
            return  # the voucher it granted was used meanwhile
        if not outcome.created:
            return
        redemption = outcome.redemption
        self._by_member[(redemption.person_id, redemption.reward_code)] -= 1
        self._in_all[redemption.reward_code] -= 1
        self.report.rewards_cancelled += 1
        held = window.coupons.get(redemption.person_id)
        if held is not None and redemption.coupon_id is not None:
            held[:] = [coupon for coupon in held if coupon.coupon_id != redemption.coupon_id]

    def _use_coupon(self, session: Session, window: _Window, item: CouponUse) -> None:
        held = window.coupons.get(item.person_id, [])
        best: tuple[int, datetime, int] | None = None
        chosen: _HeldCoupon | None = None
        for coupon in held:
            discount = _discount(coupon, item.amount_fen, item.at)
            if not discount:
                continue
            rank = (-discount, coupon.valid_until, coupon.coupon_id)
            if best is None or rank < best:
                best, chosen = rank, coupon
        if chosen is None or best is None:
            self.report.coupon_uses_without_coupon += 1
            return
        held.remove(chosen)
        try:
            with session.begin_nested():
                coupon_service.redeem_coupon(
                    session,
                    f"#{chosen.coupon_id}",
                    key=item.key,
                    actor=self.actor,
                    channel=item.source,
                    order_ref=item.external_id,
                    discount_fen=-best[0],
                    now=item.at,
                )
        except Conflict:
            return
        self.report.coupon_uses += 1
        self.report.coupon_discount_fen += -best[0]

    # ------------------------------------------------------------------ jobs

    def _expire(self, session: Session, clock: datetime) -> None:
        """Expire coupons past their window (no notices: they would be history) and, monthly, plans."""
        while True:
            expired = coupon_service.expire_coupons(session, now=clock, notice_days=0, limit=20_000)
            self.report.coupons_expired += expired.expired
            if expired.expired == 0:
                break
        local = clock.astimezone(self.time_zone)
        month = (local.year, local.month)
        if month == self._plan_month:
            return
        self._plan_month = month
        self.report.plans_expired += expire_plans(session, time_zone=self.time_zone, now=clock)


def _discount(coupon: _HeldCoupon, amount_fen: int, at: datetime) -> int | None:
    """What ``coupon`` takes off an order of ``amount_fen`` at ``at``, or None when it does not apply.

    Only coupons without a scope are used: the demo's orders are matched to coupons by amount alone.
    """
    template = coupon.template
    scope = template.scope
    if scope.skus or scope.categories or scope.stores or scope.channels:
        return None
    if not (coupon.issued_at <= at and coupon.valid_from <= at < coupon.valid_until):
        return None
    if amount_fen < template.min_spend_fen:
        return None
    if template.kind == "percentage":
        off = amount_fen * (template.percent_off or 0) // 100
        if template.max_discount_fen is not None:
            off = min(off, template.max_discount_fen)
        return off
    return min(template.amount_fen or 0, amount_fen)


def expire_plans(session: Session, *, time_zone: ZoneInfo, now: datetime) -> int:
    """Run the paid-plan expiry job as of ``now`` over every member; return the runs it ended."""
    expired, after = 0, 0
    while True:
        report = plan_service.expire_plans(session, time_zone=time_zone, now=now, after=after, limit=500)
        expired += report.expired
        if report.members == 0:
            return expired
        after = report.last_person_id
