"""Paid plans: terms, renewal, grace, status on an instant, refunds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from memberops.loyalty.plans import (
    PlanStatus,
    PlanTerm,
    grace_end,
    next_term,
    plan_status,
    refund_amount,
    refund_rejection_reason,
    renewal_rejection_reason,
    term_end,
)
from memberops.loyalty.programme import demo_programme

from .offer_builders import NOW, SHANGHAI

PROGRAMME = demo_programme()
#: When NOW's half-year term ends: the start of 10 September 2026 in Shanghai.
HALF_YEAR_END = datetime(2026, 9, 9, 16, 0, tzinfo=UTC)


def term(
    term_id: int = 1,
    plan: str = "half_year",
    start: datetime = NOW,
    end: datetime = HALF_YEAR_END,
    **kw: object,
) -> PlanTerm:
    fields: dict[str, object] = {"price_fen": 9900, "paid_at": start, "refunded": False}
    fields.update(kw)
    return PlanTerm(term_id, plan, start, end, **fields)  # type: ignore[arg-type]


def test_a_term_ends_when_the_same_business_day_begins_months_later() -> None:
    assert term_end(NOW, 6, SHANGHAI) == HALF_YEAR_END
    # 31 August 23:30 Shanghai + 6 months: clamped to 28 February
    assert term_end(datetime(2026, 8, 31, 15, 30, tzinfo=UTC), 6, SHANGHAI) == datetime(
        2027, 2, 27, 16, 0, tzinfo=UTC
    )
    assert grace_end(HALF_YEAR_END, 7, SHANGHAI) == datetime(2026, 9, 16, 16, 0, tzinfo=UTC)


def test_a_first_purchase_starts_now() -> None:
    new = next_term(PROGRAMME, "annual", [], NOW, SHANGHAI)

    assert (new.kind, new.starts_at, new.ends_at, new.follows_term_id) == (
        "purchase",
        NOW,
        datetime(2027, 3, 9, 16, 0, tzinfo=UTC),
        None,
    )


def test_a_renewal_continues_from_the_end_before_it_and_within_the_grace() -> None:
    current = term()
    early = next_term(PROGRAMME, "annual", [current], NOW + timedelta(days=30), SHANGHAI)
    in_grace = next_term(PROGRAMME, "half_year", [current], HALF_YEAR_END + timedelta(days=6), SHANGHAI)
    late = next_term(PROGRAMME, "half_year", [current], HALF_YEAR_END + timedelta(days=7), SHANGHAI)

    assert (early.kind, early.starts_at, early.ends_at) == (
        "renewal",
        HALF_YEAR_END,
        datetime(2027, 9, 9, 16, 0, tzinfo=UTC),
    )
    assert (in_grace.kind, in_grace.starts_at, in_grace.follows_term_id) == ("renewal", HALF_YEAR_END, 1)
    assert (late.kind, late.starts_at) == ("purchase", HALF_YEAR_END + timedelta(days=7))


def test_a_refunded_term_no_longer_counts() -> None:
    assert (
        next_term(PROGRAMME, "annual", [term(refunded=True)], NOW + timedelta(days=1), SHANGHAI).kind
        == "purchase"
    )
    assert plan_status(PROGRAMME, [term(refunded=True)], NOW, SHANGHAI) == PlanStatus("none")


def test_status_on_an_instant() -> None:
    terms = [term(1), term(2, "annual", HALF_YEAR_END, datetime(2027, 9, 9, 16, 0, tzinfo=UTC))]
    run_end = datetime(2027, 9, 9, 16, 0, tzinfo=UTC)

    assert plan_status(PROGRAMME, terms, NOW - timedelta(seconds=1), SHANGHAI) == PlanStatus("none")
    assert plan_status(PROGRAMME, terms, NOW, SHANGHAI) == PlanStatus(
        "active", "half_year", run_end, datetime(2027, 9, 16, 16, 0, tzinfo=UTC)
    )
    # within 7 days of the end of the *run*, not of the first term
    assert plan_status(PROGRAMME, terms, HALF_YEAR_END - timedelta(days=1), SHANGHAI).status == "active"
    assert plan_status(PROGRAMME, terms, run_end - timedelta(days=7), SHANGHAI).status == "expiring"
    after = plan_status(PROGRAMME, terms, run_end, SHANGHAI)
    assert (after.status, after.plan_code, after.in_grace, after.benefits_plan) == (
        "expired",
        "annual",
        True,
        None,
    )
    assert plan_status(PROGRAMME, terms, run_end + timedelta(days=7), SHANGHAI).in_grace is False
    assert (
        renewal_rejection_reason(PlanStatus("none"))
        == "the member has no paid plan to renew: buy one instead"
    )
    assert renewal_rejection_reason(after) is None


def test_refunds_full_within_seven_days_then_pro_rata_by_whole_days() -> None:
    current = term()

    assert refund_amount(current, NOW + timedelta(days=6, hours=23), SHANGHAI).amount_fen == 9900
    day_8 = refund_amount(current, NOW + timedelta(days=7), SHANGHAI)
    assert (day_8.rule, day_8.days_total, day_8.days_left, day_8.amount_fen) == ("pro_rata", 184, 176, 9469)
    last_day = refund_amount(current, HALF_YEAR_END - timedelta(hours=1), SHANGHAI)
    assert (last_day.days_left, last_day.amount_fen) == (0, 0)
    future = term(2, start=HALF_YEAR_END, end=datetime(2027, 3, 9, 16, 0, tzinfo=UTC), paid_at=NOW)
    assert refund_amount(future, NOW + timedelta(days=30), SHANGHAI).rule == "not_started"


def test_refund_rejections() -> None:
    first = term(1)
    second = term(2, start=HALF_YEAR_END, end=datetime(2027, 3, 9, 16, 0, tzinfo=UTC))

    assert refund_rejection_reason(first, [first, second], NOW) == "term 2 follows this one: refund it first"
    assert refund_rejection_reason(second, [first, second], NOW) is None
    assert refund_rejection_reason(term(refunded=True), [], NOW) == "term 1 is already refunded"
    assert refund_rejection_reason(first, [first], HALF_YEAR_END) == (
        "term 1 ended at 2026-09-09T16:00:00+00:00; there is nothing left to refund"
    )


@given(st.integers(0, 200 * 24))
def test_a_refund_never_exceeds_the_price_and_never_grows_with_time(hours: int) -> None:
    current = term()
    at = NOW + timedelta(hours=hours)
    later = at + timedelta(hours=1)

    if at < HALF_YEAR_END:
        refund = refund_amount(current, at, SHANGHAI).amount_fen
        assert 0 <= refund <= 9900
        if later < HALF_YEAR_END:
            assert refund_amount(current, later, SHANGHAI).amount_fen <= refund
