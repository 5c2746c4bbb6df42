"""Coupons, rewards, paid plans and birthday gifts on SQLite and PostgreSQL, with exact values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from memberops.kit.errors import Conflict, NotFound
from memberops.loyalty import benefit_service, coupon_service, plan_service, reward_service
from memberops.loyalty.coupon_service import IssueRequest
from memberops.loyalty.coupons import code_rejection_reason, format_code
from memberops.loyalty.ledger import InsufficientPoints
from memberops.models import Coupon, CouponRedemption, Membership, PaidPlanTerm, RewardRedemption
from memberops.wiring import Services

from .offers_support import (
    NOW,
    SHANGHAI,
    balance,
    coupon_states,
    give_points,
    member,
    read,
    set_tier,
    setup_programme,
    snapshot,
    topics,
    write,
)


@pytest.fixture
def svc(services: Services) -> Services:
    setup_programme(services)
    return services


def issue(
    svc: Services, persons: list[int], template: str, *, key: str = "k1", count: int = 1, at: datetime = NOW
):
    return write(
        svc,
        lambda s: coupon_service.issue_coupons(
            s,
            persons,
            [IssueRequest(template, count)],
            key=key,
            reason="test",
            actor="op",
            time_zone=SHANGHAI,
            now=at,
        ),
    )


# --- Issuing -------------------------------------------------------------------------------------


def test_one_coupon_is_issued_with_a_checked_code_and_its_window(svc: Services) -> None:
    ann = member(svc, "13800000001")

    outcome = issue(svc, [ann], "welcome_5")

    [coupon] = outcome.created
    assert code_rejection_reason(coupon.code) is None
    assert (coupon.person_id, coupon.template_code, coupon.status, coupon.external) == (
        ann,
        "welcome_5",
        "issued",
        False,
    )
    assert (coupon.valid_from, coupon.valid_until) == (NOW, datetime(2026, 4, 8, 16, 0, tzinfo=UTC))
    assert coupon.idempotency_key == f"k1|{ann}|welcome_5|1"
    assert topics(svc)[-1] == "coupon.issued"


def test_replaying_an_issue_changes_nothing(svc: Services) -> None:
    ann = member(svc, "13800000001")
    first = issue(svc, [ann], "welcome_5")
    before = snapshot(svc)

    again = issue(svc, [ann], "welcome_5")

    assert again.created == []
    assert [c.id for c in again.replayed] == [c.id for c in first.created]
    assert snapshot(svc) == before


def test_a_bulk_issue_reports_unknown_persons_and_resumes_with_its_key(svc: Services) -> None:
    ann, bob = member(svc, "13800000001"), member(svc, "13800000002")

    first = issue(svc, [ann, 999], "repurchase_10", key="spring", count=2)
    resumed = issue(svc, [ann, bob, 999], "repurchase_10", key="spring", count=2)

    assert first.unknown_persons == [999]
    assert len(first.created) == 2
    assert (len(resumed.created), len(resumed.replayed)) == (2, 2)
    assert sorted(c.person_id for c in resumed.coupons) == [ann, ann, bob, bob]
    assert len({c.code for c in resumed.coupons}) == 4


def test_a_key_reused_for_another_template_is_refused_and_changes_nothing(svc: Services) -> None:
    ann = member(svc, "13800000001")
    issue(svc, [ann], "welcome_5", key="k")
    before = snapshot(svc)

    with pytest.raises(Conflict, match="was used to issue something else"):
        issue(svc, [ann], "repurchase_10", key="k")

    assert snapshot(svc) == before


def test_a_pack_issues_each_template_of_it(svc: Services) -> None:
    ann = member(svc, "13800000001")

    outcome = write(
        svc,
        lambda s: coupon_service.issue_pack(
            s, [ann], "gold_welcome_pack", key="p", reason="upgrade", actor="op", time_zone=SHANGHAI, now=NOW
        ),
    )

    assert sorted(c.template_code for c in outcome.created) == ["durian_15_off", "gold_50", "gold_50"]
    assert {c.pack_code for c in outcome.created} == {"gold_welcome_pack"}


def test_a_template_whose_window_is_over_cannot_be_issued(svc: Services) -> None:
    ann = member(svc, "13800000001")
    before = snapshot(svc)

    with pytest.raises(Conflict, match='"cherry_618" was valid until 2026-06-18'):
        issue(svc, [ann], "cherry_618", at=datetime(2026, 7, 1, tzinfo=UTC))
    with pytest.raises(NotFound, match='no coupon template "nope"'):
        issue(svc, [ann], "nope")

    assert snapshot(svc) == before


# --- Importing marketplace vouchers --------------------------------------------------------------

VOUCHERS = """code,template,phone,buyer_id
TB-0001,welcome_5,13900000001,
TB-0002,welcome_5,,tb_buyer_7
TB-0003,nope,13900000003,
TB-0004,welcome_5,,
TB-0001,welcome_5,13900000005,
TB-0006,welcome_5,123,
"""


def test_imported_codes_bring_their_buyers_into_the_programme(svc: Services) -> None:
    outcome = write(
        svc,
        lambda s: coupon_service.import_external_codes(
            s, svc.ingest, VOUCHERS, channel="tmall", actor="op", time_zone=SHANGHAI, now=NOW
        ),
    )

    assert (outcome.rows, outcome.imported, outcome.duplicates) == (6, 2, 0)
    assert [(r.line, r.reason) for r in outcome.rejected] == [
        (4, 'the programme 2026.1 has no coupon template "nope"'),
        (5, "a row needs the buyer's phone or buyer_id"),
        (6, "code 'TB-0001' appears twice in the file"),
        (7, outcome.rejected[3].reason),
    ]
    assert "phone" in outcome.rejected[3].reason
    coupons = read(svc, lambda s: list(s.scalars(select(Coupon).order_by(Coupon.id))))
    assert [(c.code, c.external, c.source) for c in coupons] == [
        ("TB-0001", True, "import"),
        ("TB-0002", True, "import"),
    ]
    members = read(svc, lambda s: s.scalars(select(Membership.join_field).order_by(Membership.id)).all())
    assert members == ["tmall", "tmall"]

    again = write(
        svc,
        lambda s: coupon_service.import_external_codes(
            s,
            svc.ingest,
            VOUCHERS,
            channel="tmall",
            actor="op",
            time_zone=SHANGHAI,
            now=NOW + timedelta(hours=1),
        ),
    )
    assert (again.imported, again.duplicates, len(again.rejected)) == (0, 2, 4)
    assert len(coupon_states(svc)) == 2


# --- Redeeming, voiding, expiring ----------------------------------------------------------------


def redeem(svc: Services, reference: str, key: str = "r1", **fields: object) -> coupon_service.Redeemed:
    return write(
        svc, lambda s: coupon_service.redeem_coupon(s, reference, key=key, actor="till", now=NOW, **fields)
    )


def test_a_coupon_is_redeemed_once_by_its_code_typed_any_way(svc: Services) -> None:
    ann = member(svc, "13800000001")
    [coupon] = issue(svc, [ann], "welcome_5").created

    used = redeem(svc, format_code(coupon.code).lower(), channel="pos", order_ref="POS-1", person_id=ann)
    replay = redeem(svc, coupon.code)
    before = snapshot(svc)

    assert (used.created, used.coupon.status, used.redemption.discount_fen) == (True, "redeemed", 500)
    assert (replay.created, replay.redemption.id) == (False, used.redemption.id)
    with pytest.raises(
        Conflict, match=f"coupon {coupon.id} cannot be redeemed: coupon {coupon.id} is redeemed"
    ):
        redeem(svc, coupon.code, key="r2")
    assert snapshot(svc) == before


def test_a_coupon_is_refused_outside_its_channels_and_for_another_member(svc: Services) -> None:
    ann, bob = member(svc, "13800000001"), member(svc, "13800000002")
    june = datetime(2026, 6, 5, 2, 0, tzinfo=UTC)
    [cherry] = issue(svc, [ann], "cherry_618", at=june).created
    before = snapshot(svc)

    with pytest.raises(Conflict, match="only in mini_program, pos, not in tmall"):
        write(
            svc,
            lambda s: coupon_service.redeem_coupon(
                s, f"#{cherry.id}", key="x", actor="t", channel="tmall", now=june
            ),
        )
    with pytest.raises(Conflict, match=f"coupon {cherry.id} is not held by person {bob}"):
        write(
            svc,
            lambda s: coupon_service.redeem_coupon(
                s, cherry.code, key="y", actor="t", person_id=bob, now=june
            ),
        )
    with pytest.raises(Conflict, match="is valid from 2026-05-31T16:00:00"):
        redeem(svc, cherry.code, key="z")  # at NOW, in March
    assert snapshot(svc) == before


def test_a_void_coupon_cannot_be_used_and_voiding_twice_changes_nothing(svc: Services) -> None:
    ann = member(svc, "13800000001")
    [coupon] = issue(svc, [ann], "welcome_5").created

    write(
        svc,
        lambda s: coupon_service.void_coupon(s, coupon.code, reason="sent by mistake", actor="op", now=NOW),
    )
    before = snapshot(svc)
    write(svc, lambda s: coupon_service.void_coupon(s, coupon.code, reason="again", actor="op", now=NOW))

    assert snapshot(svc) == before
    assert coupon_states(svc) == [(coupon.id, "welcome_5", "void")]
    with pytest.raises(Conflict, match="is void"):
        redeem(svc, coupon.code)


def test_the_expiry_job_expires_ended_coupons_and_warns_once_before(svc: Services) -> None:
    ann = member(svc, "13800000001")
    [short] = issue(svc, [ann], "repurchase_10", key="a").created  # 14 days: ends 2026-03-23 16:00 UTC
    [long] = issue(svc, [ann], "welcome_5", key="b").created  # 30 days
    run = lambda at: write(svc, lambda s: coupon_service.expire_coupons(s, now=at))  # noqa: E731

    assert run(datetime(2026, 3, 20, 15, 59, tzinfo=UTC)) == coupon_service.ExpiryReport(0, 0)
    assert run(datetime(2026, 3, 20, 16, 0, tzinfo=UTC)) == coupon_service.ExpiryReport(0, 1)
    assert run(datetime(2026, 3, 21, tzinfo=UTC)) == coupon_service.ExpiryReport(0, 0)
    assert run(datetime(2026, 3, 23, 16, 0, tzinfo=UTC)) == coupon_service.ExpiryReport(1, 0)
    assert coupon_states(svc) == [(short.id, "repurchase_10", "expired"), (long.id, "welcome_5", "issued")]
    assert topics(svc).count("coupon.expiring") == 1
    assert topics(svc).count("coupon.expired") == 1


# --- Rewards -------------------------------------------------------------------------------------


def redeem_reward(svc: Services, person: int, reward: str, key: str = "rw1") -> reward_service.RewardOutcome:
    return write(
        svc,
        lambda s: reward_service.redeem_reward(
            s, person, reward, key=key, actor="app", time_zone=SHANGHAI, now=NOW
        ),
    )


def test_a_reward_spends_its_points_takes_stock_and_grants_its_coupon(svc: Services) -> None:
    ann = member(svc, "13800000001")
    give_points(svc, ann, 100)

    outcome = redeem_reward(svc, ann, "voucher_20")
    before = snapshot(svc)
    replay = redeem_reward(svc, ann, "voucher_20")

    assert outcome.created and not replay.created
    assert balance(svc, ann) == 80
    assert (outcome.redemption.points_price, outcome.redemption.status) == (20, "redeemed")
    assert coupon_states(svc) == [(outcome.redemption.coupon_id, "voucher_20", "issued")]
    assert snapshot(svc) == before
    catalogue = read(svc, lambda s: {i.code: i for i in reward_service.catalogue(s, person_id=ann, now=NOW)})
    assert (catalogue["voucher_20"].redeemed_by_member, catalogue["voucher_20"].rejection) == (1, None)
    assert catalogue["durian_gift_box"].rejection == '"金枕榴莲礼盒" is for 金卡 Gold members only'
    assert catalogue["fruit_knife"].stock_left == 500


def test_a_reward_beyond_the_balance_is_refused_and_changes_nothing(svc: Services) -> None:
    ann = member(svc, "13800000001")
    give_points(svc, ann, 19)
    before = snapshot(svc)

    with pytest.raises(InsufficientPoints):
        redeem_reward(svc, ann, "voucher_20")

    assert snapshot(svc) == before


def test_tier_and_per_member_limits(svc: Services) -> None:
    ann, gold = member(svc, "13800000001"), member(svc, "13800000002")
    give_points(svc, ann, 1000)
    give_points(svc, gold, 1000)
    set_tier(svc, gold, "gold")
    before = snapshot(svc)

    with pytest.raises(Conflict, match="is for 金卡 Gold members only"):
        redeem_reward(svc, ann, "durian_gift_box")
    assert snapshot(svc) == before

    redeem_reward(svc, gold, "durian_gift_box", key="g1")
    with pytest.raises(Conflict, match="can be redeemed once per member"):
        redeem_reward(svc, gold, "durian_gift_box", key="g2")
    assert balance(svc, gold) == 800


def test_cancelling_a_redemption_puts_points_and_stock_back(svc: Services) -> None:
    ann = member(svc, "13800000001")
    give_points(svc, ann, 100)
    knife = redeem_reward(svc, ann, "fruit_knife").redemption
    voucher = redeem_reward(svc, ann, "voucher_5", key="rw2").redemption

    cancel = lambda rid: write(  # noqa: E731
        svc, lambda s: reward_service.cancel_redemption(s, rid, reason="changed mind", actor="cs", now=NOW)
    )
    assert cancel(knife.id).created
    assert cancel(voucher.id).created
    before = snapshot(svc)
    assert not cancel(knife.id).created

    assert snapshot(svc) == before
    assert balance(svc, ann) == 100
    stock = read(
        svc,
        lambda s: dict(
            s.execute(
                select(reward_service.RewardStock.reward_code, reward_service.RewardStock.redeemed)
            ).all()
        ),
    )
    assert stock == {"fruit_knife": 0, "voucher_5": 0}
    assert coupon_states(svc) == [(voucher.coupon_id, "voucher_5", "void")]
    redeem_reward(svc, ann, "fruit_knife", key="rw3")  # the limit counts live redemptions only


def test_a_redemption_whose_coupon_was_used_cannot_be_cancelled(svc: Services) -> None:
    ann = member(svc, "13800000001")
    give_points(svc, ann, 100)
    voucher = redeem_reward(svc, ann, "voucher_5").redemption
    redeem(svc, f"#{voucher.coupon_id}")
    before = snapshot(svc)

    with pytest.raises(Conflict, match="the coupon this redemption granted has been used on an order"):
        write(svc, lambda s: reward_service.cancel_redemption(s, voucher.id, reason="x", actor="cs", now=NOW))

    assert snapshot(svc) == before
    assert read(svc, lambda s: s.get(RewardRedemption, voucher.id).status) == "redeemed"  # type: ignore[union-attr]


# --- Paid plans ----------------------------------------------------------------------------------


def buy(svc: Services, person: int, plan: str, key: str, at: datetime, renewal_only: bool = False):
    return write(
        svc,
        lambda s: plan_service.buy_plan(
            s, person, plan, key=key, actor="app", time_zone=SHANGHAI, now=at, renewal_only=renewal_only
        ),
    )


def refund_plan(svc: Services, person: int, key: str, at: datetime, term_id: int | None = None):
    return write(
        svc,
        lambda s: plan_service.refund_plan(
            s, person, key=key, reason="asked", actor="cs", time_zone=SHANGHAI, now=at, term_id=term_id
        ),
    )


def test_a_purchase_starts_now_and_ends_when_the_same_day_begins_months_later(svc: Services) -> None:
    ann = member(svc, "13800000001")

    bought = buy(svc, ann, "half_year", "b1", NOW)

    term = bought.term
    assert (term.kind, term.starts_at, term.ends_at, term.price_fen) == (
        "purchase",
        NOW,
        datetime(2026, 9, 9, 16, 0, tzinfo=UTC),
        9900,
    )
    assert (bought.status.status, bought.status.plan_code) == ("active", "half_year")
    assert sorted(t for _, t, _ in coupon_states(svc)) == [
        "repurchase_10",
        "repurchase_10",
        "welcome_5",
        "welcome_5",
    ]
    assert "plan.purchased" in topics(svc)
    before = snapshot(svc)
    assert not buy(svc, ann, "half_year", "b1", NOW).created
    assert snapshot(svc) == before


def test_renewals_extend_from_the_current_end_and_in_grace_from_the_old_end(svc: Services) -> None:
    ann = member(svc, "13800000001")
    buy(svc, ann, "half_year", "b1", NOW)

    early = buy(svc, ann, "annual", "b2", datetime(2026, 8, 1, tzinfo=UTC), renewal_only=True).term
    assert (early.kind, early.starts_at, early.ends_at) == (
        "renewal",
        datetime(2026, 9, 9, 16, 0, tzinfo=UTC),
        datetime(2027, 9, 9, 16, 0, tzinfo=UTC),
    )
    assert len(coupon_states(svc)) == 4  # no second welcome gift for a renewal

    status = lambda at: read(svc, lambda s: plan_service.plan_status_of(s, ann, time_zone=SHANGHAI, at=at))  # noqa: E731
    assert status(datetime(2027, 9, 2, 15, 59, tzinfo=UTC)).status == "active"
    assert status(datetime(2027, 9, 2, 16, 0, tzinfo=UTC)).status == "expiring"
    late = status(datetime(2027, 9, 12, tzinfo=UTC))
    assert (late.status, late.in_grace, late.grace_ends_at) == (
        "expired",
        True,
        datetime(2027, 9, 16, 16, 0, tzinfo=UTC),
    )

    in_grace = buy(svc, ann, "annual", "b3", datetime(2027, 9, 15, tzinfo=UTC), renewal_only=True).term
    assert (in_grace.kind, in_grace.starts_at) == ("renewal", datetime(2027, 9, 9, 16, 0, tzinfo=UTC))
    after_grace = buy(svc, ann, "annual", "b4", datetime(2028, 10, 1, tzinfo=UTC)).term
    assert (after_grace.kind, after_grace.starts_at) == ("purchase", datetime(2028, 10, 1, tzinfo=UTC))


def test_renewing_without_a_plan_is_refused(svc: Services) -> None:
    ann = member(svc, "13800000001")
    before = snapshot(svc)

    with pytest.raises(Conflict, match="no paid plan to renew"):
        buy(svc, ann, "annual", "b1", NOW, renewal_only=True)

    assert snapshot(svc) == before


def test_refunds_are_full_within_seven_days_then_pro_rata(svc: Services) -> None:
    ann, bob = member(svc, "13800000001"), member(svc, "13800000002")
    buy(svc, ann, "half_year", "a", NOW)
    buy(svc, bob, "half_year", "b", NOW)

    full = refund_plan(svc, ann, "ra", NOW + timedelta(days=6))
    pro_rata = refund_plan(svc, bob, "rb", datetime(2026, 4, 1, 2, 0, tzinfo=UTC))

    assert (full.refund.amount_fen, full.refund.rule) == (9900, "full")  # type: ignore[union-attr]
    assert (pro_rata.refund.amount_fen, pro_rata.refund.rule, pro_rata.refund.days_left) == (
        8662,
        "pro_rata",
        161,
    )  # type: ignore[union-attr]
    assert (full.status.status, full.term.status) == ("none", "refunded")
    assert {status for _, _, status in coupon_states(svc)} == {"void"}
    before = snapshot(svc)
    assert not refund_plan(svc, ann, "ra", NOW + timedelta(days=6)).created
    assert snapshot(svc) == before


def test_a_term_followed_by_a_renewal_is_refunded_after_it(svc: Services) -> None:
    ann = member(svc, "13800000001")
    first = buy(svc, ann, "half_year", "a", NOW).term
    buy(svc, ann, "half_year", "b", NOW + timedelta(days=1))
    before = snapshot(svc)

    with pytest.raises(Conflict, match="follows this one: refund it first"):
        refund_plan(svc, ann, "r", NOW + timedelta(days=2), term_id=first.id)

    assert snapshot(svc) == before


def test_a_refund_takes_back_the_welcome_points_still_spendable(svc: Services) -> None:
    ann = member(svc, "13800000001")
    buy(svc, ann, "annual", "a", NOW)
    assert balance(svc, ann) == 100

    refund_plan(svc, ann, "r", NOW + timedelta(days=1))

    assert balance(svc, ann) == 0


def test_the_plan_job_warns_before_the_end_and_reports_the_end_once(svc: Services) -> None:
    ann = member(svc, "13800000001")
    buy(svc, ann, "half_year", "a", NOW)

    def run(at: datetime) -> tuple[int, int]:
        report = write(svc, lambda s: plan_service.expire_plans(s, time_zone=SHANGHAI, now=at))
        return report.notified, report.expired

    assert run(datetime(2026, 9, 1, tzinfo=UTC)) == (0, 0)
    assert run(datetime(2026, 9, 3, tzinfo=UTC)) == (1, 0)
    assert run(datetime(2026, 9, 4, tzinfo=UTC)) == (0, 0)
    assert run(datetime(2026, 9, 10, tzinfo=UTC)) == (0, 1)
    assert run(datetime(2026, 9, 11, tzinfo=UTC)) == (0, 0)
    assert [t for t in topics(svc) if t.startswith("plan.")] == [
        "plan.purchased",
        "plan.expiring",
        "plan.expired",
    ]
    assert read(svc, lambda s: s.scalars(select(PaidPlanTerm.status)).all()) == ["expired"]
    statuses = read(svc, lambda s: plan_service.plan_statuses(s, [ann, 999], time_zone=SHANGHAI, at=NOW))
    assert (statuses[ann].status, statuses[999].status) == ("active", "none")


# --- Birthday gifts ------------------------------------------------------------------------------


def test_birthday_gifts_come_once_in_the_birthday_month(svc: Services) -> None:
    ann = member(svc, "13800000001", birthday="1990-03-25")
    gold = member(svc, "13800000002", birthday="1985-03-01")
    member(svc, "13800000003", birthday="1990-04-02")
    member(svc, "13800000004")
    set_tier(svc, gold, "gold")
    today = date(2026, 3, 10)

    def run() -> list[benefit_service.GiftGiven]:
        return write(
            svc,
            lambda s: benefit_service.grant_birthday_gifts(
                s,
                benefit_service.birthday_candidates(s, today),
                today=today,
                actor="job",
                time_zone=SHANGHAI,
                now=NOW,
            ),
        )

    given = run()
    before = snapshot(svc)
    again = run()

    assert [(g.person_id, g.source, g.points, len(g.coupon_ids)) for g in given] == [
        (ann, "tier:standard", 0, 1),
        (gold, "tier:gold", 100, 1),
    ]
    assert again == []
    assert snapshot(svc) == before
    assert sorted(t for _, t, _ in coupon_states(svc)) == ["birthday_10", "birthday_50"]
    assert balance(svc, gold) == 100


def test_a_birthday_is_recorded_on_the_membership(svc: Services) -> None:
    ann = member(svc, "13800000001")

    write(svc, lambda s: benefit_service.set_birthday(s, ann, date(1990, 3, 25), time_zone=SHANGHAI, now=NOW))

    assert read(svc, lambda s: s.scalars(select(Membership.birthday)).one()) == date(1990, 3, 25)
    with pytest.raises(Exception, match="cannot be in the future"):
        write(
            svc, lambda s: benefit_service.set_birthday(s, ann, date(2027, 1, 1), time_zone=SHANGHAI, now=NOW)
        )


def test_redemptions_keep_their_coupon(svc: Services) -> None:
    ann = member(svc, "13800000001")
    [coupon] = issue(svc, [ann], "welcome_5").created
    redeem(svc, coupon.code)

    rows = read(svc, lambda s: s.scalars(select(CouponRedemption)).all())
    assert [(r.coupon_id, r.released_at) for r in rows] == [(coupon.id, None)]
