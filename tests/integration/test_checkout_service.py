"""Checkout on SQLite and PostgreSQL: quote, settle, replay, cancel, refund, with exact values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memberops.kit.errors import Conflict, ValidationFailed
from memberops.loyalty import checkout_service, coupon_service
from memberops.loyalty.cart import Cart, CartLine
from memberops.loyalty.check import check
from memberops.loyalty.checkout_service import SettleRequest
from memberops.loyalty.coupon_service import IssueRequest
from memberops.loyalty.coupons import CouponRejected
from memberops.loyalty.pricing import InsufficientPoints
from memberops.wiring import Services

from .offers_support import (
    NOW,
    SHANGHAI,
    balance,
    coupon_states,
    give_points,
    member,
    read,
    setup_programme,
    snapshot,
    topics,
    write,
)

APPLES = (CartLine(1, "APL-FJ", "苹果", 3, 2000),)


@pytest.fixture
def shop(services: Services) -> tuple[Services, int, int, int]:
    """A standard member with 300 points, a welcome_5 (id 1) and a repurchase_10 (id 2)."""
    setup_programme(services)
    ann = member(services, "13800000001")
    give_points(services, ann, 300)
    write(
        services,
        lambda s: coupon_service.issue_coupons(
            s,
            [ann],
            [IssueRequest("welcome_5"), IssueRequest("repurchase_10")],
            key="gift",
            reason="test",
            actor="op",
            time_zone=SHANGHAI,
            now=NOW,
        ),
    )
    [(welcome, _, _), (repurchase, _, _)] = coupon_states(services)
    return services, ann, welcome, repurchase


def settle(svc: Services, request: SettleRequest, key: str = "s1", at: datetime = NOW):
    return write(
        svc, lambda s: checkout_service.settle(s, request, key=key, actor="pos", time_zone=SHANGHAI, now=at)
    )


def order(
    ann: int, coupons: tuple[int, ...] = (), points: int = 0, external: str = "POS-1", **kw: object
) -> SettleRequest:
    return SettleRequest("pos", external, ann, APPLES, coupon_ids=coupons, points=points, **kw)  # type: ignore[arg-type]


def test_a_quote_picks_the_best_coupon_and_shows_the_points_usable(
    shop: tuple[Services, int, int, int],
) -> None:
    svc, ann, welcome, repurchase = shop

    quoted = read(
        svc,
        lambda s: checkout_service.quote_for(
            s, ann, Cart(APPLES, "pos", NOW), selected=None, points=25, time_zone=SHANGHAI
        ),
    )

    assert (quoted.list_fen, quoted.member_discount_fen) == (6000, 0)
    assert (quoted.coupon_ids, quoted.coupon_discount_fen) == ((repurchase,), 1000)
    assert [(o.coupon_id, o.alone_fen) for o in quoted.coupons] == [(welcome, 500), (repurchase, 1000)]
    assert (quoted.points_balance, quoted.points_usable, quoted.payable_fen) == (300, 25, 2500)


def test_settling_consumes_the_coupon_and_the_points_at_once(shop: tuple[Services, int, int, int]) -> None:
    svc, ann, welcome, repurchase = shop

    outcome = settle(svc, order(ann, (repurchase,), 25))

    settlement = outcome.settlement
    assert outcome.created
    assert (settlement.status, settlement.list_fen, settlement.coupon_discount_fen) == ("settled", 6000, 1000)
    assert (settlement.points_spent, settlement.points_value_fen, settlement.payable_fen) == (25, 2500, 2500)
    assert settlement.lines == [[1, "APL-FJ", "苹果", 3, 6000, 6000, 1000, 2500, 2500]]
    assert balance(svc, ann) == 275
    assert coupon_states(svc) == [(welcome, "welcome_5", "issued"), (repurchase, "repurchase_10", "redeemed")]
    assert {"checkout.settled", "coupon.redeemed", "points.spent"} <= set(topics(svc))


def test_replays_change_nothing_and_other_content_is_refused(shop: tuple[Services, int, int, int]) -> None:
    svc, ann, welcome, repurchase = shop
    first = settle(svc, order(ann, (repurchase,), 25)).settlement
    before = snapshot(svc)

    same_key = settle(svc, order(ann, (repurchase,), 25))
    other_key = settle(svc, order(ann, (repurchase,), 25), key="s2")
    assert (same_key.created, same_key.settlement.id) == (False, first.id)
    assert (other_key.created, other_key.settlement.id) == (False, first.id)
    with pytest.raises(Conflict, match="was settled with different content"):
        settle(svc, order(ann, (repurchase,), 10))
    with pytest.raises(Conflict, match="was used for order pos/POS-1"):
        settle(svc, order(ann, (welcome,), external="POS-2"))

    assert snapshot(svc) == before


def test_a_refused_settlement_changes_nothing(shop: tuple[Services, int, int, int]) -> None:
    svc, ann, welcome, repurchase = shop
    settle(svc, order(ann, (repurchase,)))
    before = snapshot(svc)

    with pytest.raises(CouponRejected, match=f"coupon {repurchase} is redeemed"):
        settle(svc, order(ann, (repurchase,), external="POS-2"), key="s2")
    with pytest.raises(InsufficientPoints):
        settle(
            svc,
            SettleRequest("pos", "POS-3", ann, (CartLine(1, "X", "x", 1, 100_000),), points=301),
            key="s3",
        )
    with pytest.raises(CouponRejected, match="cannot be combined"):
        settle(svc, order(ann, (welcome, repurchase), external="POS-4"), key="s4")
    with pytest.raises(ValidationFailed, match="not a known channel"):
        settle(svc, SettleRequest("nowhere", "X", ann, APPLES), key="s5")

    assert snapshot(svc) == before


def test_cancelling_gives_coupons_and_points_back_once(shop: tuple[Services, int, int, int]) -> None:
    svc, ann, _, repurchase = shop
    settled = settle(svc, order(ann, (repurchase,), 25)).settlement
    cancel = lambda: write(  # noqa: E731
        svc,
        lambda s: checkout_service.cancel_settlement(
            s, settled.id, reason="customer left", actor="pos", now=NOW
        ),
    )

    first = cancel()
    before = snapshot(svc)
    again = cancel()

    assert (first.created, first.settlement.status, again.created) == (True, "cancelled", False)
    assert snapshot(svc) == before
    assert balance(svc, ann) == 300
    assert coupon_states(svc)[1] == (repurchase, "repurchase_10", "issued")
    with pytest.raises(Conflict, match="is cancelled; it cannot be refunded"):
        write(
            svc,
            lambda s: checkout_service.refund_settlement(
                s, settled.id, key="r", amount_fen=None, reason=None, actor="pos", now=NOW
            ),
        )


def refund(svc: Services, settlement_id: int, key: str, amount: int | None, at: datetime = NOW):
    return write(
        svc,
        lambda s: checkout_service.refund_settlement(
            s, settlement_id, key=key, amount_fen=amount, reason="returned", actor="pos", now=at
        ),
    )


def test_a_partial_refund_gives_back_its_share_of_points_and_the_last_one_everything(
    shop: tuple[Services, int, int, int],
) -> None:
    svc, ann, _, repurchase = shop
    # 60.00 of apples − 10.00 (repurchase_10) − 25 points (25.00) = 25.00 paid in money.
    settled = settle(svc, order(ann, (repurchase,), 25)).settlement
    assert (settled.payable_fen, balance(svc, ann)) == (2500, 275)

    part = refund(svc, settled.id, "r1", 1000)  # 10.00 of 25.00: 25 × 1000 / 2500 = 10 points
    assert (part.settlement.refunded_fen, part.settlement.status, part.refund.points_restored) == (
        1000,
        "settled",
        10,
    )
    assert (balance(svc, ann), part.refund.coupons_released) == (285, False)
    assert coupon_states(svc)[1] == (repurchase, "repurchase_10", "redeemed")
    cent = refund(svc, settled.id, "r2", 1)  # 25 × 1001 / 2500 = 10.01: still 10, rounded down
    assert (cent.refund.points_restored, balance(svc, ann)) == (0, 285)
    with pytest.raises(Conflict, match="partly refunded: refund the rest"):
        write(
            svc, lambda s: checkout_service.cancel_settlement(s, settled.id, reason="x", actor="pos", now=NOW)
        )
    before = snapshot(svc)
    with pytest.raises(ValidationFailed, match=r"is 0\.01 to 14\.99 yuan, not 15\.00"):
        refund(svc, settled.id, "r3", 1500)
    assert snapshot(svc) == before

    rest = refund(svc, settled.id, "r3", None)
    assert (rest.refund.amount_fen, rest.settlement.status, rest.refund.points_restored) == (
        1499,
        "refunded",
        15,
    )
    assert rest.refund.coupons_released
    assert (balance(svc, ann), rest.settlement.points_restored) == (300, 25)
    assert coupon_states(svc)[1] == (repurchase, "repurchase_10", "issued")
    before = snapshot(svc)
    assert not refund(svc, settled.id, "r3", None).created
    assert not refund(svc, settled.id, "r1", 1000).created
    assert snapshot(svc) == before
    assert read(svc, check) == []


def test_a_coupon_released_after_its_window_is_expired(shop: tuple[Services, int, int, int]) -> None:
    svc, ann, _, repurchase = shop
    settled = settle(svc, order(ann, (repurchase,))).settlement

    later = NOW + timedelta(days=30)
    write(
        svc,
        lambda s: checkout_service.cancel_settlement(s, settled.id, reason="late", actor="pos", now=later),
    )

    assert coupon_states(svc)[1] == (repurchase, "repurchase_10", "expired")


def test_an_order_paid_entirely_by_coupon_is_refunded_with_nothing_to_pay_back(
    shop: tuple[Services, int, int, int],
) -> None:
    svc, ann, welcome, _ = shop
    settled = settle(
        svc, SettleRequest("pos", "P0", ann, (CartLine(1, "X", "x", 1, 400),), coupon_ids=(welcome,))
    ).settlement
    assert settled.payable_fen == 0

    refunded = refund(svc, settled.id, "r", None)

    assert (refunded.refund.amount_fen, refunded.settlement.status) == (0, "refunded")
    assert coupon_states(svc)[0] == (welcome, "welcome_5", "issued")


def test_settlements_are_found_by_their_order(shop: tuple[Services, int, int, int]) -> None:
    svc, ann, _, _ = shop
    settled = settle(svc, order(ann)).settlement

    found = read(svc, lambda s: checkout_service.find_settlement(s, source="pos", external_order_id="POS-1"))

    assert found.id == settled.id
    assert read(svc, lambda s: [x.id for x in checkout_service.settlements_of(s, ann)]) == [settled.id]
    assert datetime(2026, 3, 10, 2, 0, tzinfo=UTC) == found.settled_at
