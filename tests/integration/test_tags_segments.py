"""Tags and segments on a hand-worked shop, on SQLite and PostgreSQL.

The shop is ``test_insight_analyses.build_shop`` (P1–P12, P7 merged into P1, as of 2026-10-31 in
Shanghai) plus what ``build_extras`` adds: tiers, a Shanghai store, a birthday, paid plans and
durian (榴莲) orders. Every expected set of persons below was worked out by hand from those rows.

RFM over the 12 months to 2026-10-31 (R days, F purchase days, M yuan), worked by hand:
P1 (6, 4, 235), P2 (11, 3, 270), P3 (24, 1, 60), P4 (0, 1, 10), P6 (28, 3, 130), P8 (91, 1, 80),
P9 (17, 1, 25), P11 (16, 4, 300), P12 (334, 1, 88); the medians (5th of 9) are R 17, F 1, M 88, so
重要价值 = {1, 2, 11}, 重要保持 = {6}, 一般发展 = {4}, 一般挽留 = {3, 8, 9, 12}.

Preferences over the same 12 months (net spend per category, yuan): every ``build_shop`` order is
``fruit``; the extras add 榴莲. P2 fruit 170 (¥200 − ¥50 + ¥20), 榴莲 100: fruit holds 170/270 ≥ ½;
P11 fruit 100 (the Nov 2 refund is after the as-of date), 榴莲 200: 榴莲 holds 200/300. Everyone
else who bought prefers fruit (P1 incl. P7's order, P3, P4, P6, P8 — the refunded-in-full order is
none — P9, P12); P5 and P10 bought nothing, so they have no preference.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update

from memberops.access.rules import Role
from memberops.insight import segments, tags
from memberops.insight.language import ExpressionError, parse
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict, Forbidden, NotFound
from memberops.models import (
    AuditEntry,
    Identifier,
    Membership,
    MemberTier,
    OrderLine,
    OutboxEvent,
    PaidPlanTerm,
    ProgrammeVersion,
    Store,
)
from memberops.wiring import Services
from tests.integration.helpers import counts
from tests.integration.test_insight_analyses import AS_OF, ZONE, Shop, at, build_shop

EARLIER = date(2026, 10, 15)


def build_extras(services: Services) -> None:
    """Tiers, a store, a birthday, paid plans, durian orders and real phone numbers."""
    shop = Shop(services.engine)
    shop.order_id = 100
    # P11: 榴莲 on Sep 1 and Oct 15 (¥100 each); P2: 榴莲 on Oct 20 (¥100).
    for person_id, paid in ((11, "2026-09-01 12:00"), (11, "2026-10-15 12:00"), (2, "2026-10-20 12:00")):
        shop.order(person_id, paid, 100)
        shop.rows[OrderLine][-1].update(category="榴莲", sku="DURIAN")
    shop.write()
    now = at("2026-01-01 00:00")
    with services.engine.begin() as connection:
        connection.execute(
            insert(Store),
            [
                {
                    "id": 90,
                    "code": "SH90",
                    "name": "静安店",
                    "city": "上海",
                    "store_type": "mall",
                    "created_at": now,
                }
            ],
        )
        connection.execute(
            update(Membership).where(Membership.person_id.in_([1, 2])).values(join_store_id=90)
        )
        connection.execute(
            update(Membership).where(Membership.person_id == 2).values(birthday=date(1990, 3, 15))
        )
        connection.execute(
            insert(MemberTier),
            [
                {
                    "person_id": p,
                    "tier": tier,
                    "floor": None,
                    "since": now,
                    "growth_total": 0,
                    "gifted_tiers": [],
                    "next_evaluation_on": None,
                    "updated_at": now,
                }
                for p, tier in ((1, "gold"), (2, "silver"), (4, "standard"), (11, "gold"), (12, "gold"))
            ],
        )
        connection.execute(
            insert(ProgrammeVersion),
            [
                {
                    "id": 1,
                    "version": "v1",
                    "digest": "d1",
                    "document": {},
                    "active": True,
                    "applied_at": now,
                    "applied_by": "test",
                }
            ],
        )
        # P8 expired Jul 1; P4 active until next October; P5 ends Nov 15 (within 30 days: expiring).
        terms = (
            (8, "2026-01-01 00:00", "2026-07-01 00:00"),
            (4, "2026-10-01 00:00", "2027-10-01 00:00"),
            (5, "2026-06-01 00:00", "2026-11-15 00:00"),
        )
        connection.execute(
            insert(PaidPlanTerm),
            [
                {
                    "person_id": p,
                    "plan_code": "annual",
                    "programme_version_id": 1,
                    "kind": "purchase",
                    "follows_id": None,
                    "starts_at": at(start),
                    "ends_at": at(end),
                    "price_fen": 19900,
                    "paid_at": at(start),
                    "payment_ref": None,
                    "status": "active",
                    "actor": "test",
                    "idempotency_key": f"plan:{p}",
                    "refund_fen": None,
                    "refunded_at": None,
                    "refund_reason": None,
                    "refund_key": None,
                    "expiring_notified_at": None,
                    "created_at": at(start),
                }
                for p, start, end in terms
            ],
        )
        for person_id in (1, 2, 4, 11, 12):
            phone = f"1380000{person_id:04d}"
            connection.execute(
                update(Identifier)
                .where(Identifier.id == person_id)
                .values(ciphertext=services.vault.encrypt(phone), masked=f"138****{person_id:04d}")
            )


@pytest.fixture
def shop(services: Services) -> Services:
    build_shop(services.engine)
    build_extras(services)
    return services


def selected(services: Services, expression: str, as_of: date = AS_OF) -> list[int]:
    return sorted(tags.select_persons(services.engine, parse(expression), as_of=as_of, time_zone=ZONE))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("member", [1, 2, 4, 5, 8, 11, 12]),
        ('status = "cancelled"', [6]),
        ('member and join_date >= "2026-03-01"', [2, 5]),
        ('tier in ("gold","silver")', [1, 2, 11, 12]),
        ('tier != "gold"', [2, 4]),
        ('not tier = "gold"', [2, 3, 4, 5, 6, 8, 9, 10]),
        ('city = "上海" and birthday_month = 3', [2]),
        ('bought(category="榴莲", days=90) >= 2', [11]),
        ('tier in ("gold","silver") and bought(category="榴莲", days=90) >= 2 and not tag("投诉")', [11]),
        ("spent(days=30) >= 150", [1, 2, 11]),
        ("spent(days=30) < 50", [4, 5, 8, 9, 10, 12]),
        ("purchase_days(days=365) = 1", [3, 4, 8, 9, 12]),
        ('rfm = "重要价值"', [1, 2, 11]),
        ('rfm = "important_keep"', [6]),
        ('rfm in ("一般挽留", "general_develop")', [3, 4, 8, 9, 12]),
        ('stage = "sleeping"', [8]),
        ('stage = "new"', [2, 3, 4, 9]),
        ('layer = "koc"', [1, 2]),
        ('layer = "repurchase"', [11]),
        ('followed(field="official_account") or joined_group()', [3]),
        ("reviewed(days=30, min_rating=4) >= 1", [1, 11]),
        ("shared(days=30)", [2, 11]),
        ('visited(field="live_room")', [6, 10]),
        ('plan = "expired"', [8]),
        ('plan = "expiring"', [5]),
        ('plan = "active"', [4]),
        ("days_since_purchase > 30", [8, 12]),
        ('preferred = "榴莲"', [11]),
        ('preferred in ("榴莲", "山竹")', [11]),
        ('preferred = "fruit"', [1, 2, 3, 4, 6, 8, 9, 12]),
        ('preferred != "fruit"', [11]),
        ('not preferred = "fruit"', [5, 10, 11]),
        ('preferred = "mixed"', []),
        ('preferred = "榴莲" and tier = "gold"', [11]),
        ('preferred = "fruit" and stage = "sleeping"', [8]),
        ('preferred = "榴莲" and stage = "sleeping"', []),
    ],
)
def test_expressions_select_the_hand_worked_people(
    shop: Services, expression: str, expected: list[int]
) -> None:
    assert selected(shop, expression) == expected


def test_a_window_is_the_days_ending_on_the_as_of_date(shop: Services) -> None:
    # Sep 16 – Oct 15: P2 ¥150 + ¥20, P11 ¥45 + ¥55 + ¥100; P1 only ¥100, P6 ¥30 + ¥70.
    assert selected(shop, "spent(days=30) >= 150", EARLIER) == [2, 11]
    assert selected(shop, 'bought(category="榴莲", days=90) >= 1', EARLIER) == [11]


def test_preferred_reads_the_preferences_of_the_trailing_year(
    shop: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    more = Shop(shop.engine)
    more.order_id = 200
    bought = (
        (6, "2026-10-01 12:00", 100, "山竹"),  # P6: fruit 130, 山竹 100, 榴莲 60 — fruit 130/290 < ½
        (6, "2026-10-02 12:00", 60, "榴莲"),
        (9, "2026-10-14 13:00", 25, "山竹"),  # P9: fruit 25, 山竹 25 — the tie goes to "fruit" (sorts first)
        (12, "2025-10-31 12:00", 500, "榴莲"),  # the day before the 12 months start
        (12, "2026-11-01 10:00", 100, "山竹"),  # after the as-of date
        (10, "2026-10-05 12:00", 50, "榴莲"),  # refunded in full: P10 still bought nothing
    )
    for person_id, paid, yuan, category in bought:
        more.order(person_id, paid, yuan)
        more.rows[OrderLine][-1].update(category=category)
    more.refund(206, "2026-10-06 12:00", 50)
    more.write()

    assert selected(shop, 'preferred = "mixed"') == [6]
    assert selected(shop, 'preferred = "fruit"') == [1, 2, 3, 4, 8, 9, 12]
    assert selected(shop, 'preferred in ("榴莲", "山竹")') == [11]
    assert selected(shop, 'preferred != "fruit"') == [6, 11]
    assert selected(shop, 'not preferred = "fruit"') == [5, 6, 10, 11]
    # The brand's share: at ¾, P2 (170/270), P9 (½) and P11 (200/300) turn mixed as well.
    monkeypatch.setenv("MEMBEROPS_INSIGHT_PREFERENCE_MIN_SHARE", "3/4")
    assert selected(shop, 'preferred = "mixed"') == [2, 6, 9, 11]
    assert selected(shop, 'preferred = "fruit"') == [1, 3, 4, 8, 12]


def history_rows(services: Services, name: str) -> list[tuple[int, str, str, str]]:
    with unit_of_work(services.read_sessions) as session:
        return [
            (change.person_id, change.change, change.source, change.actor)
            for change, _ in reversed(tags.history(session, name=name))
        ]


def test_rule_tag_refresh_records_gains_and_losses(shop: Services) -> None:
    with unit_of_work(shop.sessions) as session:
        tags.define_tag(session, "big_spender", expression="spent(days=30) >= 150", actor="ops")

    [first] = tags.refresh_tags(
        shop.engine, shop.sessions, None, time_zone=ZONE, actor="nightly", as_of=AS_OF
    )
    [again] = tags.refresh_tags(
        shop.engine, shop.sessions, None, time_zone=ZONE, actor="nightly", as_of=AS_OF
    )
    [earlier] = tags.refresh_tags(
        shop.engine, shop.sessions, None, time_zone=ZONE, actor="nightly", as_of=EARLIER
    )

    assert (first.gained, first.lost, first.holders) == ((1, 2, 11), (), 3)
    assert (again.gained, again.lost, again.holders) == ((), (), 3)
    assert (earlier.gained, earlier.lost, earlier.holders) == ((), (1,), 2)
    assert history_rows(shop, "big_spender") == [
        (1, "gained", "rule", "nightly"),
        (2, "gained", "rule", "nightly"),
        (11, "gained", "rule", "nightly"),
        (1, "lost", "rule", "nightly"),
    ]
    with unit_of_work(shop.read_sessions) as session:
        assert tags.find_tag(session, "big_spender").holders == 2


def test_manual_tags_by_hand_follow_merges_and_feed_rules(shop: Services) -> None:
    with unit_of_work(shop.sessions) as session:
        tags.define_tag(session, "投诉", expression=None, actor="ops")
        tags.define_tag(
            session,
            "durian_fan",
            expression='bought(category="榴莲", days=90) >= 2 and not tag("投诉")',
            actor="ops",
        )
    tags.refresh_tags(
        shop.engine, shop.sessions, ["durian_fan"], time_zone=ZONE, actor="nightly", as_of=AS_OF
    )

    with unit_of_work(shop.sessions) as session:
        assert tags.set_by_hand(session, "投诉", 11, actor="ann", role=Role.OPERATOR, note="late delivery")
        assert not tags.set_by_hand(session, "投诉", 11, actor="ann", role=Role.OPERATOR)
        assert tags.set_by_hand(session, "投诉", 7, actor="ann", role=Role.OPERATOR)  # P7 is P1 now
    [refreshed] = tags.refresh_tags(
        shop.engine, shop.sessions, None, time_zone=ZONE, actor="nightly", as_of=AS_OF
    )
    with unit_of_work(shop.sessions) as session:
        assert tags.remove_by_hand(session, "投诉", 1, actor="bob", role=Role.ADMIN)

    assert (refreshed.name, refreshed.lost, refreshed.holders) == ("durian_fan", (11,), 0)
    with unit_of_work(shop.read_sessions) as session:
        live, held = tags.tags_of(session, 11)
        assert (live, [tag.name for tag, _ in held]) == (11, ["投诉"])
        changes = [
            (c.person_id, c.change, c.source, c.actor, c.note)
            for c, _ in reversed(tags.history(session, name="投诉"))
        ]
    assert changes == [
        (11, "gained", "manual", "ann", "late delivery"),
        (1, "gained", "manual", "ann", None),
        (1, "lost", "manual", "bob", None),
    ]


def test_rejected_tag_actions_change_nothing(shop: Services) -> None:
    with unit_of_work(shop.sessions) as session:
        tags.define_tag(session, "vip", expression=None, actor="ops")
        tags.define_tag(session, "helped", expression=None, guides_may_set=True, actor="ops")
        tags.define_tag(session, "gold", expression='tier = "gold"', actor="ops")
    before = counts(shop)

    attempts: list[tuple[type[Exception], Any]] = [
        (Forbidden, lambda s: tags.set_by_hand(s, "vip", 1, actor="g", role=Role.GUIDE)),
        (Forbidden, lambda s: tags.set_by_hand(s, "helped", 1, actor="a", role=Role.ANALYST)),
        (Conflict, lambda s: tags.set_by_hand(s, "gold", 1, actor="o", role=Role.OPERATOR)),
        (NotFound, lambda s: tags.set_by_hand(s, "vip", 999, actor="o", role=Role.OPERATOR)),
        (NotFound, lambda s: tags.set_by_hand(s, "nope", 1, actor="o", role=Role.OPERATOR)),
        (Conflict, lambda s: tags.define_tag(s, "vip", expression=None, actor="o")),
        (NotFound, lambda s: tags.define_tag(s, "x", expression='tag("nope")', actor="o")),
        (ExpressionError, lambda s: tags.define_tag(s, "y", expression="tier =", actor="o")),
        (ExpressionError, lambda s: segments.define_segment(s, "z", "bought(days=90) >= ", actor="o")),
    ]
    for error, attempt in attempts:
        with pytest.raises(error), unit_of_work(shop.sessions) as session:
            attempt(session)

    assert counts(shop) == before
    with unit_of_work(shop.sessions) as session:
        assert tags.set_by_hand(session, "helped", 4, actor="guide-1", role=Role.GUIDE)


def outbox(services: Services) -> list[tuple[str, int | None, dict[str, Any]]]:
    with unit_of_work(services.read_sessions) as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return [
            (row.topic, row.person_id, {k: v for k, v in row.payload.items() if k != "at"}) for row in rows
        ]


def test_segment_refresh_records_history_and_emits_events(shop: Services) -> None:
    expression = 'bought(category="榴莲", days=90) >= 1'
    with unit_of_work(shop.sessions) as session:
        segment_id = segments.define_segment(session, "durian", expression, refresh="daily", actor="ops").id

    [created] = segments.refresh(
        shop.engine, shop.sessions, ["durian"], time_zone=ZONE, actor="ops", as_of=AS_OF
    )
    [same] = segments.refresh(
        shop.engine, shop.sessions, ["durian"], time_zone=ZONE, actor="cron", as_of=AS_OF
    )
    [back] = segments.refresh(
        shop.engine, shop.sessions, ["durian"], time_zone=ZONE, actor="cron", as_of=EARLIER
    )

    assert (created.gained, created.lost, created.holders) == ((2, 11), (), 2)
    assert (same.gained, same.lost) == ((), ())
    assert (back.gained, back.lost, back.holders) == ((), (2,), 1)
    payload = {"segment_id": segment_id, "segment": "durian"}
    assert outbox(shop) == [
        ("segment.entered", 2, payload | {"person_id": 2}),
        ("segment.entered", 11, payload | {"person_id": 11}),
        ("segment.left", 2, payload | {"person_id": 2}),
    ]
    with unit_of_work(shop.read_sessions) as session:
        moves = [(c.person_id, c.change, c.actor) for c in reversed(segments.history(session, "durian"))]
        segment = segments.find_segment(session, "durian")
        assert segment.size == 1
        assert segment.next_refresh_at is not None and segment.refreshed_at is not None
        assert (segment.next_refresh_at - segment.refreshed_at).total_seconds() == 86_400
    assert moves == [(2, "entered", "ops"), (11, "entered", "ops"), (2, "left", "cron")]


def test_only_due_scheduled_segments_refresh(shop: Services) -> None:
    with unit_of_work(shop.sessions) as session:
        segments.define_segment(session, "members", "member", refresh="hourly", actor="ops")
        segments.define_segment(session, "by_hand", "member", refresh="manual", actor="ops")

    first = segments.refresh_due(shop.engine, shop.sessions, time_zone=ZONE, actor="cron")
    second = segments.refresh_due(shop.engine, shop.sessions, time_zone=ZONE, actor="cron")

    assert [(r.name, r.holders) for r in first] == [("members", 7)]
    assert second == []
    with unit_of_work(shop.sessions) as session:
        session.execute(text("UPDATE segments SET next_refresh_at = refreshed_at"))
        assert segments.due(session) == ["members"]


def test_export_masks_identifiers_unless_revealed_and_audits(shop: Services) -> None:
    with unit_of_work(shop.sessions) as session:
        segments.define_segment(
            session, "gold_or_silver", 'tier in ("gold", "silver") and member', actor="ops"
        )
    segments.refresh(shop.engine, shop.sessions, ["gold_or_silver"], time_zone=ZONE, actor="ops", as_of=AS_OF)

    outputs = {}
    for reveal in (False, True):
        out = io.StringIO()
        with unit_of_work(shop.sessions) as session:
            rows = segments.export_csv(
                session, "gold_or_silver", out, vault=shop.vault, reveal=reveal, actor="ann", via="test"
            )
        assert rows == 4
        outputs[reveal] = [line.split(",")[:4] for line in out.getvalue().splitlines()]

    assert outputs[False] == [
        ["person_id", "member_no", "phone", "tier"],
        ["1", "M1", "138****0001", "gold"],
        ["2", "M2", "138****0002", "silver"],
        ["11", "M11", "138****0011", "gold"],
        ["12", "M12", "138****0012", "gold"],
    ]
    assert outputs[True][1:] == [
        ["1", "M1", "13800000001", "gold"],
        ["2", "M2", "13800000002", "silver"],
        ["11", "M11", "13800000011", "gold"],
        ["12", "M12", "13800000012", "gold"],
    ]
    with unit_of_work(shop.read_sessions) as session:
        audits = [
            (a.action, a.actor, a.detail["identifiers"], a.detail["rows"])
            for a in session.scalars(
                select(AuditEntry).where(AuditEntry.action == "segment.exported").order_by(AuditEntry.id)
            )
        ]
    assert audits == [("segment.exported", "ann", "masked", 4), ("segment.exported", "ann", "clear", 4)]


def test_ready_made_segments(shop: Services) -> None:
    with shop.engine.begin() as connection:  # P8 (sleeping: last purchase 91 days ago) turns Gold
        connection.execute(
            insert(MemberTier),
            [
                {
                    "person_id": 8,
                    "tier": "gold",
                    "floor": None,
                    "since": at("2026-01-01 00:00"),
                    "growth_total": 0,
                    "gifted_tiers": [],
                    "next_evaluation_on": None,
                    "updated_at": at("2026-01-01 00:00"),
                }
            ],
        )
    with unit_of_work(shop.sessions) as session:
        defined = [s.name for s in segments.define_ready_made(session, actor="demo")]
        again = segments.define_ready_made(session, actor="demo")
    results = segments.refresh(shop.engine, shop.sessions, defined, time_zone=ZONE, actor="demo", as_of=AS_OF)

    assert again == []
    # Sleeping Gold: of the Gold members P1 and P11 are active, P12 is churned (334 days is more
    # than 6 cycles of 30), P8 sleeps (91 days: 2 to 6 cycles). One-time buyers: members with one
    # purchase day in a year (P4, P8, P12). Expired plans: P8. KOC candidates: P1 (reviewed 5★),
    # P2 and P11 (shared), all with 2+ purchase days in 90 days.
    assert {r.name: sorted(r.gained) for r in results} == {
        "sleeping_gold": [8],
        "one_time_buyers": [4, 8, 12],
        "expired_paid_plan": [8],
        "koc_candidates": [1, 2, 11],
    }
