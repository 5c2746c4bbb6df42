"""Loyalty reports: points economics, tier distribution and transitions, coupon issuance and redemption.

Read-only functions over a ``Session``, written in SQLAlchemy Core with no dialect-specific SQL, so
SQLite and PostgreSQL give the same figures. A period is a range of **business dates** in the
brand's time zone, both ends included: it runs from the first date's midnight to the midnight after
the last date (brand time), compared with stored UTC instants as ``begins_at <= t < ends_at``.

Points and counts are whole numbers, money is integer fen and ratios are ``Decimal`` rounded half
to even to four places (``RATIO_PLACES``); a ratio whose denominator is zero is ``None``. Every
figure is decided by what happened inside the period, so a later undo counts in the later period
(a cancellation in April does not change March). Only data that arrives late but is dated inside
a period (an order imported today, paid in March) changes that period, as it should.

**When a points entry happened** (``occurred_at``): a credit (``earn``, ``gift``, a positive
``adjust``) happened when its points lot was earned, which for a purchase is the order's payment
time even when the order was imported later; a ``refund_take_back`` when the refund was made; every
other entry (``spend``, ``restore``, ``expire``, ``claw_back``, a negative ``adjust``) when it was
written. So a month's figures follow the purchases and refunds of that month, not the import day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FromClause

from memberops.kit.clock import zone
from memberops.kit.db import UTCDateTime
from memberops.kit.errors import ValidationFailed
from memberops.kit.money import fen_to_yuan
from memberops.loyalty.programme import Programme
from memberops.loyalty.versions import ActiveProgramme, active_programme, programme_version
from memberops.models import (
    CheckoutSettlement,
    Coupon,
    CouponRedemption,
    Membership,
    Order,
    PointsEntry,
    PointsLot,
    ProgrammeVersion,
    Refund,
    RefundTakeBack,
    TierChangeRecord,
    table_of,
)

#: Ratios are rounded half to even to this many places.
RATIO_PLACES = Decimal("0.0001")
#: The longest period a report covers (its monthly breakdown has at most this many months).
MAX_MONTHS = 120

#: Points entry kinds a report names; the net of any other kind is reported as ``other``.
_KNOWN_KINDS = ("earn", "gift", "adjust", "spend", "restore", "refund_take_back", "expire", "claw_back")

_entries = table_of(PointsEntry)
_lots = table_of(PointsLot)
_take_backs = table_of(RefundTakeBack)
_refunds = table_of(Refund)
_orders = table_of(Order)
_memberships = table_of(Membership)
_history = table_of(TierChangeRecord)
_coupons = table_of(Coupon)
_redemptions = table_of(CouponRedemption)
_settlements = table_of(CheckoutSettlement)
_versions = table_of(ProgrammeVersion)


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """Return ``numerator / denominator`` rounded half to even to four places; None when it is 0."""
    if denominator == 0:
        return None
    with localcontext() as context:
        context.prec = 60
        return (Decimal(numerator) / Decimal(denominator)).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else fen_to_yuan(fen)


# --- Periods -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Business dates ``start``..``end`` (both included) and the UTC instants that bound them."""

    start: date
    end: date
    begins_at: datetime
    ends_at: datetime


def _zone(time_zone: ZoneInfo | str) -> ZoneInfo:
    return time_zone if isinstance(time_zone, ZoneInfo) else zone(time_zone)


def _midnight(day: date, time_zone: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=time_zone).astimezone(UTC)


def period_of(start: date, end: date, time_zone: ZoneInfo | str) -> Period:
    """Return the period of business dates ``start``..``end`` (both included).

    ``ValidationFailed`` when it ends before it starts or spans more than ``MAX_MONTHS`` months.
    """
    if end < start:
        raise ValidationFailed(f"the period ends ({end}) before it starts ({start})")
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_MONTHS:
        raise ValidationFailed(f"a report covers at most {MAX_MONTHS} months")
    tz = _zone(time_zone)
    return Period(start, end, _midnight(start, tz), _midnight(end + timedelta(days=1), tz))


def months_of(period: Period, time_zone: ZoneInfo | str) -> list[Period]:
    """Split a period into calendar months (brand time); the first and last are cut to the period."""
    tz = _zone(time_zone)
    found: list[Period] = []
    first = period.start
    while first <= period.end:
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = min(following - timedelta(days=1), period.end)
        found.append(Period(first, last, _midnight(first, tz), _midnight(last + timedelta(days=1), tz)))
        first = following
    return found


