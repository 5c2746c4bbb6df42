"""Coupon use cases: issue (one, bulk, pack, gift), import external codes, redeem, void, expire.

Every write is idempotent on its key and never commits (the caller's unit of work does). Keys of
issued coupons are derived from the caller's key, one per coupon:
``{key}|{person}|{template}|{n}``, so replaying an issue (or resuming a bulk issue that stopped
half-way) issues only what is missing, and a key reused for another template is a ``Conflict``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memberops.events import DomainEvent, emit_many
from memberops.identity.identifiers import InvalidIdentifier
from memberops.identity.repository import chunks
from memberops.ingest.records import RecordRejected, parse_event
from memberops.ingest.service import IngestService
from memberops.kit.clock import utc_now
from memberops.kit.db import insert_with_ids, lock_keys
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.loyalty import holdings
from memberops.loyalty.coupons import (
    code_rejection_reason,
    external_code_rejection_reason,
    generate_code,
    issuance_rejection_reason,
    normalize_code,
    place_rejection_reason,
    usability_rejection_reason,
    validity_window,
)
from memberops.loyalty.growth import PlannedGift
from memberops.loyalty.offers import CouponTemplate, Gift
from memberops.loyalty.versions import ActiveProgramme
from memberops.models import Coupon, CouponRedemption, table_of

#: Sources of coupons (what issued them).
SOURCES = ("manual", "bulk", "pack", "reward", "birthday", "plan", "upgrade", "import")
#: Most coupons one call issues (a bigger segment is issued in several calls with the same key).
MAX_ISSUE = 200_000
_CODE_ATTEMPTS = 5


class CouponIdempotencyConflict(Conflict):
    """An issue key was used before for another template, person or count."""

    code = "idempotency_conflict"


@dataclass(frozen=True)
class IssueRequest:
    """One template, ``count`` coupons of it per person."""

    template_code: str
    count: int = 1


@dataclass
class IssueOutcome:
    """What an issue did: coupons made now, coupons a replay found, persons that do not exist."""

    created: list[Coupon] = field(default_factory=list)
    replayed: list[Coupon] = field(default_factory=list)
    unknown_persons: list[int] = field(default_factory=list)

    @property
    def coupons(self) -> list[Coupon]:
        """Every coupon the request stands for, by id."""
        return sorted([*self.created, *self.replayed], key=lambda coupon: coupon.id)


def issue_coupons(
    session: Session,
    person_ids: Sequence[int],
    requests: Sequence[IssueRequest],
    *,
    key: str,
    reason: str,
    actor: str,
    time_zone: ZoneInfo,
    source: str = "manual",
    pack_code: str | None = None,
    now: datetime | None = None,
    programme: ActiveProgramme | None = None,
    randbelow: Callable[[int], int] | None = None,
    emit_events: bool = True,
) -> IssueOutcome:
    """Issue ``requests`` to each person; unknown persons are reported, merged ones get it on the survivor.

    Checks everything before writing: templates exist, windows are open, counts are sane. One lock
    on the key makes concurrent replays of one request issue once.
    """
    holdings.check_key(key, limit=holdings.DERIVED_KEY_LENGTH)
    reason = holdings.check_reason(reason)
    if source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}")
    now = now or utc_now()
    active = programme or holdings.active(session)
    templates: list[tuple[CouponTemplate, int]] = []
    for request in requests:
        template = active.programme.coupon_template(request.template_code)
        if not 1 <= request.count <= 100:
            raise ValidationFailed(f"issue 1 to 100 coupons of a template per person, not {request.count}")
        refused = issuance_rejection_reason(template, now, time_zone)
        if refused is not None:
            raise Conflict(refused)
        templates.append((template, request.count))
    live, unknown = holdings.live_persons(session, person_ids)
    persons = sorted(set(live.values()))
    planned = len(persons) * sum(count for _, count in templates)
    if planned > MAX_ISSUE:
        raise ValidationFailed(f"one call issues at most {MAX_ISSUE} coupons, not {planned}: split it")
    lock_keys(session, [f"coupon:issue:{key}"])

    wanted: list[tuple[str, int, CouponTemplate]] = [
        (f"{key}|{person_id}|{template.code}|{n}", person_id, template)
        for person_id in persons
        for template, count in templates
        for n in range(1, count + 1)
    ]
    other = session.scalars(
        select(Coupon)
        .where(
            Coupon.issue_key == key,
            Coupon.template_code.not_in([template.code for template, _ in templates]),
        )
        .limit(1)
    ).first()
    if other is not None:
        raise CouponIdempotencyConflict(
            f"idempotency key {key!r} was used to issue something else (coupon {other.id})",
            coupon_id=other.id,
        )
    existing = holdings.coupons_by_key(session, [coupon_key for coupon_key, _, _ in wanted])
    outcome = IssueOutcome(unknown_persons=unknown)
    fresh: list[tuple[str, int, CouponTemplate]] = []
    for coupon_key, person_id, template in wanted:
        stored = existing.get(coupon_key)
        if stored is None:
            fresh.append((coupon_key, person_id, template))
        elif stored.template_code != template.code or stored.person_id != person_id:
            raise CouponIdempotencyConflict(
                f"idempotency key {key!r} was used to issue something else (coupon {stored.id})",
                coupon_id=stored.id,
            )
        else:
            outcome.replayed.append(stored)
    if fresh:
        outcome.created = _insert(
            session,
            [
                _coupon_row(
                    coupon_key,
                    key,
                    person_id,
                    template,
                    active,
                    now=now,
                    time_zone=time_zone,
                    source=source,
                    pack_code=pack_code,
                    reason=reason,
                    actor=actor,
                )
                for coupon_key, person_id, template in fresh
            ],
            randbelow=randbelow,
            now=now,
            emit_events=emit_events,
        )
    return outcome


def issue_pack(
    session: Session,
    person_ids: Sequence[int],
    pack_code: str,
    *,
    key: str,
    reason: str,
    actor: str,
    time_zone: ZoneInfo,
    source: str = "pack",
    now: datetime | None = None,
    programme: ActiveProgramme | None = None,
    emit_events: bool = True,
) -> IssueOutcome:
    """Issue every coupon of a pack (template → count) to each person."""
    active = programme or holdings.active(session)
    pack = active.programme.coupon_pack(pack_code)
    requests = [IssueRequest(code, count) for code, count in sorted(pack.coupons.items())]
    return issue_coupons(
        session,
        person_ids,
        requests,
        key=key,
        reason=reason,
        actor=actor,
        time_zone=time_zone,
        source=source,
        pack_code=pack_code,
        now=now,
        programme=active,
        emit_events=emit_events,
    )


def issue_gift(
    session: Session,
    person_id: int,
    gift: Gift,
    *,
    key: str,
    reason: str,
    actor: str,
    source: str,
    time_zone: ZoneInfo,
    now: datetime,
    programme: ActiveProgramme,
    emit_events: bool = True,
) -> list[Coupon]:
    """Issue the coupons and packs of a gift (its points are the ledger's business); return the coupons."""
    coupons: list[Coupon] = []
    counts: dict[str, int] = {}
    for code in gift.coupons:
        counts[code] = counts.get(code, 0) + 1
    if counts:
        requests = [IssueRequest(code, count) for code, count in sorted(counts.items())]
        coupons += issue_coupons(
            session,
            [person_id],
            requests,
            key=f"{key}:coupons",
            reason=reason,
            actor=actor,
            time_zone=time_zone,
            source=source,
            now=now,
            programme=programme,
            emit_events=emit_events,
        ).coupons
    for pack_code in dict.fromkeys(gift.packs):
        coupons += issue_pack(
            session,
            [person_id],
            pack_code,
            key=f"{key}:pack:{pack_code}",
            reason=reason,
            actor=actor,
            time_zone=time_zone,
            source=source,
            now=now,
            programme=programme,
            emit_events=emit_events,
        ).coupons
    return coupons


def issue_upgrade_gifts(
    session: Session,
    gifts: Sequence[PlannedGift],
    *,
    actor: str,
    time_zone: ZoneInfo,
    programme: ActiveProgramme,
    emit_events: bool = True,
) -> list[Coupon]:
    """Issue the coupons and packs of the upgrade gifts ``upgrade_now`` planned; return the coupons.

    Each gift is issued as of its upgrade, under the key of the order (or task) that caused it,
    so earning the same order again issues nothing. A template whose issuance window is over by
    then is left out (its campaign has ended): the upgrade and its points stand, since a closed
    coupon campaign must never stop an order from earning.
    """
    active = programme.programme
    coupons: list[Coupon] = []
    for planned in gifts:

        def open_at(code: str, at: datetime = planned.at) -> bool:
            return issuance_rejection_reason(active.coupon_template(code), at, time_zone) is None

        kept = planned.gift.model_copy(
            update={
                "points": 0,
                "coupons": tuple(code for code in planned.gift.coupons if open_at(code)),
                "packs": tuple(
                    code
                    for code in planned.gift.packs
                    if all(open_at(template) for template in active.coupon_pack(code).coupons)
                ),
            }
        )
        if not kept.coupons and not kept.packs:
            continue
        coupons += issue_gift(
            session,
            planned.person_id,
            kept,
            key=planned.key,
            reason=f"upgrade gift of tier {planned.tier}",
            actor=actor,
            source="upgrade",
            time_zone=time_zone,
            now=planned.at,
            programme=programme,
            emit_events=emit_events,
        )
    return coupons


def _coupon_row(
    coupon_key: str,
    issue_key: str,
    person_id: int,
    template: CouponTemplate,
    active: ActiveProgramme,
    *,
    now: datetime,
    time_zone: ZoneInfo,
    source: str,
    pack_code: str | None,
    reason: str,
    actor: str,
    code: str | None = None,
    valid_until: datetime | None = None,
) -> dict[str, Any]:
    valid_from, template_until = validity_window(template, now, time_zone)
    return {
        "code": code,
        "external": code is not None,
        "template_code": template.code,
        "programme_version_id": active.version_id,
        "person_id": person_id,
        "status": "issued",
        "valid_from": valid_from,
        "valid_until": valid_until or template_until,
        "source": source,
        "pack_code": pack_code,
        "reason": reason,
        "issued_by": actor,
        "issued_at": now,
        "idempotency_key": coupon_key,
        "issue_key": issue_key,
        "redeemed_at": None,
        "expired_at": None,
        "voided_at": None,
        "void_reason": None,
        "expiry_notified_at": None,
    }


def _insert(
    session: Session,
    rows: list[dict[str, Any]],
    *,
    now: datetime,
    randbelow: Callable[[int], int] | None,
    emit_events: bool = True,
) -> list[Coupon]:
    """Give generated codes to the rows that need one (drawing again on a clash), insert, emit."""
    draw = randbelow or None
    needing = [row for row in rows if row["code"] is None]
    for _ in range(_CODE_ATTEMPTS):
        for row in needing:
            row["code"] = generate_code(draw) if draw else generate_code()
        codes = [row["code"] for row in needing]
        clashes = holdings.codes_taken(session, codes)
        seen: set[str] = set()
        again = []
        for row in needing:
            if row["code"] in clashes or row["code"] in seen:
                again.append(row)
            seen.add(row["code"])
        needing = again
        if not needing:
            break
    else:
        raise Conflict("could not draw unique coupon codes; try again")
    ids = insert_with_ids(session, table_of(Coupon), rows)
    created: list[Coupon] = []
    for part in chunks(ids):
        created += session.scalars(select(Coupon).where(Coupon.id.in_(part)).order_by(Coupon.id))
    if not emit_events:  # history replayed: nobody is told today of a coupon issued years ago
        return created
    emit_many(
        session,
        [
            DomainEvent(
                topic="coupon.issued",
                payload={
                    "coupon_id": coupon.id,
                    "code": coupon.code,
                    "template": coupon.template_code,
                    "source": coupon.source,
                    "valid_from": coupon.valid_from.isoformat(),
                    "valid_until": coupon.valid_until.isoformat(),
                    "external": coupon.external,
                },
                key=f"coupon:issued:{coupon.id}",
                occurred_at=now,
                person_id=coupon.person_id,
            )
            for coupon in created
        ],
        now=now,
    )
    return created


# --- Import of external codes --------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRejection:
    """A row of an import that was not taken: its line number in the file and why."""

    line: int
    reason: str


@dataclass
class ImportOutcome:
    """What an import of external codes did."""

    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: list[ImportRejection] = field(default_factory=list)
    coupon_ids: list[int] = field(default_factory=list)


#: Columns of an external-code CSV: the voucher code, the template it stands for, and the buyer.
IMPORT_COLUMNS = ("code", "template", "phone", "buyer_id")


def import_external_codes(
    session: Session,
    ingest: IngestService,
    text: str,
    *,
    channel: str,
    actor: str,
    time_zone: ZoneInfo,
    now: datetime | None = None,
) -> ImportOutcome:
    """Import marketplace vouchers from CSV (``code,template,phone,buyer_id``) as coupons.

    Each buyer is resolved through OneID by phone and/or the channel's buyer id, and registered
    as a member in ``channel`` (a ``register`` event, so a known member keeps their first spell);
    the code is stored as given, marked external. A code already imported for the same template
    and buyer is a duplicate; each bad row is reported with its line number and the rest go on.
    """
    now = now or utc_now()
    active = holdings.active(session)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [name for name in ("code", "template") if name not in (reader.fieldnames or [])]
    if missing:
        raise ValidationFailed(f"the file needs the columns {', '.join(IMPORT_COLUMNS)}; missing {missing}")
    outcome = ImportOutcome()
    parsed: list[tuple[int, str, CouponTemplate, Any]] = []
    seen: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        outcome.rows += 1
        try:
            code = (raw.get("code") or "").strip()
            refused = external_code_rejection_reason(code)
            if refused is not None:
                raise RecordRejected(refused)
            if code in seen:
                raise RecordRejected(f"code {code!r} appears twice in the file")
            try:
                template = active.programme.coupon_template((raw.get("template") or "").strip())
            except NotFound as error:
                raise RecordRejected(error.message) from None
            phone = (raw.get("phone") or "").strip()
            buyer = (raw.get("buyer_id") or "").strip()
            if not phone and not buyer:
                raise RecordRejected("a row needs the buyer's phone or buyer_id")
            event = parse_event(
                {
                    "type": "register",
                    "occurred_at": now.isoformat(),
                    "field": channel,
                    "external_id": f"v:{code}"[:64],
                    "phone": phone or None,
                    "platform_user_id": buyer or None,
                }
            )
            refused = issuance_rejection_reason(template, now, time_zone)
            if refused is not None:
                raise RecordRejected(refused)
        except (RecordRejected, InvalidIdentifier) as error:
            outcome.rejected.append(ImportRejection(line, error.message))
            continue
        seen.add(code)
        parsed.append((line, code, template, event))
    if not parsed:
        return outcome

    # One lock per channel: two imports of one file at once cannot both store a code.
    lock_keys(session, [f"coupon:import:{channel}"])
    existing_by_code = {code: holdings.coupon_by_code(session, code) for _, code, _, _ in parsed}
    clashing = [
        (line, code, found.id)
        for line, code, template, _ in parsed
        if (found := existing_by_code[code]) is not None and found.template_code != template.code
    ]
    for line, code, coupon_id in clashing:
        outcome.rejected.append(ImportRejection(line, f"code {code!r} already belongs to coupon {coupon_id}"))
    parsed = [row for row in parsed if row[0] not in {line for line, _, _ in clashing}]
    events = ingest.ingest_events(session, [event for *_, event in parsed], actor=actor) if parsed else []
    rows: list[dict[str, Any]] = []
    for (line, code, template, _), stored in zip(parsed, events, strict=True):
        if stored.rejection is not None or stored.person_id is None:
            outcome.rejected.append(
                ImportRejection(line, stored.rejection or "the buyer could not be resolved")
            )
            continue
        person_id = holdings.live_person(session, stored.person_id)
        found = existing_by_code[code]
        if found is not None:
            if found.template_code == template.code and found.person_id in holdings.person_ids_of(
                session, person_id
            ):
                outcome.duplicates += 1
                outcome.coupon_ids.append(found.id)
            else:
                outcome.rejected.append(
                    ImportRejection(line, f"code {code!r} already belongs to coupon {found.id}")
                )
            continue
        rows.append(
            _coupon_row(
                f"import:{channel}:{code}",
                f"import:{channel}",
                person_id,
                template,
                active,
                now=now,
                time_zone=time_zone,
                source="import",
                pack_code=None,
                reason=f"external voucher imported from {channel}",
                actor=actor,
                code=code,
            )
        )
    if rows:
        created = _insert(session, rows, now=now, randbelow=None)
        outcome.imported = len(created)
        outcome.coupon_ids += [coupon.id for coupon in created]
    outcome.coupon_ids.sort()
    outcome.rejected.sort(key=lambda rejection: rejection.line)
    return outcome


# --- Redeem, void, expire ------------------------------------------------------------------------


def find_coupon(session: Session, reference: str, *, lock: bool = False) -> Coupon:
    """Return the coupon named by ``#42`` (an id), one of our codes typed any way, or an external code.

    A bare number is tried as a code first (marketplace vouchers are often all digits), then as an id.
    """
    text = reference.strip()
    number = text.removeprefix("#")
    by_id = number.isascii() and number.isdigit() and len(number) < 19
    if not text.startswith("#"):
        candidates = [text]
        if code_rejection_reason(text) is None:
            candidates.insert(0, normalize_code(text))
        for code in candidates:
            coupon = holdings.coupon_by_code(session, code, lock=lock)
            if coupon is not None:
                return coupon
    if by_id:
        found = (
            holdings.coupons_for_update(session, [int(number)])
            if lock
            else [session.get(Coupon, int(number))]
        )
        if found and found[0] is not None:
            return found[0]
    raise NotFound(f"no coupon is known by {reference!r}")


@dataclass(frozen=True)
class Redeemed:
    """A coupon use: the coupon, the redemption row and whether this call made it."""

    coupon: Coupon
    redemption: CouponRedemption
    created: bool


def redeem_coupon(
    session: Session,
    reference: str,
    *,
    key: str,
    actor: str,
    person_id: int | None = None,
    channel: str | None = None,
    store: str | None = None,
    order_ref: str | None = None,
    discount_fen: int | None = None,
    now: datetime | None = None,
) -> Redeemed:
    """Use a coupon outside a checkout (a voucher handed over at the till), once.

    The coupon is locked first; it must be issued, inside its window, usable in ``channel`` and
    ``store`` and (when ``person_id`` is given) held by that member. ``discount_fen`` records what
    it took off (default: the template's amount, 0 for a percentage coupon).
    """
    holdings.check_key(key)
    now = now or utc_now()
    lock_keys(session, [f"coupon:redeem:{key}"])
    previous = session.scalars(
        select(CouponRedemption).where(CouponRedemption.idempotency_key == key)
    ).first()
    coupon = find_coupon(session, reference, lock=True)
    if previous is not None:
        if previous.coupon_id != coupon.id:
            raise CouponIdempotencyConflict(
                f"idempotency key {key!r} was used to redeem coupon {previous.coupon_id}",
                coupon_id=previous.coupon_id,
            )
        return Redeemed(coupon, previous, False)
    if person_id is not None and coupon.person_id not in holdings.person_ids_of(
        session, holdings.live_person(session, person_id)
    ):
        raise Conflict(f"coupon {coupon.id} is not held by person {person_id}", coupon_id=coupon.id)
    held = holdings.held_coupon(session, coupon)
    refused = usability_rejection_reason(held, now)
    if refused is None and channel is not None:
        refused = place_rejection_reason(held.template.scope, channel=channel, store=store)
    if refused is not None:
        raise Conflict(f"coupon {coupon.id} cannot be redeemed: {refused}", coupon_id=coupon.id)
    if discount_fen is None:
        discount_fen = held.template.amount_fen or 0
    if discount_fen < 0:
        raise ValidationFailed("a discount is zero or more")
    redemption = CouponRedemption(
        coupon_id=coupon.id,
        person_id=coupon.person_id,
        settlement_id=None,
        discount_fen=discount_fen,
        channel=channel,
        store=store,
        order_ref=order_ref,
        redeemed_at=now,
        actor=actor,
        idempotency_key=key,
        released_at=None,
        release_reason=None,
    )
    session.add(redemption)
    mark_redeemed(session, [coupon], now)
    session.flush()
    emit_redeemed(session, [(coupon, redemption)], now)
    return Redeemed(coupon, redemption, True)


def mark_redeemed(session: Session, coupons: Sequence[Coupon], now: datetime) -> None:
    """Set locked coupons to ``redeemed``."""
    for coupon in coupons:
        coupon.status = "redeemed"
        coupon.redeemed_at = now


def emit_redeemed(session: Session, pairs: Sequence[tuple[Coupon, CouponRedemption]], now: datetime) -> None:
    """Emit ``coupon.redeemed`` for stored redemptions."""
    emit_many(
        session,
        [
            DomainEvent(
                topic="coupon.redeemed",
                payload={
                    "coupon_id": coupon.id,
                    "template": coupon.template_code,
                    "redemption_id": redemption.id,
                    "settlement_id": redemption.settlement_id,
                    "discount_fen": redemption.discount_fen,
                    "channel": redemption.channel,
                    "order_ref": redemption.order_ref,
                },
                key=f"coupon:redeemed:{redemption.id}",
                occurred_at=now,
                person_id=coupon.person_id,
            )
            for coupon, redemption in pairs
        ],
        now=now,
    )


def release_coupons(
    session: Session, pairs: Sequence[tuple[Coupon, CouponRedemption]], *, reason: str, now: datetime
) -> None:
    """Undo uses of locked coupons: each is usable again, or ``expired`` if its window is over."""
    released: list[tuple[Coupon, CouponRedemption]] = []
    for coupon, redemption in pairs:
        if redemption.released_at is not None:
            continue
        redemption.released_at = now
        redemption.release_reason = reason[: holdings.REASON_LENGTH]
        released.append((coupon, redemption))
        if coupon.status == "redeemed":
            coupon.redeemed_at = None
            if coupon.valid_until <= now:
                coupon.status, coupon.expired_at = "expired", now
            else:
                coupon.status = "issued"
    emit_many(
        session,
        [
            DomainEvent(
                topic="coupon.released",
                payload={"coupon_id": coupon.id, "status": coupon.status, "reason": reason},
                key=f"coupon:released:{redemption.id}",
                occurred_at=now,
                person_id=coupon.person_id,
            )
            for coupon, redemption in released
        ],
        now=now,
    )


def void_coupon(
    session: Session, reference: str, *, reason: str, actor: str, now: datetime | None = None
) -> Coupon:
    """Withdraw an unused coupon; voiding a void coupon again changes nothing."""
    reason = holdings.check_reason(reason)
    now = now or utc_now()
    coupon = find_coupon(session, reference, lock=True)
    if coupon.status == "void":
        return coupon
    if coupon.status == "redeemed":
        raise Conflict(f"coupon {coupon.id} has been redeemed; it cannot be voided", coupon_id=coupon.id)
    void_locked(session, [coupon], reason=reason, actor=actor, now=now)
    return coupon


def void_locked(
    session: Session, coupons: Sequence[Coupon], *, reason: str, actor: str, now: datetime
) -> None:
    """Void locked coupons that are not redeemed (``issued`` or ``expired``)."""
    voided = [coupon for coupon in coupons if coupon.status in ("issued", "expired")]
    for coupon in voided:
        coupon.status, coupon.voided_at, coupon.void_reason = "void", now, reason
    emit_many(
        session,
        [
            DomainEvent(
                topic="coupon.voided",
                payload={
                    "coupon_id": coupon.id,
                    "template": coupon.template_code,
                    "reason": reason,
                    "actor": actor,
                },
                key=f"coupon:voided:{coupon.id}",
                occurred_at=now,
                person_id=coupon.person_id,
            )
            for coupon in voided
        ],
        now=now,
    )


@dataclass(frozen=True)
class ExpiryReport:
    """What one run of the expiry job did."""

    expired: int
    notified: int


def expire_coupons(
    session: Session, *, now: datetime | None = None, notice_days: int = 3, limit: int = 5000
) -> ExpiryReport:
    """Mark issued coupons whose window ended ``expired``, and send ``coupon.expiring`` notices.

    At most ``limit`` of each per call (run it until it reports zeros). A coupon being redeemed at
    the same moment is locked by its redeemer; the UPDATE waits, sees it ``redeemed`` and skips it.
    Notices go once per coupon, ``notice_days`` before it ends.
    """
    now = now or utc_now()
    due = session.scalars(
        select(Coupon.id)
        .where(Coupon.status == "issued", Coupon.valid_until <= now)
        .order_by(Coupon.id)
        .limit(limit)
    ).all()
    expired: list[tuple[int, int, str]] = []
    if due:
        expired = [
            (int(coupon_id), int(person_id), str(template))
            for coupon_id, person_id, template in session.execute(
                update(Coupon)
                .where(Coupon.id.in_(due), Coupon.status == "issued", Coupon.valid_until <= now)
                .values(status="expired", expired_at=now)
                .returning(Coupon.id, Coupon.person_id, Coupon.template_code),
                execution_options={"synchronize_session": False},
            )
        ]
    horizon = now + timedelta(days=notice_days)
    soon = session.scalars(
        select(Coupon.id)
        .where(
            Coupon.status == "issued",
            Coupon.valid_until > now,
            Coupon.valid_until <= horizon,
            Coupon.expiry_notified_at.is_(None),
        )
        .order_by(Coupon.id)
        .limit(limit)
    ).all()
    notified: list[tuple[int, int, str, datetime]] = []
    if soon:
        notified = [
            (int(coupon_id), int(person_id), str(template), valid_until)
            for coupon_id, person_id, template, valid_until in session.execute(
                update(Coupon)
                .where(Coupon.id.in_(soon), Coupon.status == "issued", Coupon.expiry_notified_at.is_(None))
                .values(expiry_notified_at=now)
                .returning(Coupon.id, Coupon.person_id, Coupon.template_code, Coupon.valid_until),
                execution_options={"synchronize_session": False},
            )
        ]
    emit_many(
        session,
        [
            DomainEvent(
                topic="coupon.expired",
                payload={"coupon_id": coupon_id, "template": template},
                key=f"coupon:expired:{coupon_id}",
                occurred_at=now,
                person_id=person_id,
            )
            for coupon_id, person_id, template in sorted(expired)
        ]
        + [
            DomainEvent(
                topic="coupon.expiring",
                payload={
                    "coupon_id": coupon_id,
                    "template": template,
                    "valid_until": valid_until.isoformat(),
                },
                key=f"coupon:expiring:{coupon_id}",
                occurred_at=now,
                person_id=person_id,
            )
            for coupon_id, person_id, template, valid_until in sorted(notified)
        ],
        now=now,
    )
    return ExpiryReport(len(expired), len(notified))
