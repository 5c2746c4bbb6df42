"""The programme and points over HTTP: apply, earn through /orders, redeem idempotently, refuse cleanly."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from memberops.access.rules import Role
from memberops.kit.db import unit_of_work
from memberops.loyalty.programme import demo_programme
from memberops.models import OutboxEvent, PointsAccount, PointsEntry, PointsLot
from memberops.wiring import Services

from .test_api_support import Api, error_of, order, start_api


@pytest.fixture
def api(services: Services) -> Api:
    api = start_api(services)
    document = json.loads(demo_programme().canonical_json())
    assert (
        api.client.put("/api/v1/programme", json=document, headers=api.headers(Role.ADMIN)).status_code == 201
    )
    api.post(
        "/members", {"phone": "13800138000", "member_no": "M0001", "joined_at": "2026-01-01T00:00:00+08:00"}
    )
    api.post("/orders", order("POS-1", amount="105.00"))
    return api


def ledger_counts(api: Api) -> dict[str, int]:
    with unit_of_work(api.services.read_sessions) as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (PointsEntry, PointsLot, PointsAccount, OutboxEvent)
        }


def redeem(api: Api, body: dict[str, Any], key: str | None, person: str = "1") -> httpx.Response:
    headers = {**api.headers(Role.OPERATOR), **({"Idempotency-Key": key} if key else {})}
    return api.client.post(f"/api/v1/members/{person}/points/redemptions", json=body, headers=headers)


def test_an_order_through_the_api_earns_and_the_balance_shows_it(api: Api) -> None:
    by_id = api.get("/members/1/points", role=Role.GUIDE)
    by_card = api.get("/members/member_no:M0001/points", role=Role.ANALYST)

    assert by_id.status_code == 200
    assert by_id.json() == {
        "person_id": 1,
        "balance": 10,
        "spendable": 10,
        "debt": 0,
        "expiring": [],
        "expiring_within_days": 90,
    }
    assert by_card.json() == by_id.json()
    history = api.get("/members/phone:13800138000/points/history").json()
    assert [(h["kind"], h["delta"], h["balance_after"], h["source"]) for h in history] == [
        ("earn", 10, 10, "order")
    ]


def test_a_redemption_needs_a_key_replays_return_the_first_entry_and_overdrawing_changes_nothing(
    api: Api,
) -> None:
    missing = redeem(api, {"points": 4}, None)
    first = redeem(api, {"points": 4, "reason": "fruit box"}, "till-7-0001")
    replay = redeem(api, {"points": 4, "reason": "fruit box"}, "till-7-0001")
    before = ledger_counts(api)
    overdrawn = redeem(api, {"points": 7}, "till-7-0002")
    reused = redeem(api, {"points": 5}, "till-7-0001")

    assert error_of(missing) == (422, "validation_failed")
    assert first.status_code == 201
    assert (first.json()["kind"], first.json()["delta"], first.json()["balance_after"]) == ("spend", -4, 6)
    assert first.json()["actor"] == "operator"
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert error_of(overdrawn) == (409, "insufficient_points")
    assert overdrawn.json()["error"]["message"] == "the balance is 6 points, less than the 7 points asked for"
    assert error_of(reused) == (409, "idempotency_conflict")
    assert ledger_counts(api) == before


def test_an_operator_adjusts_and_an_analyst_may_not(api: Api) -> None:
    headers = {**api.headers(Role.OPERATOR), "Idempotency-Key": "adj-1"}
    added = api.client.post(
        "/api/v1/members/1/points/adjustments",
        json={"points": 25, "reason": "late delivery"},
        headers=headers,
    )
    before = ledger_counts(api)
    refused = api.client.post(
        "/api/v1/members/1/points/adjustments",
        json={"points": 25, "reason": "late delivery"},
        headers={**api.headers(Role.ANALYST), "Idempotency-Key": "adj-2"},
    )

    assert added.status_code == 201
    assert (added.json()["delta"], added.json()["balance_after"], added.json()["reason"]) == (
        25,
        35,
        "late delivery",
    )
    assert error_of(refused) == (403, "forbidden")
    assert ledger_counts(api) == before


def test_the_programme_is_shown_replaced_and_refused_with_every_problem(api: Api) -> None:
    shown = api.get("/programme", role=Role.GUIDE)
    document = shown.json()["document"]
    same = api.client.put("/api/v1/programme", json=document, headers=api.headers(Role.ADMIN))
    broken = api.client.put(
        "/api/v1/programme",
        json={**document, "version": "2026.2", "tiers": [{"code": "gold", "name": "Gold", "threshold": 5}]},
        headers=api.headers(Role.ADMIN),
    )
    by_operator = api.client.put("/api/v1/programme", json=document, headers=api.headers(Role.OPERATOR))

    assert shown.status_code == 200
    assert (shown.json()["version"], shown.json()["active"]) == ("2026.1", True)
    assert same.status_code == 200
    assert same.json()["changed"] is False
    assert error_of(broken) == (422, "invalid_programme")
    paths = [problem["path"] for problem in broken.json()["error"]["details"]["problems"]]
    assert "tiers[0].threshold" in paths
    assert error_of(by_operator) == (403, "forbidden")


def test_the_tier_says_what_is_missing_and_an_unknown_member_is_404(api: Api) -> None:
    tier = api.get("/members/1/tier")
    unknown = api.get("/members/999/points")
    nonsense = api.get("/members/no such thing!/points")
    superscript = api.get("/members/²/points")  # a digit to str.isdigit, not to int()

    assert tier.status_code == 200
    assert (tier.json()["tier"], tier.json()["window_growth"]) == ("standard", 105)
    assert tier.json()["next_tier"] == {"tier": "silver", "growth_needed": 2895}
    assert error_of(unknown) == (404, "not_found")
    assert error_of(nonsense)[0] == 422
    assert error_of(superscript)[0] == 422


def test_a_refund_through_the_api_takes_points_back(api: Api) -> None:
    response = api.post(
        "/refunds",
        {
            "source": "pos",
            "external_id": "RF-1",
            "order_external_id": "POS-1",
            "amount": "52.50",
            "refunded_at": "2026-03-02T10:00:00+08:00",
        },
    )

    assert response.status_code == 201
    assert api.get("/members/1/points").json()["balance"] == 5


def complete(api: Api, task: str, key: str | None, role: Role = Role.OPERATOR) -> httpx.Response:
    headers = {**api.headers(role), **({"Idempotency-Key": key} if key else {})}
    return api.client.post(f"/api/v1/members/member_no:M0001/tasks/{task}", headers=headers)


def test_a_growth_task_is_completed_once_through_the_api(api: Api) -> None:
    first = complete(api, "complete_profile", "profile-1")
    assert (first.status_code, first.json()) == (
        201,
        {"person_id": 1, "task": "complete_profile", "growth": 50, "points": 0, "created": True},
    )
    before = api.counts()
    replay = complete(api, "complete_profile", "profile-1")
    again = complete(api, "complete_profile", "profile-2")
    unknown = complete(api, "no_such_task", "x-1")
    no_key = complete(api, "first_review", None)
    analyst = complete(api, "first_review", "review-1", role=Role.ANALYST)

    assert (replay.status_code, replay.json()["created"]) == (200, False)
    assert error_of(again) == (409, "task_limit_reached")
    assert error_of(unknown)[0] == 404
    assert error_of(no_key) == (422, "validation_failed")
    assert error_of(analyst) == (403, "forbidden")
    assert api.counts() == before
    tier_view = api.get("/members/1/tier").json()
    assert tier_view["growth_total"] == 105 + 50
