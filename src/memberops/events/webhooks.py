"""Webhook subscriptions and the dispatcher that delivers outbox events to them, signed and retried.

The dispatcher never holds a transaction open across an HTTP call. It works in three steps:

1. **claim** (one short transaction): lock due pending deliveries — ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so concurrent dispatchers take disjoint rows without waiting; SQLite has a single
   writer (``BEGIN IMMEDIATE``) — count the attempt and push ``next_attempt_at`` out by a lease;
2. **post** each claimed event, outside any transaction, so a slow receiver holds no lock, no
   pooled connection, and on SQLite does not block every other writer;
3. **record** each outcome in its own short transaction: delivered, retry at the policy's time,
   or dead after the last attempt.

If a dispatcher dies after claiming, its lease runs out and another one picks the delivery up:
delivery is at least once, and receivers drop repeats by the ``Idempotency-Key`` header (the event
id). ``attempts`` is the fencing token: an outcome is recorded only if the row still carries the
attempt number that was claimed, so a dispatcher that outlived its lease cannot overwrite the
outcome of the one that took over. Keep ``lease`` above ``limit`` × the client's timeout.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from memberops.access.service import audit
from memberops.events.rules import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    delivery_headers,
    event_body,
    failure_text,
    is_success,
    pattern_rejection_reason,
    signature_header,
)
from memberops.kit.clock import utc_now
from memberops.kit.crypto import IdentifierVault
from memberops.kit.db import unit_of_work
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from memberops.models.outbox import DELIVERY_DEAD, DELIVERY_DELIVERED, DELIVERY_PENDING

#: How long a claimed delivery is reserved for the dispatcher that claimed it.
DEFAULT_LEASE = timedelta(minutes=15)
#: Deliveries claimed per round; with the 10 s client timeout a round fits well inside the lease.
DEFAULT_BATCH = 50
#: Seconds the stdlib client waits for a receiver.
DEFAULT_TIMEOUT = 10.0
_MIN_SECRET_LENGTH = 16
_ABANDONED = "no outcome was recorded for the last attempt (the dispatcher stopped or timed out)"


class HttpResponse(Protocol):
    """What the dispatcher reads of a response (``httpx.Response`` has it)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...


class HttpClient(Protocol):
    """Anything that can POST bytes: ``httpx.Client`` (tests use its ``MockTransport``) or ``UrllibClient``.

    A protocol, because httpx is only a development dependency of memberops.
    """

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> HttpResponse: ...


