"""OneID against a real database: attach, merge, absorb, separate, undo, split (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from memberops.identity.queries import person_profile, resolve_reference
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.models import IdentityMerge, Membership
from memberops.wiring import Services
from tests.integration.helpers import counts, event, ingest, ingest_events, live_persons, order, person_of


def test_one_phone_in_three_formats_is_one_person(services: Services) -> None:
    outcomes = ingest(
        services,
        order("P1", phone="+86 138 0013 8000"),
        order("P2", phone="138-0013-8000"),
        order("P3", phone="13800138000"),
    )
    assert [o.person_id for o in outcomes] == [1, 1, 1]
    assert live_persons(services) == 1


def test_an_openid_visitor_who_registers_with_a_phone_becomes_one_person(services: Services) -> None:
    ingest(services, order("M1", source="mini_program", openid="oX1"))
    ingest(services, order("P1", phone="13800138000"))
    assert live_persons(services) == 2
    ingest_events(
        services, event("register", phone="13800138000", openid="oX1", member_no="C001", external_id="r1")
    )
    with unit_of_work(services.read_sessions) as session:
        assert person_of(session, "mini_program", "M1") == person_of(session, "pos", "P1") == 1
        merge = session.scalars(select(IdentityMerge)).one()
        assert (merge.survivor_id, merge.absorbed_id, merge.identifier_kind, merge.actor) == (
            1,
            2,
            "phone",
            "test",
        )
        assert merge.detail["identifier_ids"] == [2]
        membership = session.scalars(select(Membership)).one()
        assert (membership.person_id, membership.member_no, membership.status) == (1, "C001", "active")
    assert live_persons(services) == 1


def test_a_shared_openid_of_another_app_never_merges(services: Services) -> None:
    ingest(services, order("M1", source="mini_program", openid="oSAME", phone="13800138000"))
    ingest_events(
        services, event("follow", field="official_account", openid="oSAME", unionid="oU9", external_id="f1")
    )
    assert live_persons(services) == 2


def test_a_weak_link_does_not_merge_two_people_who_have_phones(services: Services) -> None:
    ingest(services, order("M1", source="mini_program", openid="oX1", phone="13800138000"))
    ingest(services, order("P2", phone="13900139000"))
    # a record claiming the first person's openid with the second person's phone
    ingest(services, order("M2", source="mini_program", openid="oX1", phone="13900139000"))
    assert live_persons(services) == 2
    with unit_of_work(services.read_sessions) as session:
        assert person_of(session, "mini_program", "M2") == 2
        assert session.execute(text("SELECT count(*) FROM identity_merges")).scalar_one() == 0


def test_a_chain_of_merges_in_one_batch_ends_in_one_person(services: Services) -> None:
    ingest(services, order("A", phone="13800138000"), order("B", unionid="oU1"), order("C", member_no="C9"))
    outcomes = ingest(services, order("D", phone="13800138000", unionid="oU1", member_no="C9"))
    assert outcomes[0].person_id == 1
    assert live_persons(services) == 1
    with unit_of_work(services.read_sessions) as session:
        assert [person_of(session, "pos", x) for x in "ABCD"] == [1, 1, 1, 1]
        survivors = session.execute(text("SELECT id, merged_into_id FROM persons ORDER BY id")).all()
        assert [tuple(row) for row in survivors] == [(1, None), (2, 1), (3, 1)]


def test_replaying_a_record_changes_nothing(services: Services) -> None:
    ingest(services, order("A", phone="13800138000"), order("B", unionid="oU1"))
    ingest(services, order("C", phone="13800138000", unionid="oU1"))
    before = counts(services)
    again = ingest(services, order("C", phone="13800138000", unionid="oU1"))
    assert again[0].created is False
    assert counts(services) == before


def test_merging_two_members_keeps_the_earliest_membership_and_undo_restores_it(services: Services) -> None:
    ingest_events(
        services,
        {
            **event("register", field="pos", phone="13800138000", member_no="C1", external_id="r1"),
            "occurred_at": "2026-01-01T10:00:00+08:00",
        },
        {
            **event("register", field="tmall", platform_user_id="t1", member_no="C2", external_id="r2"),
            "occurred_at": "2026-02-01T10:00:00+08:00",
        },
    )
    ingest(services, order("T1", source="tmall", platform_user_id="t1"))
    ingest(services, order("X", phone="13800138000", member_no="C2"))
    with unit_of_work(services.read_sessions) as session:
        statuses = session.execute(
            text("SELECT member_no, person_id, status FROM memberships ORDER BY id")
        ).all()
        assert [tuple(s) for s in statuses] == [("C1", 1, "active"), ("C2", 1, "merged")]
        merge_id = session.scalars(select(IdentityMerge.id)).one()
    with unit_of_work(services.sessions) as session:
        services.identity.undo_merge(session, merge_id, actor="op", reason="two sisters")
    with unit_of_work(services.read_sessions) as session:
        statuses = session.execute(
            text("SELECT member_no, person_id, status FROM memberships ORDER BY id")
        ).all()
        assert [tuple(s) for s in statuses] == [("C1", 1, "active"), ("C2", 2, "active")]
        assert person_of(session, "tmall", "T1") == 2
        assert person_of(session, "pos", "X") == 2  # attributed by its strongest identifier, card C2
        audit = session.execute(text("SELECT actor, action, subject_id FROM audit_log")).all()
        assert [tuple(a) for a in audit] == [("op", "identity.merge_undone", str(merge_id))]
    assert live_persons(services) == 2
    # the separation holds: the same bridging record does not merge them again
    ingest(services, order("Y", phone="13800138000", member_no="C2"))
    assert live_persons(services) == 2
    # undoing twice changes nothing
    before = counts(services)
    with unit_of_work(services.sessions) as session:
        services.identity.undo_merge(session, merge_id, actor="op", reason="again")
    assert counts(services) == before


def test_split_moves_identifiers_and_their_records(services: Services) -> None:
    ingest(services, order("A", phone="13800138000", unionid="oU1"), order("B", unionid="oU1"))
    with unit_of_work(services.sessions) as session:
        union_id = session.execute(text("SELECT id FROM identifiers WHERE kind = 'unionid'")).scalar_one()
        new_person = services.identity.split(session, 1, [union_id], actor="op", reason="shared WeChat")
    assert new_person == 2
    with unit_of_work(services.read_sessions) as session:
        assert person_of(session, "pos", "A") == 1  # attributed by the phone
        assert person_of(session, "pos", "B") == 2  # attributed by the unionid
    before = counts(services)
    with unit_of_work(services.sessions) as session, pytest.raises(Conflict, match="leave the person empty"):
        services.identity.split(session, 2, [union_id], actor="op", reason="x")
    with unit_of_work(services.sessions) as session, pytest.raises(ValidationFailed, match="do not belong"):
        services.identity.split(session, 1, [union_id], actor="op", reason="x")
    with unit_of_work(services.sessions) as session, pytest.raises(NotFound):
        services.identity.undo_merge(session, 999, actor="op", reason="x")
    assert counts(services) == before


def test_profile_follows_merges_and_masks_unless_revealed(services: Services) -> None:
    ingest(services, order("M1", source="mini_program", openid="oX1", amount="12.30"))
    ingest(services, order("P1", phone="13800138000", openid="oX1", app_id="mini_program", amount="7.70"))
    with unit_of_work(services.read_sessions) as session:
        assert resolve_reference(session, services.identity, "138-0013-8000") == 1
        assert resolve_reference(session, services.identity, "openid:mini_program:oX1") == 1
        assert resolve_reference(session, services.identity, "13900000000") is None
        masked = person_profile(session, services.identity, 1, reveal=False)
        clear = person_profile(session, services.identity, 1, reveal=True)
    assert masked is not None and clear is not None
    assert [i["value"] for i in masked["identifiers"]] == ["o***", "138****8000"]
    assert [i["value"] for i in clear["identifiers"]] == ["oX1", "+8613800138000"]
    assert masked["orders_summary"] == {"count": 2, "paid": "20.00", "refunded": "0.00"}
    assert [(o["source"], o["external_id"]) for o in masked["orders"]] == [
        ("pos", "P1"),
        ("mini_program", "M1"),
    ]


def test_identifiers_are_encrypted_at_rest(services: Services) -> None:
    ingest(services, order("P1", phone="13800138000"))
    with unit_of_work(services.read_sessions) as session:
        digest, ciphertext, masked = session.execute(
            text("SELECT digest, ciphertext, masked FROM identifiers")
        ).one()
    assert b"13800138000" not in bytes(ciphertext)
    assert len(bytes(digest)) == 32
    assert masked == "138****8000"
    assert services.vault.decrypt(bytes(ciphertext)) == "+8613800138000"


def test_records_of_one_batch_from_different_channels_follow_a_later_merge(services: Services) -> None:
    ingest_events(services, event("register", phone="13800138000", openid="oX1", external_id="r1"))
    outcomes = ingest_events(
        services,
        event(
            "join_group", field="group_chat", unionid="oU1", external_id="g1", attributes={"group_id": "G"}
        ),
        event("visit", openid="oX1", unionid="oU1", external_id="v1"),
    )
    assert [o.person_id for o in outcomes] == [1, 1]
    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(text("SELECT external_id, person_id FROM events ORDER BY external_id")).all()
        sources = session.execute(text("SELECT kind, source FROM identifiers ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("g1", 1), ("r1", 1), ("v1", 1)]
    assert [tuple(s) for s in sources] == [
        ("phone", "mini_program"),
        ("openid", "mini_program"),
        ("unionid", "group_chat"),
    ]
