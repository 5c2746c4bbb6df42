"""What the offer services read about a member, and the locks they take: one place for every query.

- **Persons**: a merge re-points the rows OneID knows about but not the offer tables, so a member's
  coupons, plan terms and redemptions are those of their live person *and* of every person merged
  into it (``persons.merged_into_id``). Undoing a merge hands them back with nothing to move.
- **The ledger** (points, tier) belongs to ``loyalty.points``, ``loyalty.ledger`` and
  ``loyalty.growth``; this module only reads it and calls its use cases.
- **Locks**: coupon, stock and term rows are taken ``FOR UPDATE`` in id order (PostgreSQL; SQLite's
  writer lock already serialises), always before the ledger's account lock, so the offer services
  and the ledger never wait on each other in opposite orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from memberops.identity.repository import chunks
from memberops.kit.errors import NotFound, ValidationFailed
from memberops.loyalty import lots as lot_rules
from memberops.loyalty.coupons import CouponStatus, HeldCoupon
from memberops.loyalty.growth import known_tier, lowest_tier
from memberops.loyalty.ledger import LedgerWriter, replayed
from memberops.loyalty.offers import CouponTemplate
from memberops.loyalty.plans import PlanStatus, PlanTerm, plan_status
from memberops.loyalty.programme import Programme
from memberops.loyalty.versions import ActiveProgramme, programme_version, require_programme
from memberops.models import (
    Coupon,
    MemberTier,
    PaidPlanTerm,
    Person,
    PointsAccount,
    PointsEntry,
    PointsLot,
    RewardStock,
    table_of,
)

#: Longest idempotency key a caller may give: the services derive longer ones from it (a coupon's
#: ``{key}|{person}|{template}|{n}``), which must still fit the 200-character columns.
KEY_LENGTH = 100
#: Longest key the coupon service accepts from the other services (``reward:{key}`` and the like).
DERIVED_KEY_LENGTH = 112
REASON_LENGTH = 200


def check_key(key: str, *, limit: int = KEY_LENGTH) -> str:
    """Return ``key`` if it is a usable idempotency key, else raise ``ValidationFailed``."""
    if not key or len(key) > limit or not key.isprintable() or "|" in key:
        raise ValidationFailed(f"an idempotency key must be 1–{limit} printable characters, without |")
    return key


def check_reason(reason: str) -> str:
    """Return the trimmed reason, or raise when it is empty or too long."""
    text = reason.strip()
    if not text or len(text) > REASON_LENGTH:
        raise ValidationFailed(f"a reason must be 1–{REASON_LENGTH} characters")
    return text


# --- Persons -------------------------------------------------------------------------------------


def live_person(session: Session, person_id: int) -> int:
    """Return the live person ``person_id`` stands for (following a merge), or raise ``NotFound``."""
    row = session.execute(select(Person.id, Person.merged_into_id).where(Person.id == person_id)).first()
    if row is None:
        raise NotFound(f"person {person_id} does not exist")
    return int(row.merged_into_id or row.id)


def live_persons(session: Session, person_ids: Iterable[int]) -> tuple[dict[int, int], list[int]]:
    """Return ``id -> live id`` for the known ids among ``person_ids``, and the unknown ones."""
    wanted = sorted(set(person_ids))
    found: dict[int, int] = {}
    for part in chunks(wanted):
        for person_id, merged_into in session.execute(
            select(Person.id, Person.merged_into_id).where(Person.id.in_(part))
        ):
            found[int(person_id)] = int(merged_into or person_id)
    return found, [person_id for person_id in wanted if person_id not in found]


def person_ids_of(session: Session, person_id: int) -> list[int]:
    """Return the live person and every person merged into it: whose holdings the member has."""
    absorbed = session.scalars(select(Person.id).where(Person.merged_into_id == person_id)).all()
    return sorted({person_id, *(int(other) for other in absorbed)})


# --- The programme -------------------------------------------------------------------------------


def active(session: Session) -> ActiveProgramme:
    """Return the active programme version (``NoProgramme`` before one is applied)."""
    return require_programme(session)


def programme_of(session: Session, version_id: int) -> Programme:
    """Return the programme of a stored version (the one a coupon or term was made under)."""
    return programme_version(session, version_id).programme


def template_of(session: Session, coupon: Coupon) -> CouponTemplate:
    """Return the template a coupon was issued from, as its programme version defined it."""
    return programme_of(session, coupon.programme_version_id).coupon_template(coupon.template_code)


def held_coupon(session: Session, coupon: Coupon) -> HeldCoupon:
    """Return the rules' view of a stored coupon."""
    status: CouponStatus = coupon.status  # type: ignore[assignment]
    return HeldCoupon(coupon.id, template_of(session, coupon), status, coupon.valid_from, coupon.valid_until)


# --- The ledger ----------------------------------------------------------------------------------


def member_tier(session: Session, person_id: int, programme: Programme) -> str:
    """Return the member's tier under ``programme`` (the lowest for someone with no tier row)."""
    row = session.get(MemberTier, person_id)
    return known_tier(programme, row.tier) if row is not None else lowest_tier(programme)


def spendable_points(session: Session, person_id: int, now: datetime) -> int:
    """Return the points the member can spend at ``now`` (balance less expired lots not yet swept)."""
    balance = session.scalar(select(PointsAccount.balance).where(PointsAccount.person_id == person_id))
    expired = session.scalar(
        select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
            PointsLot.person_id == person_id, PointsLot.remaining > 0, PointsLot.expires_at <= now
        )
    )
    return int(balance or 0) - int(expired or 0)