class DispatchServices(Protocol):
    """What the dispatcher needs of the wired services (``memberops.wiring.Services`` has it)."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def vault(self) -> IdentifierVault: ...


@dataclass(frozen=True)
class UrllibResponse:
    """A response read by ``UrllibClient``."""

    status_code: int
    text: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is reported as the 3xx it is, never followed with the payload


class UrllibClient:
    """A dependency-free HTTP client for the dispatcher: POSTs, reads the status, never follows redirects."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> UrllibResponse:
        """POST ``content`` to ``url``; an HTTP error status is a response, a network error raises."""
        # Only http(s) URLs reach here: subscriptions are validated when added.
        request = urllib.request.Request(url, data=content, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return UrllibResponse(response.status, response.read(4096).decode(errors="replace"))
        except urllib.error.HTTPError as error:
            body = error.read(4096).decode(errors="replace") if error.fp else ""
            return UrllibResponse(error.code, body)


# --- subscriptions ---------------------------------------------------------------------------


def _url_rejection_reason(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"webhook URL {url!r} must be an absolute http:// or https:// URL"
    if len(url) > 2000:
        return "a webhook URL must be at most 2,000 characters"
    return None


def add_subscription(
    session: Session,
    vault: IdentifierVault,
    *,
    name: str,
    url: str,
    topics: Sequence[str],
    secret: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> tuple[WebhookSubscription, str]:
    """Subscribe ``url`` to ``topics``; return the subscription and its signing secret in clear.

    Without ``secret`` a random one is made; the caller shows it once to whoever runs the
    receiver. It is stored encrypted (see ``WebhookSubscription``). Events emitted from now on are
    delivered; earlier ones are not (see ``memberops.events.outbox``).
    """
    name = name.strip()
    patterns = [pattern.strip() for pattern in topics if pattern.strip()]
    if not name or len(name) > 100:
        raise ValidationFailed("a webhook needs a name of at most 100 characters")
    reason = _url_rejection_reason(url)
    if reason is not None:
        raise ValidationFailed(reason)
    if not patterns:
        raise ValidationFailed("a webhook needs at least one topic pattern, e.g. points.*")
    for pattern in patterns:
        reason = pattern_rejection_reason(pattern)
        if reason is not None:
            raise ValidationFailed(reason)
    if secret is not None and len(secret) < _MIN_SECRET_LENGTH:
        raise ValidationFailed(f"a webhook secret must be at least {_MIN_SECRET_LENGTH} characters")
    if session.scalar(select(WebhookSubscription.id).where(WebhookSubscription.name == name)) is not None:
        raise Conflict(f"a webhook called {name!r} already exists")
    secret = secret or secrets.token_urlsafe(32)
    subscription = WebhookSubscription(
        name=name,
        url=url,
        secret_ciphertext=vault.encrypt(secret),
        topics=patterns,
        active=True,
        created_at=now or utc_now(),
    )
    session.add(subscription)
    session.flush()
    audit(
        session,
        actor,
        "webhook.added",
        "webhook_subscription",
        str(subscription.id),
        {"name": name, "url": url, "topics": patterns},
    )
    return subscription, secret


def subscription_secret(vault: IdentifierVault, subscription: WebhookSubscription) -> str:
    """Return the clear signing secret of ``subscription``."""
    return vault.decrypt(subscription.secret_ciphertext)


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    """Return every subscription, oldest first."""
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def delivery_counts(session: Session) -> dict[int, dict[str, int]]:
    """Return, per subscription id, how many of its deliveries are in each status."""
    rows = session.execute(
        select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count()).group_by(
            WebhookDelivery.subscription_id, WebhookDelivery.status
        )
    )
    counts: dict[int, dict[str, int]] = {}
    for subscription_id, status, count in rows:
        counts.setdefault(int(subscription_id), {})[str(status)] = int(count)
    return counts


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that ran out of attempts, with what an operator needs to decide on it."""

    delivery_id: int
    subscription: str
    url: str
    event_id: int
    topic: str
    attempts: int
    last_status_code: int | None
    last_error: str | None


def dead_deliveries(session: Session, *, limit: int = 100) -> list[DeadLetter]:
    """Return up to ``limit`` dead deliveries, oldest first."""
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookSubscription.name,
            WebhookSubscription.url,
            WebhookDelivery.event_id,
            OutboxEvent.topic,
            WebhookDelivery.attempts,
            WebhookDelivery.last_status_code,
            WebhookDelivery.last_error,
        )
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.status == DELIVERY_DEAD)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    return [DeadLetter(*row) for row in rows]


def redeliver(
    session: Session, delivery_id: int, *, actor: str, now: datetime | None = None
) -> WebhookDelivery:
    """Requeue a dead delivery: pending, due now, with a fresh set of attempts. Never commits.

    Only dead ones: a pending one is already queued, and a delivered one was acknowledged.
    """
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    if delivery.status != DELIVERY_DEAD:
        raise Conflict(f"webhook delivery {delivery_id} is {delivery.status}, not dead")
    delivery.status = DELIVERY_PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now or utc_now()
    audit(session, actor, "webhook.redelivered", "webhook_delivery", str(delivery_id), {})
    return delivery


# --- the dispatcher ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    attempt: int
    url: str
    secret: str
    event_id: int
    topic: str
    body: bytes


@dataclass(frozen=True)
class DispatchReport:
    """What one ``deliver_due`` round did: deliveries acknowledged, rescheduled, and given up."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    @property
    def handled(self) -> int:
        """How many deliveries the round settled one way or another (0: nothing was due)."""
        return self.delivered + self.retrying + self.dead


def _claim(
    session: Session, vault: IdentifierVault, now: datetime, limit: int, policy: RetryPolicy, lease: timedelta
) -> tuple[list[_Claim], int]:
    """Lock up to ``limit`` due deliveries and lease them; return the claims and how many went dead.

    A due delivery already at the last attempt is one whose final attempt never reported back:
    it is dead rather than tried beyond the policy.
    """
    due = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.status == DELIVERY_PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookSubscription.active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    ).all()
    abandoned = [int(row.id) for row in due if row.attempts >= policy.max_attempts]
    claimed = [int(row.id) for row in due if row.attempts < policy.max_attempts]
    if abandoned:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(abandoned))
            .values(status=DELIVERY_DEAD, next_attempt_at=None, last_error=_ABANDONED)
        )
    if not claimed:
        return [], len(abandoned)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(claimed))
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + lease)
    )
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookSubscription.url,
            WebhookSubscription.secret_ciphertext,
            OutboxEvent.id,
            OutboxEvent.topic,
            OutboxEvent.occurred_at,
            OutboxEvent.person_id,
            OutboxEvent.payload,
        )
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(claimed))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
    )
    secrets_by_ciphertext: dict[bytes, str] = {}
    claims = []
    for delivery_id, attempt, url, ciphertext, event_id, topic, occurred_at, person_id, payload in rows:
        if ciphertext not in secrets_by_ciphertext:
            secrets_by_ciphertext[ciphertext] = vault.decrypt(ciphertext)
        claims.append(
            _Claim(
                delivery_id=delivery_id,
                attempt=attempt,
                url=url,
                secret=secrets_by_ciphertext[ciphertext],
                event_id=event_id,
                topic=topic,
                body=event_body(event_id, topic, occurred_at, person_id, payload),
            )
        )
    return claims, len(abandoned)