def month_start(day: date, months_back: int = 0) -> date:
    """Return the first day of the month ``months_back`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def recent_months(today: date, count: int) -> tuple[date, date]:
    """Return the period of the last ``count`` calendar months, the current one up to ``today``.

    ``recent_months(today, 1)`` is the month to date, the default period of ``DOMAIN.md`` §5.
    """
    return month_start(today, count - 1), today


def chosen_period(start: date | None, end: date | None, *, today: date, months: int) -> tuple[date, date]:
    """Return the period a caller asked for, filling what they left out.

    ``end`` defaults to ``today``; ``start`` to the first day of the month ``months - 1`` months
    before ``end``'s month (``months=1``: the month of ``end`` up to it).
    """
    last = end if end is not None else today
    return (start if start is not None else recent_months(last, months)[0]), last


def _at(instant: datetime) -> ColumnElement[datetime]:
    return literal(instant, UTCDateTime())


def _within(column: ColumnElement[datetime], begins_at: datetime, ends_at: datetime) -> ColumnElement[bool]:
    return and_(column >= _at(begins_at), column < _at(ends_at))


def _bucket(column: ColumnElement[datetime], periods: Sequence[Period]) -> ColumnElement[int]:
    """The index of the period ``column`` falls in (rows are filtered to the periods' span first)."""
    if len(periods) == 1:
        return literal(0)
    return case(
        *[(column < _at(period.ends_at), index) for index, period in enumerate(periods[:-1])],
        else_=len(periods) - 1,
    )


def programme_in_force(session: Session, at: datetime) -> ActiveProgramme | None:
    """Return the programme version in force at ``at``: the one applied last before it.

    A version applied again later counts from its latest application (the store keeps only that);
    when no version was applied before ``at``, the active version stands in (None when none is).
    """
    version_id = session.scalar(
        select(_versions.c.id)
        .where(_versions.c.applied_at < _at(at))
        .order_by(_versions.c.applied_at.desc(), _versions.c.id.desc())
        .limit(1)
    )
    if version_id is not None:
        return programme_version(session, int(version_id))
    return active_programme(session)


# --- Points economics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointsFigures:
    """The points economics of one period (the whole report, or one month of it).

    Flows, in points, of entries that happened in the period (see the module docstring):

    - ``earned``: ``earn`` entries (purchases); ``gifted``: ``gift`` entries (upgrade, birthday,
      plan-welcome and growth-task gifts); ``added``: positive ``adjust`` entries (operators).
    - ``issued`` = earned + gifted + added.
    - ``spent``: ``spend`` entries (rewards, checkout, redemptions), as a positive figure;
      ``restored``: ``restore`` entries (cancelled spends put back); ``burned`` = spent − restored
      (negative in a period whose restores outweigh its spends).
    - ``expired``: ``expire`` entries; ``taken_back``: ``refund_take_back`` entries (refunds);
      ``clawed_back``: ``claw_back`` entries (later credits repaying a refund shortfall);
      ``removed``: negative ``adjust`` entries; ``other``: the net of any other entry kind.
    - ``net_change`` = issued − burned − expired − taken_back − clawed_back − removed + other, the
      sum of the period's deltas, so ``opening_points + net_change == outstanding_points``.

    Stocks and values:

    - ``opening_points`` / ``outstanding_points``: the sum of every member's balance just before
      the period / at its end (all entries that happened before that instant). A negative balance
      (a refund after the points were spent) lowers it: those points are owed back. Points past
      their expiry stay outstanding until the expiry job writes their ``expire`` entry.
    - ``point_value_fen``: the value of one point under the programme in force at the period's end
      (``programme_in_force``); None when no programme was ever applied.
    - ``liability_fen`` = outstanding_points × point_value_fen: what the points still out could
      cost the brand (None without a programme).
    - ``burned_value_fen``: the cost of the burned points, each spend and restore valued at the
      point value of the programme version it was written under (an entry without a version at
      ``point_value_fen``).
    - ``redemption_rate`` = burned ÷ issued.
    - ``earners``: members with an ``earn`` entry in the period (point earners).
    - ``earner_sales_fen``: their sales in the period: the amounts of their orders paid in the
      period minus the refunds made in the period on any of their orders.
    - ``return_on_points`` = earner_sales_fen ÷ burned_value_fen (None when burned_value_fen ≤ 0).
    """

    start: date
    end: date
    earned: int
    gifted: int
    added: int
    spent: int
    restored: int
    expired: int
    taken_back: int
    clawed_back: int
    removed: int
    other: int
    opening_points: int
    outstanding_points: int
    point_value_fen: int | None
    liability_fen: int | None
    burned_value_fen: int
    earners: int
    earner_sales_fen: int
    redemption_rate: Decimal | None
    return_on_points: Decimal | None

    @property
    def issued(self) -> int:
        """Points issued: earned + gifted + added."""
        return self.earned + self.gifted + self.added

    @property
    def burned(self) -> int:
        """Points burned: spent − restored."""
        return self.spent - self.restored

    @property
    def net_change(self) -> int:
        """The sum of the period's deltas (``outstanding_points - opening_points``)."""
        return (
            self.issued
            - self.burned
            - self.expired
            - self.taken_back
            - self.clawed_back
            - self.removed
            + self.other
        )

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values: points as numbers, money as yuan strings, ratios as decimal strings."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "issued": self.issued,
            "earned": self.earned,
            "gifted": self.gifted,
            "added": self.added,
            "burned": self.burned,
            "spent": self.spent,
            "restored": self.restored,
            "expired": self.expired,
            "taken_back": self.taken_back,
            "clawed_back": self.clawed_back,
            "removed": self.removed,
            "other": self.other,
            "net_change": self.net_change,
            "opening_points": self.opening_points,
            "outstanding_points": self.outstanding_points,
            "point_value": _yuan(self.point_value_fen),
            "liability": _yuan(self.liability_fen),
            "burned_value": _yuan(self.burned_value_fen),
            "earners": self.earners,
            "earner_sales": _yuan(self.earner_sales_fen),
            "redemption_rate": _text(self.redemption_rate),
            "return_on_points": _text(self.return_on_points),
        }


