"""Pure rules of the outbox and webhooks: topics, retries, the body and its signature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memberops.events.rules import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    delivery_headers,
    event_body,
    failure_text,
    is_success,
    matches_any,
    pattern_rejection_reason,
    sign,
    signature_header,
    signature_rejection_reason,
    topic_matches,
    topic_rejection_reason,
    verify_signature,
)

SECRET = "whsec_test_secret_0123456789"
BODY = b'{"hello":"world"}'
T = 1_700_000_000
AT_T = datetime.fromtimestamp(T, UTC)
#: Computed independently: printf '1700000000.{"hello":"world"}' | openssl dgst -sha256 -hmac "$SECRET"
EXPECTED_HEX = "d12786d8d6aa381a25aeb619c97a361aa6e18dccc979554c0189241492ab49b5"


# --- topics and patterns ---


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("points.earned", "points.earned", True),
        ("points.earned", "points.expired", False),
        ("points.*", "points.earned", True),
        ("points.*", "points.expiry.warned", True),
        ("points.*", "points", False),
        ("points.*", "pointsx.earned", False),
        ("points.*", "tier.changed", False),
        ("tier.changed.*", "tier.changed.up", True),
        ("*", "coupon.issued", True),
    ],
)
def test_topic_matching(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


def test_matches_any_pattern_of_a_subscription() -> None:
    assert matches_any(["tier.*", "points.earned"], "points.earned") is True
    assert matches_any(["tier.*", "points.earned"], "points.expired") is False
    assert matches_any([], "points.earned") is False


@pytest.mark.parametrize("topic", ["points.earned", "tier.will_downgrade", "plan.expiring", "a"])
def test_valid_topics(topic: str) -> None:
    assert topic_rejection_reason(topic) is None


@pytest.mark.parametrize(
    "topic", ["", "Points.earned", "points.", ".earned", "points..earned", "points.*", "a b"]
)
def test_invalid_topics_are_refused_with_an_example(topic: str) -> None:
    assert topic_rejection_reason(topic) == (
        f"topic {topic!r} must be dot-separated lower-case words, e.g. points.earned"
    )


def test_a_too_long_topic_is_refused() -> None:
    assert topic_rejection_reason("a" * 101) == f"topic {'a' * 20!r}… is longer than 100 characters"


@pytest.mark.parametrize("pattern", ["*", "points.*", "points.earned", "tier.changed.*"])
def test_valid_patterns(pattern: str) -> None:
    assert pattern_rejection_reason(pattern) is None


@pytest.mark.parametrize("pattern", ["points.*.x", "*.earned", "points*", "**", "", "points.**"])
def test_wildcards_other_than_a_trailing_one_are_refused(pattern: str) -> None:
    assert pattern_rejection_reason(pattern) == (
        f"topic pattern {pattern!r} must be a topic, a topic followed by .* (points.*), or *"
    )


# --- retries ---


def test_default_backoff_schedule_is_exact_and_capped_at_six_hours() -> None:
    delays = [DEFAULT_RETRY_POLICY.delay_after(n) for n in range(1, 11)]
    assert delays == [
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=6),
        timedelta(hours=6),
        timedelta(hours=6),
        None,  # the tenth failure is final
    ]
    assert DEFAULT_RETRY_POLICY.max_attempts == 10


def test_next_attempt_is_the_failure_time_plus_the_delay_and_none_when_dead() -> None:
    policy = RetryPolicy(delays=(timedelta(seconds=10), timedelta(seconds=30)), max_attempts=4)
    failed_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert policy.next_attempt_at(1, failed_at) == datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
    assert policy.next_attempt_at(2, failed_at) == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    assert policy.next_attempt_at(3, failed_at) == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    assert policy.next_attempt_at(4, failed_at) is None


def test_a_policy_without_delays_or_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one delay"):
        RetryPolicy(delays=(), max_attempts=3)
    with pytest.raises(ValueError, match="at least one delay"):
        RetryPolicy(delays=(timedelta(seconds=1),), max_attempts=0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, True), (204, True), (299, True), (301, False), (404, False), (500, False), (199, False)],
)
def test_only_2xx_acknowledges(status: int, expected: bool) -> None:
    assert is_success(status) is expected


def test_failure_text_is_one_line_and_cut_to_500_characters() -> None:
    assert failure_text("HTTP 500:\n  boom\tagain") == "HTTP 500: boom again"
    cut = failure_text("x" * 600)
    assert len(cut) == 500
    assert cut == "x" * 499 + "…"


# --- the wire format and its signature ---


def test_body_is_compact_sorted_utf8_json() -> None:
    body = event_body(
        42, "points.earned", datetime(2026, 3, 1, 12, 0, tzinfo=UTC), 7, {"points": 12, "note": "榴莲"}
    )
    assert (
        body
        == (
            '{"data":{"note":"榴莲","points":12},"id":42,"occurred_at":"2026-03-01T12:00:00+00:00",'
            '"person_id":7,"topic":"points.earned"}'
        ).encode()
    )


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    assert sign(SECRET, T, BODY) == EXPECTED_HEX
    assert signature_header(SECRET, T, BODY) == f"t={T},v1={EXPECTED_HEX}"


def test_headers_carry_signature_event_id_and_topic() -> None:
    assert delivery_headers(42, "points.earned", f"t={T},v1={EXPECTED_HEX}") == {
        "Content-Type": "application/json",
        "User-Agent": "memberops-webhooks/1",
        "Idempotency-Key": "42",
        "X-MemberOps-Topic": "points.earned",
        "X-MemberOps-Signature": f"t={T},v1={EXPECTED_HEX}",
    }


def test_verify_accepts_a_good_signature_within_tolerance_either_way() -> None:
    header = signature_header(SECRET, T, BODY)
    assert verify_signature(SECRET, header, BODY, now=AT_T) is True
    assert verify_signature(SECRET, header, BODY, now=AT_T + timedelta(minutes=5)) is True
    assert verify_signature(SECRET, header, BODY, now=AT_T - timedelta(minutes=5)) is True


def test_verify_accepts_any_of_several_signatures_for_secret_rotation() -> None:
    header = f"t={T},v1={'0' * 64},v1={EXPECTED_HEX}"
    assert signature_rejection_reason(SECRET, header, BODY, now=AT_T) is None


@pytest.mark.parametrize(
    ("secret", "header", "body", "now", "reason"),
    [
        (SECRET, f"t={T},v1={EXPECTED_HEX}", b'{"hello":"World"}', AT_T, "no signature matches the body"),
        (
            "another-secret-0123456789",
            f"t={T},v1={EXPECTED_HEX}",
            BODY,
            AT_T,
            "no signature matches the body",
        ),
        (SECRET, f"t={T + 1},v1={EXPECTED_HEX}", BODY, AT_T, "no signature matches the body"),
        (
            SECRET,
            f"t={T},v1={EXPECTED_HEX}",
            BODY,
            AT_T + timedelta(seconds=301),
            "the signature timestamp is outside the tolerance",
        ),
        (
            SECRET,
            f"t={T},v1={EXPECTED_HEX}",
            BODY,
            AT_T - timedelta(seconds=301),
            "the signature timestamp is outside the tolerance",
        ),
        (SECRET, f"v1={EXPECTED_HEX}", BODY, AT_T, "the signature header has no timestamp (t=…)"),
        (SECRET, f"t=abc,v1={EXPECTED_HEX}", BODY, AT_T, "the signature header has no timestamp (t=…)"),
        (SECRET, f"t={T},v0={EXPECTED_HEX}", BODY, AT_T, "the signature header has no v1= signature"),
        (SECRET, "", BODY, AT_T, "the signature header has no timestamp (t=…)"),
    ],
)
def test_verify_refuses_with_a_reason(
    secret: str, header: str, body: bytes, now: datetime, reason: str
) -> None:
    assert signature_rejection_reason(secret, header, body, now=now) == reason
    assert verify_signature(secret, header, body, now=now) is False


def test_tolerance_is_configurable() -> None:
    header = signature_header(SECRET, T, BODY)
    later = AT_T + timedelta(seconds=61)
    assert verify_signature(SECRET, header, BODY, now=later, tolerance=timedelta(seconds=60)) is False
    assert verify_signature(SECRET, header, BODY, now=later, tolerance=timedelta(seconds=61)) is True
