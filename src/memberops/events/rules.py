"""Pure rules of the outbox and webhooks: topic names and patterns, retries, the wire format, signatures.

Nothing here touches the database, the network or the clock: callers pass ``now``, so every rule
is unit-tested with exact values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Header carrying ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``.
SIGNATURE_HEADER = "X-MemberOps-Signature"
#: Header carrying the event id: the same on every retry, so a receiver can drop repeats.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Header naming the topic, so a receiver can route before parsing the body.
TOPIC_HEADER = "X-MemberOps-Topic"
SIGNATURE_SCHEME = "v1"
#: How far a signature's timestamp may be from the receiver's clock (guards against replays).
DEFAULT_TOLERANCE = timedelta(minutes=5)
#: Longest error text kept on a delivery; enough to diagnose, small enough to list.
ERROR_TEXT_LIMIT = 500

_SEGMENT = r"[a-z][a-z0-9_]*"
_TOPIC = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*$")
_MAX_TOPIC_LENGTH = 100


def topic_rejection_reason(topic: str) -> str | None:
    """Say why ``topic`` is not a valid topic name (dot-separated lower-case words), or None."""
    if len(topic) > _MAX_TOPIC_LENGTH:
        return f"topic {topic[:20]!r}… is longer than {_MAX_TOPIC_LENGTH} characters"
    if not _TOPIC.match(topic):
        return f"topic {topic!r} must be dot-separated lower-case words, e.g. points.earned"
    return None


def pattern_rejection_reason(pattern: str) -> str | None:
    """Say why ``pattern`` is not a valid subscription pattern, or None.

    A pattern is a topic (exact match), ``*`` (every topic), or a topic prefix followed by ``.*``
    (every topic below it, at any depth). Wildcards elsewhere are refused rather than guessed at.
    """
    if pattern == "*":
        return None
    prefix = pattern[:-2] if pattern.endswith(".*") else pattern
    if topic_rejection_reason(prefix) is not None:
        return f"topic pattern {pattern!r} must be a topic, a topic followed by .* (points.*), or *"
    return None


def topic_matches(pattern: str, topic: str) -> bool:
    """Return whether ``topic`` is one of those ``pattern`` subscribes to.

    ``points.*`` matches ``points.earned`` and ``points.expiry.warned`` but not ``points`` itself
    nor ``pointsx.earned``.
    """
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return topic == pattern


def matches_any(patterns: Iterable[str], topic: str) -> bool:
    """Return whether any of ``patterns`` matches ``topic``."""
    return any(topic_matches(pattern, topic) for pattern in patterns)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed delivery again, and when to give up.

    After the n-th failed attempt the next one waits ``delays[n - 1]``; past the end of ``delays``
    the last delay repeats (the cap). After ``max_attempts`` attempts the delivery is dead. No
    jitter: the schedule is exact, so operators and tests can say when the next try happens, and
    deliveries spread out anyway because events arrive at different times.
    """

    delays: tuple[timedelta, ...]
    max_attempts: int

    def __post_init__(self) -> None:
        if not self.delays or self.max_attempts < 1:
            raise ValueError("a retry policy needs at least one delay and one attempt")

    def delay_after(self, attempts: int) -> timedelta | None:
        """Return the wait after ``attempts`` failed attempts, or None when the delivery is dead."""
        if attempts >= self.max_attempts:
            return None
        return self.delays[min(attempts, len(self.delays)) - 1]

    def next_attempt_at(self, attempts: int, failed_at: datetime) -> datetime | None:
        """Return when to try again after ``attempts`` failed attempts, or None to give up."""
        delay = self.delay_after(attempts)
        return None if delay is None else failed_at + delay


#: 10 s, 30 s, 2 min, 10 min, 1 h, then every 6 h: ten attempts over about 25 hours, long enough
#: for a receiver's outage over a night and a working day, short enough that a dead letter is news.
DEFAULT_RETRY_POLICY = RetryPolicy(
    delays=(
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
    ),
    max_attempts=10,
)


def is_success(status_code: int) -> bool:
    """Return whether a receiver's status acknowledges the event (any 2xx; redirects are not followed)."""
    return 200 <= status_code < 300


def failure_text(text: str) -> str:
    """Return ``text`` cut to what a delivery keeps as its last error."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


def event_body(
    event_id: int, topic: str, occurred_at: datetime, person_id: int | None, payload: Mapping[str, Any]
) -> bytes:
    """Return the JSON body POSTed for an event: compact, keys sorted, so the bytes are reproducible."""
    envelope = {
        "id": event_id,
        "topic": topic,
        "occurred_at": occurred_at.isoformat(),
        "person_id": person_id,
        "data": payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``.

    The timestamp is inside the signed bytes, so a captured request cannot be replayed later with
    a fresh timestamp.
    """
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """Return the value of the signature header: ``t=<timestamp>,v1=<hex>``."""
    return f"t={timestamp},{SIGNATURE_SCHEME}={sign(secret, timestamp, body)}"


def delivery_headers(event_id: int, topic: str, signature: str) -> dict[str, str]:
    """Return the headers of a webhook request (the body is JSON, signed by ``signature``)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "memberops-webhooks/1",
        IDEMPOTENCY_HEADER: str(event_id),
        TOPIC_HEADER: topic,
        SIGNATURE_HEADER: signature,
    }


def _parse_signature(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == SIGNATURE_SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def signature_rejection_reason(
    secret: str, header: str, body: bytes, *, now: datetime, tolerance: timedelta = DEFAULT_TOLERANCE
) -> str | None:
    """Say why a received request's signature header does not vouch for ``body``, or None.

    For receivers. Several ``v1=`` values are accepted (a sender rotating secrets may sign with
    both); the comparison is constant-time; a timestamp further than ``tolerance`` from ``now``,
    either way, is refused so a captured request cannot be replayed.
    """
    timestamp, signatures = _parse_signature(header)
    if timestamp is None:
        return "the signature header has no timestamp (t=…)"
    if not signatures:
        return f"the signature header has no {SIGNATURE_SCHEME}= signature"
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        return "the signature timestamp is outside the tolerance"
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        return "no signature matches the body"
    return None


def verify_signature(
    secret: str, header: str, body: bytes, *, now: datetime, tolerance: timedelta = DEFAULT_TOLERANCE
) -> bool:
    """Return whether the signature header vouches for ``body`` (see ``signature_rejection_reason``)."""
    return signature_rejection_reason(secret, header, body, now=now, tolerance=tolerance) is None
