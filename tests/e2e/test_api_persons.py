"""GET /persons, split and undo-merge: OneID as an operator sees it, with masking and audit."""

from __future__ import annotations

import pytest

from memberops.access.rules import Role
from memberops.wiring import Services

from .test_api_support import Api, error_of, order, start_api


@pytest.fixture
def api(services: Services) -> Api:
    return start_api(services)


def member(api: Api) -> None:
    """Person 1: phone (identifier 1) and card M0001 (identifier 2), a member with one order."""
    api.post(
        "/members",
        {
            "phone": "13800138000",
            "member_no": "M0001",
            "joined_at": "2026-03-01T09:00:00+08:00",
            "external_id": "R1",
        },
    )
    api.post("/orders", order("POS-1", member_no="M0001", phone=None))


def test_other_roles_see_identifiers_masked_and_leave_no_audit(api: Api, subtests: pytest.Subtests) -> None:
    member(api)
    before = api.counts()
    for role in (Role.OPERATOR, Role.ANALYST, Role.GUIDE):
        with subtests.test(msg=role.value):
            response = api.get("/persons/lookup", role=role, q="138 0013 8000")

            assert response.status_code == 200
            assert [
                (i["id"], i["type"], i["value"], i["masked"]) for i in response.json()["identifiers"]
            ] == [
                (1, "phone", "138****8000", True),
                (2, "member_no", "M***", True),
            ]
    assert api.counts() == before


def test_an_admin_sees_identifiers_in_clear_and_the_view_is_audited(api: Api) -> None:
    member(api)

    response = api.get("/persons/lookup", q="member_no:M0001")

    assert response.status_code == 200
    profile = response.json()
    assert [(i["type"], i["namespace"], i["value"], i["masked"]) for i in profile["identifiers"]] == [
        ("phone", "", "+8613800138000", False),
        ("member_no", "", "M0001", False),
    ]
    assert profile["person_id"] == 1
    assert profile["membership"]["is_member"] is True
    assert profile["membership"]["member_no"] == "M0001"
    assert profile["orders_summary"] == {"count": 1, "paid": "36.80", "refunded": "0.00"}
    assert [(o["source"], o["external_id"], o["amount"], o["store"]) for o in profile["orders"]] == [
        ("pos", "POS-1", "36.80", None)
    ]
    assert api.audit_actions()[-1] == ("admin", "person.identifiers_revealed", "1")


def test_every_reference_form_finds_the_person(api: Api, subtests: pytest.Subtests) -> None:
    member(api)
    api.post("/orders", order("MP-1", source="mini_program", member_no="M0001", phone=None, openid="oX1"))
    for reference in (
        "13800138000",
        "+86 138-0013-8000",
        "member_no:M0001",
        "M0001",
        "openid:mini_program:oX1",
        "person:1",
    ):
        with subtests.test(msg=reference):
            response = api.get("/persons/lookup", role=Role.ANALYST, q=reference)

            assert response.status_code == 200
            assert response.json()["person_id"] == 1


