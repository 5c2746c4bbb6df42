"""POST /orders and /refunds: stored once, attributed by OneID, refused with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from memberops.access.rules import Role
from memberops.wiring import Services

from .test_api_support import Api, error_of, order, start_api


@pytest.fixture
def api(services: Services) -> Api:
    return start_api(services)


def test_an_order_is_stored_with_its_person(api: Api) -> None:
    items = [
        {"sku": "LATTE-M", "category": "coffee", "qty": 2, "amount": "30.00"},
        {"sku": "COOKIE", "category": "bakery", "qty": 1, "amount": "6.80"},
    ]
    response = api.post("/orders", order(store="SH001", items=items, share_id="S-1"), role=Role.OPERATOR)

    assert response.status_code == 201
    assert response.json() == {
        "order_id": 1,
        "person_id": 1,
        "created": True,
        "source": "pos",
        "external_id": "POS-1",
        "paid_at": "2026-03-01T04:30:00Z",
        "amount": "36.80",
    }
    counts = api.counts()
    assert (counts["orders"], counts["order_lines"], counts["persons"], counts["identifiers"]) == (1, 2, 1, 1)


def test_a_replay_returns_the_first_result_and_changes_nothing(api: Api) -> None:
    first = api.post("/orders", order())
    before = api.counts()

    replay = api.post("/orders", order(amount="99.00", phone="13900139000"))

    assert first.status_code == 201
    assert replay.status_code == 200
    assert replay.json() == {**first.json(), "created": False}
    assert replay.json()["amount"] == "36.80"
    assert api.counts() == before


def test_one_phone_in_different_formats_is_one_person(api: Api) -> None:
    first = api.post("/orders", order("POS-1", phone="+86 138 0013 8000")).json()
    second = api.post("/orders", order("POS-2", phone="138-0013-8000")).json()
    third = api.post("/orders", order("POS-3", phone="8613800138000")).json()

    assert first["person_id"] == second["person_id"] == third["person_id"] == 1
    assert api.counts()["persons"] == 1
    assert api.counts()["identifiers"] == 1


def test_a_guest_order_belongs_to_nobody(api: Api) -> None:
    response = api.post("/orders", order(phone=None))

    assert response.status_code == 201
    assert response.json()["person_id"] is None
    assert api.counts()["persons"] == 0


def test_a_refunded_order_is_stored_with_its_refund(api: Api) -> None:
    response = api.post("/orders", order(status="refunded"))

    assert response.status_code == 201
    assert api.counts()["refunds"] == 1
    person = api.get(f"/persons/{response.json()['person_id']}").json()
    assert person["orders_summary"] == {"count": 1, "paid": "36.80", "refunded": "36.80"}


#: (fields overriding a valid order, status, code, message or None when it is Pydantic's wording)
BAD_ORDERS: list[tuple[dict[str, Any], int, str, str | None]] = [
    ({"store": "SH999"}, 422, "invalid_record", "store 'SH999' is not a known store"),
    ({"source": "ebay"}, 422, "invalid_record", "source 'ebay' is not a known channel"),
    ({"phone": "12345"}, 422, "invalid_record", "phone '12345' is not a valid phone number"),
    ({"items": [{"sku": "A", "amount": "1.00"}]}, 422, "invalid_record", "items do not add up to amount"),
    ({"refund_amount": "40.00"}, 422, "invalid_record", "refund_amount is more than amount"),
    (
        {"refunded_at": "2026-02-01T00:00:00+08:00", "status": "refunded"},
        422,
        "invalid_record",
        "refunded_at is before paid_at",
    ),
    ({"amount": 36.8}, 422, "validation_failed", None),
    ({"amount": "36.805"}, 422, "validation_failed", None),
    ({"amount": "-1.00"}, 422, "validation_failed", None),
    ({"amount": "1e30"}, 422, "validation_failed", None),
    ({"paid_at": "2026-03-01T12:30:00"}, 422, "validation_failed", None),
    ({"paid_at": "9999-12-31T23:59:59-23:59"}, 422, "validation_failed", None),
    ({"external_id": "x" * 65}, 422, "validation_failed", None),
    ({"external_id": "A\x00B"}, 422, "validation_failed", None),
    ({"app_id": "a" * 65, "openid": "oX"}, 422, "validation_failed", None),
    ({"status": "lost"}, 422, "validation_failed", None),
    ({"colour": "red"}, 422, "validation_failed", None),
    ({"items": [{"sku": "A", "qty": 0, "amount": "36.80"}]}, 422, "validation_failed", None),
    ({"items": [{"sku": "A", "qty": 2**40, "amount": "36.80"}]}, 422, "validation_failed", None),
    ({"items": [{"sku": "A", "category": "c" * 65, "amount": "36.80"}]}, 422, "validation_failed", None),
    ({"items": [{"sku": "A", "category": "c\x00", "amount": "36.80"}]}, 422, "validation_failed", None),
    ({"email": "a@" + "b" * 70 + ".cn"}, 422, "validation_failed", None),
]


def test_a_bad_order_is_refused_and_nothing_changes(api: Api, subtests: pytest.Subtests) -> None:
    before = api.counts()
    for fields, status, code, message in BAD_ORDERS:
        with subtests.test(msg=str(fields)[:80]):
            response = api.post("/orders", order(**fields))

            assert error_of(response) == (status, code)
            if message is not None:
                assert response.json()["error"]["message"] == message
            assert api.counts() == before


def test_a_missing_field_names_it(api: Api) -> None:
    body = order()
    del body["paid_at"]

    response = api.post("/orders", body)

    assert error_of(response) == (422, "validation_failed")
    error = response.json()["error"]
    assert error["message"] == "body.paid_at: Field required"
    assert error["details"]["errors"] == [
        {"loc": ["body", "paid_at"], "message": "Field required", "type": "missing"}
    ]


def refund(external_id: str, amount: str, **fields: Any) -> dict[str, Any]:
    return {
        "source": "pos",
        "external_id": external_id,
        "order_external_id": "POS-1",
        "amount": amount,
        "refunded_at": "2026-03-02T10:00:00+08:00",
        **fields,
    }


def test_partial_then_full_refund_then_over_refund(api: Api) -> None:
    api.post("/orders", order())

    partial = api.post("/refunds", refund("RF-1", "10.00", reason="one cup spilled"), role=Role.OPERATOR)
    rest = api.post("/refunds", refund("RF-2", "26.80"))
    before = api.counts()
    over = api.post("/refunds", refund("RF-3", "0.01"))

    assert partial.status_code == 201
    assert partial.json() == {
        "refund_id": 1,
        "order_id": 1,
        "created": True,
        "source": "pos",
        "external_id": "RF-1",
        "amount": "10.00",
        "refunded_at": "2026-03-02T02:00:00Z",
        "reason": "one cup spilled",
    }
    assert rest.status_code == 201
    assert rest.json()["amount"] == "26.80"
    assert error_of(over) == (409, "conflict")
    assert over.json()["error"]["details"] == {"paid_fen": 3680, "refunded_fen": 3680}
    assert api.counts() == before
    assert api.get("/persons/1").json()["orders_summary"] == {
        "count": 1,
        "paid": "36.80",
        "refunded": "36.80",
    }


def test_a_refund_replay_returns_the_first_refund(api: Api) -> None:
    api.post("/orders", order())
    first = api.post("/refunds", refund("RF-1", "10.00"))
    before = api.counts()

    replay = api.post("/refunds", refund("RF-1", "10.00"))
    changed = api.post("/refunds", refund("RF-1", "12.00"))

    assert replay.status_code == 200
    assert replay.json() == {**first.json(), "created": False}
    assert error_of(changed) == (409, "conflict")
    assert api.counts() == before


BAD_REFUNDS: list[tuple[dict[str, Any], int, str]] = [
    ({"order_external_id": "POS-404"}, 404, "not_found"),
    ({"amount": "0.00"}, 422, "validation_failed"),
    ({"refunded_at": "2026-02-01T00:00:00+08:00"}, 422, "validation_failed"),
    ({"amount": 10}, 422, "validation_failed"),
    ({"reason": "x" * 201}, 422, "validation_failed"),
    ({"external_id": ""}, 422, "validation_failed"),
]


def test_a_bad_refund_is_refused_and_nothing_changes(api: Api, subtests: pytest.Subtests) -> None:
    api.post("/orders", order())
    before = api.counts()
    for fields, status, code in BAD_REFUNDS:
        with subtests.test(msg=str(fields)[:80]):
            response = api.post("/refunds", {**refund("RF-1", "10.00"), **fields})

            assert error_of(response) == (status, code)
            assert api.counts() == before