@dataclass(frozen=True)
class PointsEconomics(PointsFigures):
    """The points economics of a period (see ``PointsFigures``) and of each calendar month in it."""

    time_zone: str = ""
    months: tuple[PointsFigures, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values (see ``PointsFigures.as_dict``)."""
        return {
            **super().as_dict(),
            "time_zone": self.time_zone,
            "months": [month.as_dict() for month in self.months],
        }


def _ledger() -> tuple[FromClause, ColumnElement[datetime]]:
    """The entries joined to what dates them, and the instant each happened (module docstring)."""
    joined = (
        _entries.outerjoin(_lots, _lots.c.entry_id == _entries.c.id)
        .outerjoin(_take_backs, _take_backs.c.points_entry_id == _entries.c.id)
        .outerjoin(_refunds, _refunds.c.id == _take_backs.c.refund_id)
    )
    occurred = func.coalesce(_refunds.c.refunded_at, _lots.c.earned_at, _entries.c.created_at)
    return joined, occurred


@dataclass
class _Flows:
    by_kind: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    added: int = 0
    removed: int = 0
    burned_by_version: defaultdict[int | None, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def net(self) -> int:
        return sum(self.by_kind.values()) + self.added - self.removed


def _flows(session: Session, periods: Sequence[Period]) -> list[_Flows]:
    joined, occurred = _ledger()
    inner = (
        select(
            _bucket(occurred, periods).label("bucket"),
            _entries.c.kind,
            _entries.c.programme_version_id.label("version_id"),
            case((_entries.c.delta > 0, 1), else_=0).label("positive"),
            _entries.c.delta,
        )
        .select_from(joined)
        .where(_within(occurred, periods[0].begins_at, periods[-1].ends_at))
        .subquery()
    )
    rows = session.execute(
        select(inner.c.bucket, inner.c.kind, inner.c.version_id, inner.c.positive, func.sum(inner.c.delta))
        .group_by(inner.c.bucket, inner.c.kind, inner.c.version_id, inner.c.positive)
        .order_by(inner.c.bucket, inner.c.kind, inner.c.version_id, inner.c.positive)
    )
    flows = [_Flows() for _ in periods]
    for bucket, kind, version_id, positive, total in rows:
        found = flows[int(bucket)]
        delta = int(total)
        if kind == "adjust":
            if positive:
                found.added += delta
            else:
                found.removed -= delta
        else:
            found.by_kind[kind if kind in _KNOWN_KINDS else "other"] += delta
        if kind in ("spend", "restore"):
            found.burned_by_version[version_id] -= delta
    return flows


def _balance_before(session: Session, instant: datetime) -> int:
    joined, occurred = _ledger()
    total = session.scalar(
        select(func.coalesce(func.sum(_entries.c.delta), 0))
        .select_from(joined)
        .where(occurred < _at(instant))
    )
    return int(total or 0)


def _earner_sales(session: Session, periods: Sequence[Period]) -> list[tuple[int, int]]:
    """Per period: (members with an ``earn`` entry in it, their paid minus refunded fen in it)."""
    begins_at, ends_at = periods[0].begins_at, periods[-1].ends_at
    earners = (
        select(_entries.c.person_id.label("person_id"), _bucket(_lots.c.earned_at, periods).label("bucket"))
        .select_from(_entries.join(_lots, _lots.c.entry_id == _entries.c.id))
        .where(_entries.c.kind == "earn", _within(_lots.c.earned_at, begins_at, ends_at))
        .distinct()
        .subquery()
    )
    paid = select(
        _orders.c.person_id.label("person_id"),
        _bucket(_orders.c.paid_at, periods).label("bucket"),
        _orders.c.amount_fen.label("amount"),
    ).where(_orders.c.person_id.is_not(None), _within(_orders.c.paid_at, begins_at, ends_at))
    refunded = (
        select(
            _orders.c.person_id.label("person_id"),
            _bucket(_refunds.c.refunded_at, periods).label("bucket"),
            (-_refunds.c.amount_fen).label("amount"),
        )
        .select_from(_refunds.join(_orders, _orders.c.id == _refunds.c.order_id))
        .where(_orders.c.person_id.is_not(None), _within(_refunds.c.refunded_at, begins_at, ends_at))
    )
    money = union_all(paid, refunded).subquery()
    found = [[0, 0] for _ in periods]
    for bucket, count in session.execute(
        select(earners.c.bucket, func.count()).group_by(earners.c.bucket).order_by(earners.c.bucket)
    ):
        found[int(bucket)][0] = int(count)
    for bucket, total in session.execute(
        select(money.c.bucket, func.sum(money.c.amount))
        .select_from(
            money.join(
                earners,
                and_(earners.c.person_id == money.c.person_id, earners.c.bucket == money.c.bucket),
            )
        )
        .group_by(money.c.bucket)
        .order_by(money.c.bucket)
    ):
        found[int(bucket)][1] = int(total or 0)
    return [(count, sales) for count, sales in found]


class _PointValues:
    """Point values of stored programme versions, looked up once each."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.values: dict[int, int] = {}

    def of_version(self, version_id: int) -> int:
        if version_id not in self.values:
            self.values[version_id] = programme_version(self.session, version_id).programme.point_value_fen
        return self.values[version_id]

    def at(self, instant: datetime) -> int | None:
        found = programme_in_force(self.session, instant)
        return found.programme.point_value_fen if found is not None else None


def _figures(
    period: Period,
    flows: _Flows,
    *,
    opening: int,
    earners: int,
    earner_sales_fen: int,
    values: _PointValues,
) -> PointsFigures:
    point_value = values.at(period.ends_at)
    burned_value = sum(
        points * (values.of_version(version_id) if version_id is not None else (point_value or 0))
        for version_id, points in flows.burned_by_version.items()
    )
    kinds = flows.by_kind
    outstanding = opening + flows.net
    figures = PointsFigures(
        start=period.start,
        end=period.end,
        earned=kinds["earn"],
        gifted=kinds["gift"],
        added=flows.added,
        spent=-kinds["spend"],
        restored=kinds["restore"],
        expired=-kinds["expire"],
        taken_back=-kinds["refund_take_back"],
        clawed_back=-kinds["claw_back"],
        removed=flows.removed,
        other=kinds["other"],
        opening_points=opening,
        outstanding_points=outstanding,
        point_value_fen=point_value,
        liability_fen=outstanding * point_value if point_value is not None else None,
        burned_value_fen=burned_value,
        earners=earners,
        earner_sales_fen=earner_sales_fen,
        redemption_rate=None,
        return_on_points=None,
    )
    return _with_ratios(figures)


def _with_ratios(figures: PointsFigures) -> PointsFigures:
    return replace(
        figures,
        redemption_rate=ratio(figures.burned, figures.issued),
        return_on_points=(
            ratio(figures.earner_sales_fen, figures.burned_value_fen)
            if figures.burned_value_fen > 0
            else None
        ),
    )


def points_economics(
    session: Session, *, start: date, end: date, time_zone: ZoneInfo | str
) -> PointsEconomics:
    """Return the points economics of business dates ``start``..``end`` and of each month in them.

    Every figure is defined on ``PointsFigures``. The months are calendar months in ``time_zone``,
    the first and last cut to the period; their flows add up to the period's, and each month's
    ``outstanding_points`` is the next month's ``opening_points``. Earners and their sales are
    counted per month for a month and over the whole period for the period (a member who earns in
    January and buys again in February counts for February's sales in the period, not in February).
    """
    tz = _zone(time_zone)
    period = period_of(start, end, tz)
    months = months_of(period, tz)
    values = _PointValues(session)
    opening = _balance_before(session, period.begins_at)
    monthly_flows = _flows(session, months)
    monthly_earners = _earner_sales(session, months)
    breakdown: list[PointsFigures] = []
    balance = opening
    for month, flows, (earners, sales) in zip(months, monthly_flows, monthly_earners, strict=True):
        figures = _figures(
            month, flows, opening=balance, earners=earners, earner_sales_fen=sales, values=values
        )
        breakdown.append(figures)
        balance = figures.outstanding_points
    total = _Flows()
    for flows in monthly_flows:
        for kind, delta in flows.by_kind.items():
            total.by_kind[kind] += delta
        total.added += flows.added
        total.removed += flows.removed
        for version_id, points in flows.burned_by_version.items():
            total.burned_by_version[version_id] += points
    [(earners, sales)] = _earner_sales(session, [period])
    whole = _figures(period, total, opening=opening, earners=earners, earner_sales_fen=sales, values=values)
    copied = {item.name: getattr(whole, item.name) for item in fields(PointsFigures)}
    return PointsEconomics(**copied, time_zone=tz.key, months=tuple(breakdown))


# --- Tiers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierCount:
    """Members in one tier on the report date, and their share of all members then."""

    tier: str
    name: str | None
    members: int
    share: Decimal | None

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        return {"tier": self.tier, "name": self.name, "members": self.members, "share": _text(self.share)}


@dataclass(frozen=True)
class TierTransition:
    """Tier changes from one tier to another in the period: how many, and of how many members."""

    from_tier: str | None
    to_tier: str
    direction: str
    changes: int
    members: int

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        return {
            "from_tier": self.from_tier,
            "to_tier": self.to_tier,
            "direction": self.direction,
            "changes": self.changes,
            "members": self.members,
        }


@dataclass(frozen=True)
class TierReport:
    """Members per tier on a date, and the tier changes of a period.

    - ``members``: members on ``on`` (a membership spell that began before the day ended and was not
      cancelled by then; spells set aside by a merge do not count), each in the tier of their latest
      tier change recorded before the day ended, or the lowest tier when they have none;
      ``distribution`` lists every tier of the programme in force then (lowest first, with zeros),
      then any retired tier members still hold; ``share`` = tier members ÷ members.
    - ``transitions``: the tier history of the period grouped by (from, to, direction): ``changes``
      counts the records, ``members`` the distinct members among them. ``upgrades`` and
      ``downgrades`` add up the changes by direction.
    - Transition rates (``DOMAIN.md`` §5): ``members_at_start`` are the members when the period
      began; ``moved_up`` those of them whose tier when it ended ranks above their tier when it
      began, ``moved_down`` below (ranks of the programme in force at the end; a retired tier ranks
      as the lowest); ``up_rate`` = moved_up ÷ members_at_start, ``down_rate`` likewise.
    """

    on: date
    members: int
    distribution: tuple[TierCount, ...]
    start: date
    end: date
    transitions: tuple[TierTransition, ...]
    upgrades: int
    downgrades: int
    members_at_start: int
    moved_up: int
    moved_down: int
    up_rate: Decimal | None
    down_rate: Decimal | None
    time_zone: str

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        return {
            "on": self.on.isoformat(),
            "members": self.members,
            "distribution": [count.as_dict() for count in self.distribution],
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "transitions": [transition.as_dict() for transition in self.transitions],
            "upgrades": self.upgrades,
            "downgrades": self.downgrades,
            "members_at_start": self.members_at_start,
            "moved_up": self.moved_up,
            "moved_down": self.moved_down,
            "up_rate": _text(self.up_rate),
            "down_rate": _text(self.down_rate),
            "time_zone": self.time_zone,
        }


def _members_at(instant: datetime) -> Select[Any]:
    return (
        select(_memberships.c.person_id.label("person_id"))
        .where(
            _memberships.c.status != "merged",
            _memberships.c.joined_at < _at(instant),
            or_(_memberships.c.cancelled_at.is_(None), _memberships.c.cancelled_at >= _at(instant)),
        )
        .distinct()
    )


def _tiers_at(instant: datetime) -> Select[Any]:
    """Each member's tier after their latest change before ``instant`` (members with one only)."""
    ranked = (
        select(
            _history.c.person_id,
            _history.c.to_tier,
            func.row_number()
            .over(
                partition_by=_history.c.person_id,
                order_by=(_history.c.changed_at.desc(), _history.c.id.desc()),
            )
            .label("position"),
        )
        .where(_history.c.changed_at < _at(instant))
        .subquery()
    )
    return select(ranked.c.person_id.label("person_id"), ranked.c.to_tier.label("tier")).where(
        ranked.c.position == 1
    )


def _tier_order(programme: Programme | None, seen: Iterable[str | None]) -> list[str]:
    codes = [tier.code for tier in programme.tiers] if programme is not None else []
    extra = sorted({code for code in seen if code is not None and code not in codes})
    return codes + extra


def tier_report(
    session: Session, *, on: date, start: date, end: date, time_zone: ZoneInfo | str
) -> TierReport:
    """Return members per tier at the end of business date ``on`` and the tier moves of a period.

    The period is business dates ``start``..``end``; every figure is defined on ``TierReport``.
    """
    tz = _zone(time_zone)
    period = period_of(start, end, tz)
    on_at = _midnight(on + timedelta(days=1), tz)
    programme_then = programme_in_force(session, on_at)
    lowest_then = programme_then.programme.tiers[0].code if programme_then is not None else None

    members = _members_at(on_at).subquery()
    tiers = _tiers_at(on_at).subquery()
    counts: defaultdict[str | None, int] = defaultdict(int)
    for tier, count in session.execute(
        select(tiers.c.tier, func.count())
        .select_from(members.outerjoin(tiers, tiers.c.person_id == members.c.person_id))
        .group_by(tiers.c.tier)
    ):
        counts[tier if tier is not None else lowest_then] += int(count)
    total = sum(counts.values())
    distribution = tuple(
        TierCount(
            code,
            _tier_name(programme_then, code),
            counts.get(code, 0),
            ratio(counts.get(code, 0), total),
        )
        for code in _tier_order(programme_then.programme if programme_then else None, counts)
    )
    if None in counts:  # members but no programme at all: they hold no tier yet
        distribution += (TierCount("", None, counts[None], ratio(counts[None], total)),)

    transitions = tuple(
        TierTransition(from_tier, to_tier, direction, int(changes), int(persons))
        for from_tier, to_tier, direction, changes, persons in session.execute(
            select(
                _history.c.from_tier,
                _history.c.to_tier,
                _history.c.direction,
                func.count(),
                func.count(_history.c.person_id.distinct()),
            )
            .where(_within(_history.c.changed_at, period.begins_at, period.ends_at))
            .group_by(_history.c.from_tier, _history.c.to_tier, _history.c.direction)
            .order_by(_history.c.direction.desc(), _history.c.from_tier, _history.c.to_tier)
        )
    )

    programme_end = programme_in_force(session, period.ends_at)
    ranks = (
        {tier.code: rank for rank, tier in enumerate(programme_end.programme.tiers)} if programme_end else {}
    )
    starting = _members_at(period.begins_at).subquery()
    before = _tiers_at(period.begins_at).subquery("before")
    after = _tiers_at(period.ends_at).subquery("after")
    at_start = moved_up = moved_down = 0
    for tier_before, tier_after, count in session.execute(
        select(before.c.tier, after.c.tier, func.count())
        .select_from(
            starting.outerjoin(before, before.c.person_id == starting.c.person_id).outerjoin(
                after, after.c.person_id == starting.c.person_id
            )
        )
        .group_by(before.c.tier, after.c.tier)
    ):
        at_start += int(count)
        rank_before, rank_after = ranks.get(tier_before or "", 0), ranks.get(tier_after or "", 0)
        if rank_after > rank_before:
            moved_up += int(count)
        elif rank_after < rank_before:
            moved_down += int(count)
    return TierReport(
        on=on,
        members=total,
        distribution=distribution,
        start=period.start,
        end=period.end,
        transitions=transitions,
        upgrades=sum(t.changes for t in transitions if t.direction == "up"),
        downgrades=sum(t.changes for t in transitions if t.direction == "down"),
        members_at_start=at_start,
        moved_up=moved_up,
        moved_down=moved_down,
        up_rate=ratio(moved_up, at_start),
        down_rate=ratio(moved_down, at_start),
        time_zone=tz.key,
    )


def _tier_name(programme: ActiveProgramme | None, code: str) -> str | None:
    if programme is None:
        return None
    for tier in programme.programme.tiers:
        if tier.code == code:
            return tier.name
    return None


# --- Coupons -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CouponFigures:
    """Coupons of one template (or of all, ``template == "*"``) in a period.

    - ``issued``: coupons issued in the period; ``expired``: coupons the expiry job (or a release
      after the window ended) marked expired in the period; ``voided``: coupons voided in the period.
    - ``redeemed``: uses recorded in the period and still standing when it ended (a use undone
      within the period does not count; one undone later does, and counts as ``released`` then);
      ``released``: uses undone in the period, whenever they were made.
    - ``redemption_rate`` = redeemed ÷ issued (the period's activity, not a cohort: a coupon issued
      last month and used this month counts as used this month).
    - ``discount_fen``: what the counted uses took off.
    - ``orders``: distinct orders in the store the counted uses were on (a checkout settlement's
      order, or a direct use's ``channel`` and ``order_ref``), matched by source and external id;
      uses whose order is not in the store count in ``redeemed`` but not here.
    - ``order_sales_fen``: those orders' amounts minus the refunds made on them before the period
      ended. In the ``"*"`` row an order that used coupons of several templates counts once.
    """

    template: str
    name: str | None
    issued: int
    redeemed: int
    released: int
    expired: int
    voided: int
    redemption_rate: Decimal | None
    discount_fen: int
    orders: int
    order_sales_fen: int

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values (money as yuan strings)."""
        return {
            "template": self.template,
            "name": self.name,
            "issued": self.issued,
            "redeemed": self.redeemed,
            "released": self.released,
            "expired": self.expired,
            "voided": self.voided,
            "redemption_rate": _text(self.redemption_rate),
            "discount": fen_to_yuan(self.discount_fen),
            "orders": self.orders,
            "order_sales": fen_to_yuan(self.order_sales_fen),
        }


@dataclass(frozen=True)
class CouponReport:
    """Coupon issuance and redemption of business dates ``start``..``end``, per template and in total."""

    start: date
    end: date
    time_zone: str
    templates: tuple[CouponFigures, ...]
    total: CouponFigures

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "time_zone": self.time_zone,
            "templates": [figures.as_dict() for figures in self.templates],
            "total": self.total.as_dict(),
        }


def _count_by_template(session: Session, column: ColumnElement[datetime], period: Period) -> dict[str, int]:
    return {
        template: int(count)
        for template, count in session.execute(
            select(_coupons.c.template_code, func.count())
            .where(_within(column, period.begins_at, period.ends_at))
            .group_by(_coupons.c.template_code)
        )
    }


def coupon_report(session: Session, *, start: date, end: date, time_zone: ZoneInfo | str) -> CouponReport:
    """Return coupon issuance and redemption of business dates ``start``..``end``, per template and in total.

    Every figure is defined on ``CouponFigures``; templates are listed in the order of the programme
    in force at the period's end, then any others alphabetically; only templates with activity.
    """
    tz = _zone(time_zone)
    period = period_of(start, end, tz)
    issued = _count_by_template(session, _coupons.c.issued_at, period)
    expired = _count_by_template(session, _coupons.c.expired_at, period)
    voided = _count_by_template(session, _coupons.c.voided_at, period)
    uses = _redemptions.join(_coupons, _coupons.c.id == _redemptions.c.coupon_id)
    standing = and_(
        _within(_redemptions.c.redeemed_at, period.begins_at, period.ends_at),
        or_(_redemptions.c.released_at.is_(None), _redemptions.c.released_at >= _at(period.ends_at)),
    )
    redeemed: dict[str, tuple[int, int]] = {
        template: (int(count), int(discount or 0))
        for template, count, discount in session.execute(
            select(_coupons.c.template_code, func.count(), func.sum(_redemptions.c.discount_fen))
            .select_from(uses)
            .where(standing)
            .group_by(_coupons.c.template_code)
        )
    }
    released = {
        template: int(count)
        for template, count in session.execute(
            select(_coupons.c.template_code, func.count())
            .select_from(uses)
            .where(_within(_redemptions.c.released_at, period.begins_at, period.ends_at))
            .group_by(_coupons.c.template_code)
        )
    }
    pairs = (
        select(_coupons.c.template_code.label("template"), _orders.c.id.label("order_id"))
        .select_from(
            uses.outerjoin(_settlements, _settlements.c.id == _redemptions.c.settlement_id).join(
                _orders,
                and_(
                    _orders.c.source == func.coalesce(_settlements.c.source, _redemptions.c.channel),
                    _orders.c.external_id
                    == func.coalesce(_settlements.c.external_order_id, _redemptions.c.order_ref),
                ),
            )
        )
        .where(standing)
        .distinct()
        .subquery()
    )
    refunded = (
        select(_refunds.c.order_id.label("order_id"), func.sum(_refunds.c.amount_fen).label("amount"))
        .where(_refunds.c.refunded_at < _at(period.ends_at))
        .group_by(_refunds.c.order_id)
        .subquery()
    )
    net = _orders.c.amount_fen - func.coalesce(refunded.c.amount, 0)
    sales = {
        template: (int(count), int(total or 0))
        for template, count, total in session.execute(
            select(pairs.c.template, func.count(), func.sum(net))
            .select_from(
                pairs.join(_orders, _orders.c.id == pairs.c.order_id).outerjoin(
                    refunded, refunded.c.order_id == pairs.c.order_id
                )
            )
            .group_by(pairs.c.template)
        )
    }
    distinct_orders = select(pairs.c.order_id).distinct().subquery()
    order_count, order_total = session.execute(
        select(func.count(), func.coalesce(func.sum(net), 0)).select_from(
            distinct_orders.join(_orders, _orders.c.id == distinct_orders.c.order_id).outerjoin(
                refunded, refunded.c.order_id == distinct_orders.c.order_id
            )
        )
    ).one()

    programme = programme_in_force(session, period.ends_at)
    known = [template.code for template in programme.programme.coupon_templates] if programme else []
    names = (
        {template.code: template.name for template in programme.programme.coupon_templates}
        if programme
        else {}
    )
    active = set(issued) | set(expired) | set(voided) | set(redeemed) | set(released)
    ordered = [code for code in known if code in active] + sorted(active - set(known))
    rows = tuple(
        CouponFigures(
            template=code,
            name=names.get(code),
            issued=issued.get(code, 0),
            redeemed=redeemed.get(code, (0, 0))[0],
            released=released.get(code, 0),
            expired=expired.get(code, 0),
            voided=voided.get(code, 0),
            redemption_rate=ratio(redeemed.get(code, (0, 0))[0], issued.get(code, 0)),
            discount_fen=redeemed.get(code, (0, 0))[1],
            orders=sales.get(code, (0, 0))[0],
            order_sales_fen=sales.get(code, (0, 0))[1],
        )
        for code in ordered
    )
    total_issued = sum(issued.values())
    total_redeemed = sum(count for count, _ in redeemed.values())
    total = CouponFigures(
        template="*",
        name=None,
        issued=total_issued,
        redeemed=total_redeemed,
        released=sum(released.values()),
        expired=sum(expired.values()),
        voided=sum(voided.values()),
        redemption_rate=ratio(total_redeemed, total_issued),
        discount_fen=sum(discount for _, discount in redeemed.values()),
        orders=int(order_count),
        order_sales_fen=int(order_total or 0),
    )
    return CouponReport(period.start, period.end, tz.key, rows, total)