def gift_points(
    session: Session,
    person_id: int,
    points: int,
    *,
    key: str,
    reason: str,
    source: str,
    actor: str,
    programme: ActiveProgramme,
    now: datetime,
    time_zone: ZoneInfo,
    source_ref: str | None = None,
) -> PointsEntry:
    """Credit gift points (birthday, plan welcome) as a ``gift`` lot expiring like earned points.

    The ledger's own writer does it, as for upgrade gifts; a replay of ``key`` returns the entry.
    """
    writer = LedgerWriter(session, now)
    account = writer.lock([person_id])[person_id]
    previous = replayed(session, key, person_id=person_id, kind="gift", delta=points)
    if previous is not None:
        return previous
    writer.load_lots([person_id])
    index, _ = writer.credit(
        account,
        points,
        kind="gift",
        key=key,
        reason=reason,
        source=source,
        source_ref=source_ref,
        actor=actor,
        programme_version_id=programme.version_id,
        earned_at=now,
        expires_at=lot_rules.expiry_of(now, programme.programme.expiry, time_zone),
        topic="points.earned",
        payload={"points": points, "gift": True, "source": source},
    )
    return session.get_one(PointsEntry, writer.flush()[index])


# --- Coupons -------------------------------------------------------------------------------------


def coupons_for_update(session: Session, coupon_ids: Sequence[int]) -> list[Coupon]:
    """Lock and return the coupons ``coupon_ids`` in id order (missing ones are left out)."""
    if not coupon_ids:
        return []
    return list(
        session.scalars(
            select(Coupon)
            .where(Coupon.id.in_(sorted(set(coupon_ids))))
            .order_by(Coupon.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def coupon_by_code(session: Session, code: str, *, lock: bool = False) -> Coupon | None:
    """Return the coupon with this exact stored code (optionally locked)."""
    query = select(Coupon).where(Coupon.code == code)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def usable_coupons_of(session: Session, person_ids: Sequence[int], now: datetime) -> list[Coupon]:
    """Return the member's issued coupons whose window has not ended, by id."""
    return list(
        session.scalars(
            select(Coupon)
            .where(Coupon.person_id.in_(person_ids), Coupon.status == "issued", Coupon.valid_until > now)
            .order_by(Coupon.id)
        )
    )


def coupons_by_key(session: Session, keys: Sequence[str]) -> dict[str, Coupon]:
    """Return the coupons stored under these idempotency keys."""
    found: dict[str, Coupon] = {}
    for part in chunks(sorted(set(keys))):
        for coupon in session.scalars(select(Coupon).where(Coupon.idempotency_key.in_(part))):
            found[coupon.idempotency_key] = coupon
    return found


def codes_taken(session: Session, codes: Sequence[str]) -> set[str]:
    """Return which of ``codes`` are already stored."""
    taken: set[str] = set()
    for part in chunks(sorted(set(codes))):
        taken.update(session.scalars(select(Coupon.code).where(Coupon.code.in_(part))))
    return taken


# --- Stock and plan terms ------------------------------------------------------------------------


def stock_for_update(session: Session, reward_code: str, now: datetime) -> RewardStock:
    """Lock and return a reward's stock row, creating it at zero redeemed the first time."""
    table = table_of(RewardStock)
    insert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(table)
        .values(reward_code=reward_code, redeemed=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=[table.c.reward_code])
    )
    return session.scalars(
        select(RewardStock)
        .where(RewardStock.reward_code == reward_code)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def add_to_stock(session: Session, stock: RewardStock, change: int, now: datetime) -> None:
    """Count ``change`` more (or, negative, fewer) live redemptions on a locked stock row."""
    session.execute(
        update(RewardStock)
        .where(RewardStock.reward_code == stock.reward_code)
        .values(redeemed=RewardStock.redeemed + change, updated_at=now)
    )
    session.expire(stock)


def terms_for_update(session: Session, person_ids: Sequence[int]) -> list[PaidPlanTerm]:
    """Lock and return every plan term of the member, in id order."""
    return list(
        session.scalars(
            select(PaidPlanTerm)
            .where(PaidPlanTerm.person_id.in_(person_ids))
            .order_by(PaidPlanTerm.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def terms_of(session: Session, person_ids: Sequence[int]) -> list[PaidPlanTerm]:
    """Return every plan term of the member, in id order (no lock)."""
    return list(
        session.scalars(
            select(PaidPlanTerm).where(PaidPlanTerm.person_id.in_(person_ids)).order_by(PaidPlanTerm.id)
        )
    )


def as_terms(rows: Iterable[PaidPlanTerm]) -> list[PlanTerm]:
    """Return the rules' view of stored terms."""
    return [
        PlanTerm(
            row.id,
            row.plan_code,
            row.starts_at,
            row.ends_at,
            row.price_fen,
            row.paid_at,
            row.status == "refunded",
        )
        for row in rows
    ]


def member_plan_status(
    session: Session, person_id: int, programme: Programme, at: datetime, time_zone: ZoneInfo
) -> PlanStatus:
    """Return the member's paid-plan status at ``at``."""
    return plan_status(
        programme, as_terms(terms_of(session, person_ids_of(session, person_id))), at, time_zone
    )