def test_lookups_that_find_nobody_or_cannot_be_read(api: Api, subtests: pytest.Subtests) -> None:
    member(api)
    before = api.counts()
    cases = [
        ({"q": "13900139000"}, 404, "not_found"),
        ({"q": "person:99"}, 404, "not_found"),
        ({"q": f"person:{2**70}"}, 422, "invalid_identifier"),
        ({"q": "person:abc"}, 422, "invalid_identifier"),
        ({"q": "openid:oX1"}, 422, "invalid_identifier"),
        ({"q": "!!"}, 422, "invalid_identifier"),
        ({"q": ""}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
    ]
    for params, status, code in cases:
        with subtests.test(msg=str(params)):
            assert error_of(api.get("/persons/lookup", **params)) == (status, code)
    for path, status, code in (("/persons/99", 404, "not_found"), ("/persons/0", 422, "validation_failed")):
        with subtests.test(msg=path):
            assert error_of(api.get(path)) == (status, code)
    assert error_of(api.get(f"/persons/{2**70}")) == (422, "validation_failed")
    assert api.counts() == before


def test_split_moves_identifiers_and_their_records(api: Api) -> None:
    member(api)

    response = api.post(
        "/persons/1/split", {"identifier_ids": [2], "reason": "a shared card"}, role=Role.OPERATOR
    )

    assert response.status_code == 201
    assert response.json() == {"person_id": 1, "new_person_id": 2, "identifier_ids": [2]}
    old = api.get("/persons/1").json()
    new = api.get("/persons/2").json()
    assert [i["type"] for i in old["identifiers"]] == ["phone"]
    assert [i["type"] for i in new["identifiers"]] == ["member_no"]
    assert (old["orders_summary"]["count"], new["orders_summary"]["count"]) == (0, 1)
    assert ("operator", "identity.split", "1") in api.audit_actions()


def test_refused_splits_change_nothing(api: Api, subtests: pytest.Subtests) -> None:
    member(api)
    before = api.counts()
    cases = [
        ("/persons/1/split", {"identifier_ids": [1, 2], "reason": "all"}, Role.ADMIN, 409, "conflict"),
        ("/persons/1/split", {"identifier_ids": [7], "reason": "x"}, Role.ADMIN, 422, "validation_failed"),
        ("/persons/1/split", {"identifier_ids": [], "reason": "x"}, Role.ADMIN, 422, "validation_failed"),
        ("/persons/1/split", {"identifier_ids": [2]}, Role.ADMIN, 422, "validation_failed"),
        ("/persons/9/split", {"identifier_ids": [2], "reason": "x"}, Role.ADMIN, 404, "not_found"),
        ("/persons/1/split", {"identifier_ids": [2], "reason": "x"}, Role.ANALYST, 403, "forbidden"),
    ]
    for path, body, role, status, code in cases:
        with subtests.test(msg=f"{body} as {role}"):
            assert error_of(api.post(path, body, role=role)) == (status, code)
            assert api.counts() == before


def merged(api: Api) -> None:
    """Person 1 (openid, order MP-1) absorbed person 2 (phone, order POS-1) through a registration."""
    api.post("/orders", order("MP-1", source="mini_program", phone=None, openid="oX1"))
    api.post("/orders", order("POS-1"))
    api.post("/members", {"phone": "13800138000", "openid": "oX1", "external_id": "R1"})


def test_undo_merge_gives_the_absorbed_person_back_its_records(api: Api) -> None:
    merged(api)
    assert api.get("/persons/2").json()["person_id"] == 1

    undone = api.post("/identity/merges/1/undo", {"reason": "different people"}, role=Role.OPERATOR)
    again = api.post("/identity/merges/1/undo", {"reason": "again"})

    assert undone.status_code == 200
    body = undone.json()
    assert (body["id"], body["survivor_id"], body["absorbed_id"], body["undone_by"]) == (1, 1, 2, "operator")
    assert body["undone_at"] is not None
    assert again.status_code == 200
    assert again.json() == body
    back = api.get("/persons/2").json()
    assert back["person_id"] == 2
    assert [o["external_id"] for o in back["orders"]] == ["POS-1"]
    assert [o["external_id"] for o in api.get("/persons/1").json()["orders"]] == ["MP-1"]
    assert ("operator", "identity.merge_undone", "1") in api.audit_actions()


def test_merges_are_listed_per_person(api: Api) -> None:
    merged(api)
    api.post("/orders", order("POS-9", phone="13900139000"))

    everything = api.get("/identity/merges", role=Role.ANALYST).json()["merges"]
    of_absorbed = api.get("/identity/merges", person_id=2).json()["merges"]
    of_other = api.get("/identity/merges", person_id=3).json()["merges"]

    assert [(m["id"], m["survivor_id"], m["absorbed_id"], m["undone_at"]) for m in everything] == [
        (1, 1, 2, None)
    ]
    assert of_absorbed == everything
    assert of_other == []
    assert api.get("/identity/merges", limit=0).status_code == 422
    assert error_of(api.get("/identity/merges", person_id=99)) == (404, "not_found")


def test_refused_undos_change_nothing(api: Api) -> None:
    merged(api)
    before = api.counts()

    assert error_of(api.post("/identity/merges/9/undo", {"reason": "x"})) == (404, "not_found")
    assert error_of(api.post("/identity/merges/1/undo", {"reason": ""})) == (422, "validation_failed")
    assert error_of(api.post("/identity/merges/1/undo", {"reason": "x"}, role=Role.GUIDE)) == (
        403,
        "forbidden",
    )
    assert api.counts() == before
