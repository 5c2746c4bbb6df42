"""A small loyalty history built through the real services, for the report tests.

The history (Asia/Shanghai, the demo programme: 1 point per 10 yuan, 1 point = 1 yuan, silver at
3,000 growth with a 100-point gift and ×1.2 earning, points expire at the end of the year after):

- The demo programme is applied on 2025-10-01. Ann, Bob and Cat join on 2025-11-01, Dan on 2026-02-15; Eve buys without joining.
- 2025-11-20 Cat buys 300 yuan: 30 points, expiring when 2026 ends.
- Jan 2026: Ann buys 1,000 (100 points) and 2,500 (250 points, reaching silver: +100 gift and
  an upgrade_silver_20 coupon, valid 60 days),
  Bob 500 (50), Eve 100 (nothing: not a member).
- Feb 2026: Bob refunds 200 of his 500 (−20); Ann redeems a 20-point voucher, spends 100 points,
  redeems a 5-point voucher; Cat gets +30 by hand, Bob loses 10; welcome_5 coupons to Ann, Bob, Cat.
- Mar 2026: Ann's 5-point voucher redemption is cancelled (+5 back, its coupon voided); Cat's
  welcome_5 is voided; Bob gets a repurchase_10; Ann uses her welcome_5 at the till on order A3
  (100 yuan, 12 points at silver); Bob settles order B2 with the repurchase_10 (60 − 10 = 50 yuan,
  5 points); Ann settles A4 with her voucher_20 and cancels it; the coupon job expires Bob's
  welcome_5, Ann's voucher_20 and her unused upgrade_silver_20.
- Apr 2026: 30 yuan of A3 is refunded (−3 points).
- 2027-01-01 01:00: Cat's 2025 points expire (30). The tier evaluations, run as of 2027-02-01,
  walk the monthly downgrade dates (the 1st plus 30 days' grace) until Ann, whose window no longer
  holds her January 2026 purchases, goes down to standard on 2027-01-31.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.ingest.records import RefundIn, parse_event, parse_order
from memberops.ingest.service import IngestService
from memberops.kit.clock import parse_instant
from memberops.kit.db import unit_of_work
from memberops.loyalty import checkout_service, coupon_service, jobs, reward_service
from memberops.loyalty.cart import CartLine
from memberops.loyalty.checkout_service import SettleRequest
from memberops.loyalty.coupon_service import IssueRequest
from memberops.loyalty.points import adjust_points, spend_points
from memberops.loyalty.programme import demo_programme
from memberops.loyalty.purchases import take_back_refunds
from memberops.loyalty.versions import apply_programme
from memberops.models import Coupon
from memberops.wiring import Services

ZONE = "Asia/Shanghai"
ANN, BOB, CAT, DAN, EVE = "13800000001", "13800000002", "13800000003", "13800000004", "13800000005"


def at(text: str) -> datetime:
    """An instant written in Shanghai time without the offset: ``at("2026-02-10 10:00")``."""
    return parse_instant(text.replace(" ", "T") + ":00+08:00")


@dataclass
class History:
    services: Services
    persons: dict[str, int]


def write(services: Services, action: Any) -> Any:
    with unit_of_work(services.sessions) as session:
        return action(session)


def read(services: Services, action: Any) -> Any:
    with unit_of_work(services.read_sessions) as session:
        return action(session)


def _join(services: Services, phone: str, when: str) -> int:
    event = {"type": "register", "occurred_at": at(when).isoformat(), "field": "pos", "phone": phone}
    event["external_id"] = f"reg-{phone}"
    [outcome] = write(services, lambda s: services.ingest.ingest_events(s, [parse_event(event)], actor="t"))
    assert outcome.person_id is not None
    return int(outcome.person_id)


def _buy(services: Services, external_id: str, phone: str, amount: str, when: str) -> int:
    raw = {"source": "pos", "external_id": external_id, "paid_at": at(when).isoformat(), "amount": amount}
    raw["phone"] = phone
    [outcome] = write(services, lambda s: services.ingest.ingest_orders(s, [parse_order(raw)], actor="t"))
    assert outcome.order_id is not None, outcome.rejection
    return int(outcome.order_id)


def _refund(services: Services, order_external_id: str, external_id: str, amount_fen: int, when: str) -> None:
    """Store a refund and take back what it earned, both as of ``when`` (no wall clock involved)."""
    refund = RefundIn(
        source="pos",
        external_id=external_id,
        order_external_id=order_external_id,
        refunded_at=at(when),
        amount_fen=amount_fen,
        reason=None,
    )

    def store(session: Session) -> None:
        row, _ = IngestService.ingest_refund(services.ingest, session, refund)
        take_back_refunds(session, [row.id], time_zone=services.loyalty.time_zone, now=at(when))

    write(services, store)


def _coupon_of(services: Services, person_id: int, template: str) -> int:
    return int(
        read(
            services,
            lambda s: s.scalars(
                select(Coupon.id).where(Coupon.person_id == person_id, Coupon.template_code == template)
            ).one(),
        )
    )


def _issue(services: Services, person_ids: list[int], template: str, key: str, when: str) -> None:
    write(
        services,
        lambda s: coupon_service.issue_coupons(
            s,
            person_ids,
            [IssueRequest(template)],
            key=key,
            reason="report test",
            actor="op",
            time_zone=services.loyalty.time_zone,
            now=at(when),
        ),
    )


def _settle(services: Services, external_id: str, person_id: int, coupon_id: int, when: str) -> int:
    request = SettleRequest(
        "pos", external_id, person_id, (CartLine(1, "APL-FJ", "苹果", 3, 2000),), coupon_ids=(coupon_id,)
    )
    outcome = write(
        services,
        lambda s: checkout_service.settle(
            s,
            request,
            key=f"settle-{external_id}",
            actor="pos",
            time_zone=services.loyalty.time_zone,
            now=at(when),
        ),
    )
    return int(outcome.settlement.id)


def build_history(services: Services) -> History:
    tz = services.loyalty.time_zone
    write(services, lambda s: apply_programme(s, demo_programme(), actor="test", now=at("2025-10-01 09:00")))
    persons = {
        name: _join(services, phone, "2025-11-01 09:00")
        for name, phone in (("ann", ANN), ("bob", BOB), ("cat", CAT))
    }
    persons["dan"] = _join(services, DAN, "2026-02-15 09:00")

    _buy(services, "C1", CAT, "300.00", "2025-11-20 10:00")
    _buy(services, "A1", ANN, "1000.00", "2026-01-10 10:00")
    _buy(services, "B1", BOB, "500.00", "2026-01-12 10:00")
    _buy(services, "E1", EVE, "100.00", "2026-01-15 10:00")
    _buy(services, "A2", ANN, "2500.00", "2026-01-20 10:00")
    ann, bob, cat = persons["ann"], persons["bob"], persons["cat"]

    _refund(services, "B1", "RB1", 20000, "2026-02-03 10:00")

    def redeem(reward: str, key: str, when: str) -> int:
        outcome = write(
            services,
            lambda s: reward_service.redeem_reward(
                s, ann, reward, key=key, actor="app", time_zone=tz, now=at(when)
            ),
        )
        return int(outcome.redemption.id)

    redeem("voucher_20", "r1", "2026-02-10 10:00")
    write(
        services,
        lambda s: spend_points(
            s,
            ann,
            100,
            key="spend-1",
            reason="cash at the till",
            source="manual",
            actor="op",
            now=at("2026-02-11 10:00"),
        ),
    )
    voucher_5 = redeem("voucher_5", "r2", "2026-02-12 10:00")
    write(
        services,
        lambda s: adjust_points(
            s, cat, 30, reason="goodwill", actor="op", key="adj-1", time_zone=tz, now=at("2026-02-15 10:00")
        ),
    )
    write(
        services,
        lambda s: adjust_points(
            s,
            bob,
            -10,
            reason="correction",
            actor="op",
            key="adj-2",
            time_zone=tz,
            now=at("2026-02-20 10:00"),
        ),
    )
    _issue(services, [ann, bob, cat], "welcome_5", "welcome", "2026-02-20 11:00")

    write(
        services,
        lambda s: reward_service.cancel_redemption(
            s, voucher_5, reason="changed mind", actor="op", now=at("2026-03-01 10:00")
        ),
    )
    write(
        services,
        lambda s: coupon_service.void_coupon(
            s,
            str(_coupon_of(services, cat, "welcome_5")),
            reason="duplicate",
            actor="op",
            now=at("2026-03-02 10:00"),
        ),
    )
    _issue(services, [bob], "repurchase_10", "repurchase", "2026-03-01 11:00")
    write(
        services,
        lambda s: coupon_service.redeem_coupon(
            s,
            str(_coupon_of(services, ann, "welcome_5")),
            key="till-1",
            actor="pos",
            channel="pos",
            order_ref="A3",
            now=at("2026-03-05 10:00"),
        ),
    )
    _buy(services, "A3", ANN, "100.00", "2026-03-05 10:00")
    _settle(services, "B2", bob, _coupon_of(services, bob, "repurchase_10"), "2026-03-06 10:00")
    _buy(services, "B2", BOB, "50.00", "2026-03-06 10:00")
    cancelled = _settle(services, "A4", ann, _coupon_of(services, ann, "voucher_20"), "2026-03-07 10:00")
    write(
        services,
        lambda s: checkout_service.cancel_settlement(
            s, cancelled, reason="left", actor="pos", now=at("2026-03-08 10:00")
        ),
    )
    write(services, lambda s: coupon_service.expire_coupons(s, now=at("2026-03-25 10:00")))

    _refund(services, "A3", "RA3", 3000, "2026-04-02 10:00")

    write(services, lambda s: jobs.expire_due(s, at("2027-01-01 01:00")))
    while write(
        services,
        lambda s: jobs.evaluate_tiers(s, date(2027, 2, 1), time_zone=tz, now=at("2027-02-01 02:00")),
    ).evaluated:
        pass
    return History(services, persons)