def _post(client: HttpClient, claim: _Claim, now: datetime) -> tuple[int | None, str | None]:
    """POST one claimed event; return (status code, error text), error None on success."""
    signature = signature_header(claim.secret, int(now.timestamp()), claim.body)
    try:
        response = client.post(
            claim.url, content=claim.body, headers=delivery_headers(claim.event_id, claim.topic, signature)
        )
    except Exception as error:  # any failure to get a response is a failed attempt, retried
        return None, failure_text(f"{type(error).__name__}: {error}")
    if is_success(response.status_code):
        return response.status_code, None
    return response.status_code, failure_text(f"HTTP {response.status_code}: {response.text}")


def _record(
    session: Session,
    claim: _Claim,
    status_code: int | None,
    error: str | None,
    now: datetime,
    policy: RetryPolicy,
) -> str | None:
    """Store the outcome of a claimed attempt; return the new status, or None if the claim was lost."""
    values: Mapping[str, Any]
    if error is None:
        values = {
            "status": DELIVERY_DELIVERED,
            "delivered_at": now,
            "next_attempt_at": None,
            "last_status_code": status_code,
            "last_error": None,
        }
    else:
        retry_at = policy.next_attempt_at(claim.attempt, now)
        values = {
            "status": DELIVERY_PENDING if retry_at else DELIVERY_DEAD,
            "next_attempt_at": retry_at,
            "last_status_code": status_code,
            "last_error": error,
        }
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claim.delivery_id,
            WebhookDelivery.status == DELIVERY_PENDING,
            WebhookDelivery.attempts == claim.attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return str(values["status"]) if result.rowcount == 1 else None  # type: ignore[attr-defined]


def deliver_due(
    services: DispatchServices,
    http_client: HttpClient,
    now: datetime,
    limit: int = DEFAULT_BATCH,
    *,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    lease: timedelta = DEFAULT_LEASE,
) -> DispatchReport:
    """Deliver up to ``limit`` due deliveries once each; commit their outcomes; report the counts.

    Owns its transactions (it is an entry point, like a CLI command): one to claim, one per
    outcome. ``now`` stamps the signatures and schedules the retries, so a test can say exactly
    when the next attempt is due.
    """
    with unit_of_work(services.sessions) as session:
        claims, abandoned = _claim(session, services.vault, now, limit, policy, lease)
    counts = {DELIVERY_DELIVERED: 0, DELIVERY_PENDING: 0, DELIVERY_DEAD: abandoned}
    for claim in claims:
        status_code, error = _post(http_client, claim, now)
        with unit_of_work(services.sessions) as session:
            status = _record(session, claim, status_code, error, now, policy)
        if status is not None:
            counts[status] += 1
    return DispatchReport(
        delivered=counts[DELIVERY_DELIVERED], retrying=counts[DELIVERY_PENDING], dead=counts[DELIVERY_DEAD]
    )
