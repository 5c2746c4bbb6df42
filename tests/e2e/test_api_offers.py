"""/checkout, /coupons, /rewards and /members/{person}/plan over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from memberops.access.rules import Role
from memberops.kit.db import unit_of_work
from memberops.loyalty.programme import demo_programme
from memberops.models import (
    CheckoutSettlement,
    Coupon,
    CouponRedemption,
    PaidPlanTerm,
    PointsEntry,
    RewardRedemption,
)
from memberops.wiring import Services

from .test_api_support import Api, error_of, start_api

PHONE = "phone:13800138000"
APPLES = [{"sku": "APL-FJ", "category": "苹果", "qty": 3, "unit_price": "20.00"}]
OFFER_TABLES = {
    "coupons": Coupon,
    "coupon_redemptions": CouponRedemption,
    "settlements": CheckoutSettlement,
    "reward_redemptions": RewardRedemption,
    "plan_terms": PaidPlanTerm,
    "points_entries": PointsEntry,
}


@pytest.fixture
def api(services: Services) -> Api:
    with unit_of_work(services.sessions) as session:
        services.loyalty.apply_programme(session, demo_programme(), actor="test")
    api = start_api(services)
    registered = api.post("/members", {"phone": "13800138000", "field": "pos", "external_id": "REG-1"})
    assert registered.status_code == 201
    added = post(api, "/members/1/points/adjustments", {"points": 100, "reason": "welcome"}, "give")
    assert added.status_code == 201, added.json()
    return api


def post(api: Api, path: str, body: Any, key: str | None, role: Role = Role.ADMIN) -> httpx.Response:
    headers = api.headers(role) | ({"Idempotency-Key": key} if key else {})
    return api.client.post(f"/api/v1{path}", json=body, headers=headers)


def counts(api: Api) -> dict[str, int]:
    with unit_of_work(api.services.read_sessions) as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in OFFER_TABLES.items()
        }


def issue(api: Api, template: str = "repurchase_10", key: str = "issue-1") -> dict[str, Any]:
    response = post(api, "/coupons/issue", {"template": template, "persons": [PHONE], "reason": "test"}, key)
    assert response.status_code in (200, 201), response.json()
    return response.json()


def test_issuing_coupons_is_idempotent_and_lists_them(api: Api) -> None:
    first = post(
        api,
        "/coupons/issue",
        {"template": "welcome_5", "persons": [PHONE, "phone:13900000000"], "reason": "x"},
        "k",
    )
    again = post(
        api,
        "/coupons/issue",
        {"template": "welcome_5", "persons": [PHONE, "phone:13900000000"], "reason": "x"},
        "k",
    )

    assert first.status_code == 201
    assert (first.json()["created"], first.json()["unknown_persons"]) == (1, ["phone:13900000000"])
    assert again.status_code == 200
    assert again.json()["coupons"] == first.json()["coupons"]
    coupon = first.json()["coupons"][0]
    assert (coupon["template"], coupon["status"], coupon["person_id"], len(coupon["code"])) == (
        "welcome_5",
        "issued",
        1,
        14,
    )
    listed = api.get("/members/1/coupons", status="issued").json()
    assert [c["id"] for c in listed] == [coupon["id"]]
    assert api.get(f"/coupons/{coupon['code'].lower()}").json()["id"] == coupon["id"]
    assert error_of(
        post(api, "/coupons/issue", {"template": "welcome_5", "persons": [PHONE], "reason": "x"}, None)
    ) == (
        422,
        "validation_failed",
    )


def test_quote_settle_replay_and_refund(api: Api) -> None:
    [coupon] = issue(api)["coupons"]

    quote = post(
        api, "/checkout/quote", {"person": PHONE, "channel": "pos", "lines": APPLES, "points": 25}, None
    )
    assert quote.status_code == 200, quote.json()
    body = quote.json()
    assert (body["list_price"], body["coupon_discount"], body["coupon_ids"], body["payable"]) == (
        "60.00",
        "10.00",
        [coupon["id"]],
        "25.00",
    )
    assert body["points"] == {"balance": 100, "usable": 25, "used": 25, "value": "25.00"}

    order = {
        "source": "pos",
        "external_order_id": "POS-1",
        "person": PHONE,
        "lines": APPLES,
        "coupon_ids": [coupon["id"]],
        "points": 25,
    }
    settled = post(api, "/checkout/settle", order, "settle-1")
    replay = post(api, "/checkout/settle", order, "settle-1")
    before = counts(api)
    changed = post(api, "/checkout/settle", {**order, "points": 10}, "settle-2")

    assert settled.status_code == 201, settled.json()
    assert (replay.status_code, replay.json()) == (200, settled.json())
    assert error_of(changed) == (409, "idempotency_conflict")
    assert counts(api) == before
    view = settled.json()
    assert (view["status"], view["payable"], view["points_spent"], view["coupon_ids"]) == (
        "settled",
        "25.00",
        25,
        [coupon["id"]],
    )
    assert view["lines"] == [
        {
            "line_no": 1,
            "sku": "APL-FJ",
            "category": "苹果",
            "quantity": 3,
            "list_price": "60.00",
            "member_price": "60.00",
            "coupon": "10.00",
            "points": "25.00",
            "payable": "25.00",
        }
    ]
    assert api.get("/members/1/points").json()["balance"] == 75

    part = post(api, f"/checkout/{view['id']}/refunds", {"amount": "5.00"}, "refund-1")
    rest = post(api, f"/checkout/{view['id']}/refunds", {}, "refund-2")
    assert part.status_code == 201
    # 5.00 of the 25.00 paid: 25 points × 500 / 2500 = 5 come back now, the other 20 with the rest.
    assert (part.json()["settlement"]["refunded"], part.json()["refund"]["points_restored"]) == ("5.00", 5)
    assert (
        rest.json()["settlement"]["status"],
        rest.json()["refund"]["amount"],
        rest.json()["refund"]["points_restored"],
    ) == ("refunded", "20.00", 20)
    assert api.get("/members/1/points").json()["balance"] == 100
    assert api.get(f"/coupons/%23{coupon['id']}").json()["status"] == "issued"
    assert error_of(post(api, f"/checkout/{view['id']}/cancel", {"reason": "x"}, None)) == (
        409,
        "settlement_rejected",
    )


def test_a_refused_settlement_names_the_reason_and_changes_nothing(api: Api) -> None:
    before = counts(api)
    order = {"source": "pos", "external_order_id": "POS-9", "person": PHONE, "lines": APPLES}

    too_many = post(api, "/checkout/settle", {**order, "points": 31}, "a")
    no_coupon = post(api, "/checkout/settle", {**order, "coupon_ids": [77]}, "b")
    analyst = post(api, "/checkout/settle", order, "c", role=Role.ANALYST)
    nobody = post(api, "/checkout/settle", {**order, "person": "phone:13900000000"}, "d")

    assert error_of(too_many) == (409, "points_over_limit")
    assert error_of(no_coupon) == (409, "coupon_rejected")
    assert error_of(analyst) == (403, "forbidden")
    assert error_of(nobody) == (404, "not_found")
    assert counts(api) == before


def test_cancelling_a_settlement_gives_everything_back(api: Api) -> None:
    [coupon] = issue(api)["coupons"]
    order = {
        "source": "pos",
        "external_order_id": "P",
        "person": "1",
        "lines": APPLES,
        "coupon_ids": [coupon["id"]],
        "points": 20,
    }
    settled = post(api, "/checkout/settle", order, "s").json()

    cancelled = post(
        api, f"/checkout/{settled['id']}/cancel", {"reason": "customer left"}, None, role=Role.GUIDE
    )

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert api.get(f"/checkout/{settled['id']}").json()["status"] == "cancelled"
    assert api.get("/members/1/points").json()["balance"] == 100
    assert api.get("/members/1/coupons").json()[0]["status"] == "issued"


def test_a_coupon_is_redeemed_once_and_void_ones_are_refused(api: Api) -> None:
    [coupon, other] = post(
        api, "/coupons/issue", {"template": "welcome_5", "count": 2, "persons": [PHONE], "reason": "x"}, "k"
    ).json()["coupons"]

    used = post(
        api, f"/coupons/{coupon['code']}/redeem", {"channel": "pos", "person": PHONE}, "r1", role=Role.GUIDE
    )
    replay = post(
        api, f"/coupons/{coupon['code']}/redeem", {"channel": "pos", "person": PHONE}, "r1", role=Role.GUIDE
    )
    before = counts(api)
    twice = post(api, f"/coupons/{coupon['code']}/redeem", {}, "r2")
    voided = post(api, f"/coupons/{other['code']}/void", {"reason": "by mistake"}, None)
    void_use = post(api, f"/coupons/{other['code']}/redeem", {}, "r3")

    assert (used.status_code, used.json()["discount"], used.json()["coupon"]["status"]) == (
        201,
        "5.00",
        "redeemed",
    )
    assert (replay.status_code, replay.json()["redemption_id"]) == (200, used.json()["redemption_id"])
    assert error_of(twice) == (409, "conflict")
    assert voided.json()["status"] == "void"
    assert error_of(void_use) == (409, "conflict")
    assert counts(api) == before


def test_rewards_are_listed_redeemed_and_cancelled(api: Api) -> None:
    catalogue = {item["code"]: item for item in api.get("/rewards", person=PHONE).json()}
    assert catalogue["durian_gift_box"]["rejection"] == '"金枕榴莲礼盒" is for 金卡 Gold members only'
    assert catalogue["voucher_20"]["rejection"] is None

    redeemed = post(api, "/rewards/voucher_20/redeem", {"person": PHONE}, "w1")
    assert redeemed.status_code == 201, redeemed.json()
    assert (redeemed.json()["points"], redeemed.json()["coupon"]["template"]) == (20, "voucher_20")
    assert api.get("/members/1/points").json()["balance"] == 80
    before = counts(api)
    assert error_of(post(api, "/rewards/durian_gift_box/redeem", {"person": PHONE}, "w2")) == (
        409,
        "reward_rejected",
    )
    assert counts(api) == before

    cancelled = post(
        api, f"/reward-redemptions/{redeemed.json()['id']}/cancel", {"reason": "changed mind"}, None
    )
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert api.get("/members/1/points").json()["balance"] == 100


def test_plans_are_bought_renewed_refunded_and_shown(api: Api) -> None:
    assert error_of(post(api, "/members/1/plan/renewals", {"plan": "annual"}, "n0")) == (409, "plan_rejected")

    bought = post(api, "/members/1/plan/purchases", {"plan": "half_year", "payment_ref": "PAY-1"}, "p1")
    replay = post(api, "/members/1/plan/purchases", {"plan": "half_year", "payment_ref": "PAY-1"}, "p1")
    renewed = post(api, "/members/1/plan/renewals", {"plan": "annual"}, "p2", role=Role.GUIDE)

    assert bought.status_code == 201, bought.json()
    assert (
        bought.json()["term"]["kind"],
        bought.json()["term"]["price"],
        bought.json()["plan"]["status"],
    ) == (
        "purchase",
        "99.00",
        "active",
    )
    assert (replay.status_code, replay.json()["term"]) == (200, bought.json()["term"])
    assert (renewed.json()["term"]["kind"], renewed.json()["term"]["starts_at"]) == (
        "renewal",
        bought.json()["term"]["ends_at"],
    )
    refunded = post(api, "/members/1/plan/refunds", {"reason": "asked"}, "r1")
    assert (
        refunded.json()["term"]["plan"],
        refunded.json()["refund"]["rule"],
        refunded.json()["refund"]["amount"],
    ) == (
        "annual",
        "not_started",
        "168.00",
    )
    shown = api.get("/members/1/plan").json()
    assert (shown["status"], shown["plan"], [t["status"] for t in shown["terms"]]) == (
        "active",
        "half_year",
        ["refunded", "active"],
    )
    assert error_of(post(api, "/members/1/plan/refunds", {"reason": "x"}, "r2", role=Role.GUIDE)) == (
        403,
        "forbidden",
    )


def test_a_person_written_in_other_digits_is_refused_not_an_error(api: Api) -> None:
    superscript = api.get("/members/%C2%B9/coupons")  # "¹": isdigit() says yes, int() says no
    arabic_indic = api.get("/members/%D9%A1%D9%A2/plan")  # "١٢"

    assert error_of(superscript) == (422, "invalid_identifier")
    assert error_of(arabic_indic) == (422, "invalid_identifier")
