"""POST /events and /members: behaviour and registration, through the importer's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memberops.access.rules import Role
from memberops.wiring import Services

from .test_api_support import Api, error_of, order, start_api


@pytest.fixture
def api(services: Services) -> Api:
    return start_api(services)


def event(kind: str, attributes: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": kind,
        "occurred_at": "2026-03-03T20:15:00+08:00",
        "field": "mini_program",
        "phone": "13800138000",
        "attributes": attributes or {},
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def test_share_review_and_consent_are_stored_once(api: Api) -> None:
    share = api.post("/events", event("share", {"share_id": "SH-1", "target": "product"}, external_id="E1"))
    review = api.post("/events", event("review", {"sku": "LATTE-M", "rating": 5}), role=Role.OPERATOR)
    consent = api.post("/events", event("consent", {"channel": "sms", "granted": True}))
    before = api.counts()
    share_again = api.post(
        "/events", event("share", {"share_id": "SH-1", "target": "product"}, external_id="E1")
    )
    review_again = api.post("/events", event("review", {"sku": "LATTE-M", "rating": 5}))

    assert share.status_code == 201
    assert share.json() == {
        "event_id": 1,
        "person_id": 1,
        "created": True,
        "type": "share",
        "field": "mini_program",
        "occurred_at": "2026-03-03T12:15:00Z",
    }
    assert (review.status_code, review.json()["event_id"]) == (201, 2)
    assert (consent.status_code, consent.json()["event_id"]) == (201, 3)
    assert share_again.status_code == 200
    assert share_again.json() == {**share.json(), "created": False}
    assert review_again.status_code == 200
    assert review_again.json() == {**review.json(), "created": False}
    assert api.counts() == before
    assert (before["events"], before["consents"], before["persons"]) == (3, 1, 1)
    assert api.get("/persons/1").json()["events"] == {"consent": 1, "review": 1, "share": 1}


def test_register_then_cancel_membership(api: Api) -> None:
    registered = api.post("/events", event("register", {"store": "SH001"}, member_no="M0001"))
    cancelled = api.post(
        "/events", event("cancel_membership", {"reason": "moved"}, occurred_at="2026-04-01T10:00:00+08:00")
    )

    assert (registered.status_code, cancelled.status_code) == (201, 201)
    membership = api.get("/persons/1").json()["membership"]
    assert membership["is_member"] is False
    assert [
        (spell["member_no"], spell["status"], spell["cancelled_at"]) for spell in membership["history"]
    ] == [("M0001", "cancelled", "2026-04-01T02:00:00Z")]


#: (event, status, code, message or None when it is Pydantic's wording)
BAD_EVENTS: list[tuple[dict[str, Any], int, str, str | None]] = [
    (event("share", {"target": "product"}), 422, "invalid_record", "a share event needs attributes.share_id"),
    (event("review", {"rating": 5}), 422, "invalid_record", "a review event needs attributes.sku"),
    (
        event("review", {"sku": "A", "rating": 6}),
        422,
        "invalid_record",
        "a review event needs attributes.rating, a whole number from 1 to 5",
    ),
    (
        event("consent", {"channel": "fax", "granted": True}),
        422,
        "invalid_record",
        "a consent event needs attributes.channel, one of "
        "['call', 'email', 'push', 'sms', 'subscription', 'wecom']",
    ),
    (
        event("consent", {"channel": "sms", "granted": "yes"}),
        422,
        "invalid_record",
        "a consent event needs attributes.granted, true or false",
    ),
    (
        event("register", {"store": "SH999"}),
        422,
        "invalid_record",
        "store 'SH999' is not a known store",
    ),
    (event("dance"), 422, "invalid_record", None),
    (event("visit", field="fax"), 422, "invalid_record", "field 'fax' is not a known channel"),
    (
        event("visit", phone=None),
        422,
        "invalid_record",
        "an event needs at least one identifier (phone, unionid, openid, …)",
    ),
    (
        event("visit", unionid="bad id!"),
        422,
        "invalid_record",
        "unionid 'bad id!' has characters an id cannot have",
    ),
    (event("visit", occurred_at="2026-03-03 20:15:00"), 422, "validation_failed", None),
    (event("visit", attributes=["page"]), 422, "validation_failed", None),
    (event("share", {"share_id": "s" * 65}), 422, "validation_failed", None),
    (event("visit", {"page": "home\x00"}), 422, "validation_failed", None),
]


def test_a_bad_event_is_refused_and_nothing_changes(api: Api, subtests: pytest.Subtests) -> None:
    before = api.counts()
    for body, status, code, message in BAD_EVENTS:
        with subtests.test(msg=str(body)[:80]):
            response = api.post("/events", body)

            assert error_of(response) == (status, code)
            if message is not None:
                assert response.json()["error"]["message"] == message
            assert api.counts() == before
    nan = api.client.post(
        "/api/v1/events",
        content=b'{"type": "visit", "occurred_at": "2026-03-03T20:15:00+08:00", "field": "pos", '
        b'"phone": "13800138000", "attributes": {"score": NaN}}',
        headers={**api.headers(Role.ADMIN), "Content-Type": "application/json"},
    )
    assert error_of(nan) == (422, "validation_failed")
    assert api.counts() == before


def registration(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phone": "13800138000",
        "member_no": "M0001",
        "joined_at": "2026-03-01T09:00:00+08:00",
        "store": "SH001",
        "external_id": "REG-1",
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def test_a_registration_makes_a_member_once(api: Api) -> None:
    first = api.post("/members", registration(), role=Role.OPERATOR)
    before = api.counts()
    replay = api.post("/members", registration())

    assert first.status_code == 201
    assert first.json() == {
        "person_id": 1,
        "event_id": 1,
        "created": True,
        "membership": {
            "is_member": True,
            "member_no": "M0001",
            "joined_at": "2026-03-01T01:00:00Z",
            "join_field": "mini_program",
        },
    }
    assert replay.status_code == 200
    assert replay.json() == {**first.json(), "created": False}
    assert api.counts() == before
    assert (before["memberships"], before["events"]) == (1, 1)


def test_a_registration_without_a_time_joins_now(api: Api) -> None:
    response = api.post("/members", registration(joined_at=None, external_id=None, field="wecom"))

    assert response.status_code == 201
    membership = response.json()["membership"]
    assert membership["join_field"] == "wecom"
    joined_at = datetime.fromisoformat(membership["joined_at"])
    assert abs(joined_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_bad_registration_is_refused_and_nothing_changes(api: Api, subtests: pytest.Subtests) -> None:
    before = api.counts()
    cases = [
        (registration(store="SH999"), "invalid_record"),
        (registration(phone=None, member_no=None), "invalid_record"),
        (registration(phone="110"), "invalid_record"),
        (registration(field="fax"), "invalid_record"),
        (registration(joined_at="yesterday"), "validation_failed"),
        (registration(nickname="小王"), "validation_failed"),
    ]
    for body, code in cases:
        with subtests.test(msg=str(body)[:80]):
            assert error_of(api.post("/members", body)) == (422, code)
            assert api.counts() == before


def test_an_openid_buyer_who_registers_with_a_phone_is_one_person(api: Api) -> None:
    guest = api.post("/orders", order("MP-1", source="mini_program", phone=None, openid="oX1")).json()
    member = api.post("/members", registration(openid="oX1", member_no=None)).json()
    later = api.post("/orders", order("POS-2", phone="+86 138 0013 8000")).json()

    assert guest["person_id"] == member["person_id"] == later["person_id"] == 1
    assert api.counts()["persons"] == 1
    assert api.get("/persons/1").json()["orders_summary"] == {"count": 2, "paid": "73.60", "refunded": "0.00"}


def test_a_registration_linking_two_known_persons_merges_them(api: Api) -> None:
    by_openid = api.post("/orders", order("MP-1", source="mini_program", phone=None, openid="oX1")).json()
    by_phone = api.post("/orders", order("POS-1")).json()
    member = api.post("/members", registration(openid="oX1", member_no=None)).json()

    assert (by_openid["person_id"], by_phone["person_id"]) == (1, 2)
    assert member["person_id"] == 1
    merges = api.get("/identity/merges").json()["merges"]
    assert [(m["survivor_id"], m["absorbed_id"], m["identifier_type"]) for m in merges] == [(1, 2, "phone")]
    profile = api.get("/persons/2").json()
    assert (profile["person_id"], profile["requested_id"]) == (1, 2)
    assert profile["orders_summary"]["count"] == 2
