"""The transactional outbox and the webhook dispatcher, on SQLite and PostgreSQL.

Receivers are ``httpx.MockTransport`` handlers that check signatures the way a real receiver
would (``verify_signature``) and answer 401 when one does not match, so a bad signature shows up
as an undelivered event, not as a passing test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import Result
from sqlalchemy import Engine, inspect, select, text, update
from typer.testing import CliRunner

from memberops.cli import common
from memberops.cli.webhooks import webhook_app
from memberops.events import DomainEvent, emit, emit_many
from memberops.events.rules import DEFAULT_RETRY_POLICY, RetryPolicy, verify_signature
from memberops.events.webhooks import (
    DEFAULT_LEASE,
    add_subscription,
    dead_deliveries,
    deliver_due,
    redeliver,
    subscription_secret,
)
from memberops.kit import migrate
from memberops.kit.db import make_engine, unit_of_work
from memberops.kit.errors import Conflict, NotFound, ValidationFailed
from memberops.models import AuditEntry, Base, OutboxEvent, Person, WebhookDelivery, WebhookSubscription
from memberops.wiring import Services
from tests.integration.helpers import counts
from tests.integration.test_races import race

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
OCCURRED = datetime(2026, 3, 1, 3, 59, tzinfo=UTC)
SECRET = "whsec_test_secret_0123456789"
OUTBOX_TABLES = {"outbox_events", "webhook_subscriptions", "webhook_deliveries"}


class Receiver:
    """A webhook receiver: checks the signature, records what it got, answers ``status``."""

    def __init__(self, secret: str = SECRET, status: int = 200, *, now: datetime = NOW) -> None:
        self.secret = secret
        self.status = status
        self.now = now
        self.received: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.urls: list[str] = []
        self.before_answer: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if not verify_signature(self.secret, request.headers["X-MemberOps-Signature"], body, now=self.now):
            return httpx.Response(401, text="bad signature")
        with self._lock:
            self.received.append(json.loads(body))
            self.headers.append(request.headers)
            self.urls.append(str(request.url))
        if self.before_answer is not None:
            self.before_answer()
        return httpx.Response(self.status, text="down" if self.status >= 300 else "ok")

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


def subscribe(
    services: Services, name: str = "crm", topics: tuple[str, ...] = ("points.*",), **extra: Any
) -> int:
    with unit_of_work(services.sessions) as session:
        subscription, _ = add_subscription(
            session,
            services.vault,
            name=name,
            url=extra.pop("url", f"https://{name}.example/hooks"),
            topics=topics,
            secret=extra.pop("secret", SECRET),
            actor="test",
            now=NOW,
        )
        return subscription.id


def emit_one(
    services: Services, key: str = "points:entry:1", topic: str = "points.earned", **payload: Any
) -> int:
    with unit_of_work(services.sessions) as session:
        return emit(
            session, topic, payload or {"points": 12}, key=key, occurred_at=OCCURRED, now=NOW
        ).event_id


def deliveries(services: Services) -> list[WebhookDelivery]:
    with unit_of_work(services.read_sessions) as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def events(services: Services) -> list[OutboxEvent]:
    with unit_of_work(services.read_sessions) as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


# --- emitting ---


def test_emitting_the_same_key_twice_stores_one_event_and_one_delivery(services: Services) -> None:
    subscribe(services)
    with unit_of_work(services.sessions) as session:
        first = emit(
            session, "points.earned", {"points": 12}, key="points:entry:1", occurred_at=OCCURRED, now=NOW
        )
    with unit_of_work(services.sessions) as session:
        again = emit(
            session, "points.earned", {"points": 99}, key="points:entry:1", occurred_at=OCCURRED, now=NOW
        )

    assert (first.created, first.deliveries) == (True, 1)
    assert (again.event_id, again.created, again.deliveries) == (first.event_id, False, 0)
    [event] = events(services)
    assert (event.id, event.topic, event.payload, event.idempotency_key) == (
        first.event_id,
        "points.earned",
        {"points": 12},  # the first one stays
        "points:entry:1",
    )
    assert (event.occurred_at, event.created_at, event.person_id) == (OCCURRED, NOW, None)
    assert len(deliveries(services)) == 1


def test_an_event_emitted_in_a_rolled_back_transaction_leaves_nothing(services: Services) -> None:
    subscribe(services)
    before = counts(services)

    def failing_write() -> None:
        with unit_of_work(services.sessions) as session:
            emit(
                session, "points.earned", {"points": 12}, key="points:entry:1", occurred_at=OCCURRED, now=NOW
            )
            session.flush()
            raise RuntimeError("the ledger write failed")

    with pytest.raises(RuntimeError, match="the ledger write failed"):
        failing_write()
    assert counts(services) == before
    assert before["outbox_events"] == before["webhook_deliveries"] == 0


def test_emit_never_commits(services: Services) -> None:
    subscribe(services)
    session = services.sessions()
    try:
        emit(session, "points.earned", {"points": 1}, key="k", occurred_at=OCCURRED, now=NOW)
        session.rollback()  # had emit committed, this would undo nothing
    finally:
        session.close()
    assert events(services) == []
    assert deliveries(services) == []


def test_deliveries_fan_out_to_matching_active_subscriptions_only(services: Services) -> None:
    crm = subscribe(services, "crm", ("points.*",))
    everything = subscribe(services, "lake", ("*",))
    subscribe(services, "tiers", ("tier.changed",))
    paused = subscribe(services, "paused", ("points.earned",))
    with unit_of_work(services.sessions) as session:
        session.execute(
            update(WebhookSubscription).where(WebhookSubscription.id == paused).values(active=False)
        )

    event_id = emit_one(services, topic="points.expiry.warned")

    assert [
        (d.subscription_id, d.event_id, d.status, d.attempts, d.next_attempt_at) for d in deliveries(services)
    ] == [
        (crm, event_id, "pending", 0, NOW),
        (everything, event_id, "pending", 0, NOW),
    ]


def test_emit_many_stores_a_batch_once_and_reports_replays_in_order(services: Services) -> None:
    subscribe(services)
    existing = emit_one(services, key="k0")
    with unit_of_work(services.sessions) as session:
        person = Person(created_at=NOW)
        session.add(person)
        session.flush()
        person_id = person.id
        results = emit_many(
            session,
            [
                DomainEvent("points.earned", {"points": 1}, "k1", OCCURRED, person_id),
                DomainEvent("points.earned", {"points": 2}, "k0", OCCURRED),
                DomainEvent("tier.changed", {"tier": "gold"}, "k2", OCCURRED, person_id),
                DomainEvent("points.earned", {"points": 3}, "k1", OCCURRED),
            ],
            now=NOW,
        )
    stored = {e.idempotency_key: e for e in events(services)}
    assert [(r.event_id, r.created, r.deliveries) for r in results] == [
        (stored["k1"].id, True, 1),
        (existing, False, 0),
        (stored["k2"].id, True, 0),  # nobody subscribes to tier.*
        (stored["k1"].id, False, 0),
    ]
    assert stored["k1"].payload == {"points": 1}
    assert stored["k1"].person_id == person_id
    assert len(stored) == 3
    assert len(deliveries(services)) == 2


@pytest.mark.parametrize(
    ("topic", "key", "occurred_at", "message"),
    [
        (
            "Points.Earned",
            "k",
            OCCURRED,
            "topic 'Points.Earned' must be dot-separated lower-case words, e.g. points.earned",
        ),
        ("points.earned", "", OCCURRED, "an event key must be 1–200 characters"),
        ("points.earned", "k" * 201, OCCURRED, "an event key must be 1–200 characters"),
        ("points.earned", "k", datetime(2026, 3, 1), "event 'k': occurred_at must be timezone-aware"),
    ],
)
def test_a_bad_event_in_a_batch_writes_nothing(
    services: Services, topic: str, key: str, occurred_at: datetime, message: str
) -> None:
    before = counts(services)
    with pytest.raises(ValidationFailed) as raised, unit_of_work(services.sessions) as session:
        emit_many(
            session,
            [DomainEvent("points.earned", {}, "good", OCCURRED), DomainEvent(topic, {}, key, occurred_at)],
            now=NOW,
        )
    assert raised.value.message == message
    assert counts(services) == before


# --- subscriptions ---


def test_a_subscription_keeps_its_secret_encrypted_and_is_audited(services: Services) -> None:
    subscription_id = subscribe(services)
    with unit_of_work(services.read_sessions) as session:
        subscription = session.get_one(WebhookSubscription, subscription_id)
        assert SECRET.encode() not in subscription.secret_ciphertext
        assert subscription_secret(services.vault, subscription) == SECRET
        assert (subscription.name, subscription.url, subscription.topics, subscription.active) == (
            "crm",
            "https://crm.example/hooks",
            ["points.*"],
            True,
        )
        [entry] = session.scalars(select(AuditEntry))
        assert (entry.action, entry.subject_id, entry.detail) == (
            "webhook.added",
            str(subscription_id),
            {"name": "crm", "url": "https://crm.example/hooks", "topics": ["points.*"]},
        )


def test_a_subscription_without_a_secret_gets_a_random_one(services: Services) -> None:
    with unit_of_work(services.sessions) as session:
        _, first = add_subscription(
            session, services.vault, name="a", url="https://a.example", topics=["*"], actor="t"
        )
        _, second = add_subscription(
            session, services.vault, name="b", url="https://b.example", topics=["*"], actor="t"
        )
    assert len(first) >= 32
    assert first != second


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (
            {"url": "ftp://crm.example/hooks"},
            ValidationFailed,
            "webhook URL 'ftp://crm.example/hooks' must be an absolute http:// or https:// URL",
        ),
        (
            {"url": "/hooks"},
            ValidationFailed,
            "webhook URL '/hooks' must be an absolute http:// or https:// URL",
        ),
        (
            {"topics": ["points.*.x"]},
            ValidationFailed,
            "topic pattern 'points.*.x' must be a topic, a topic followed by .* (points.*), or *",
        ),
        (
            {"topics": [" ", ""]},
            ValidationFailed,
            "a webhook needs at least one topic pattern, e.g. points.*",
        ),
        ({"secret": "short"}, ValidationFailed, "a webhook secret must be at least 16 characters"),
        ({"name": " "}, ValidationFailed, "a webhook needs a name of at most 100 characters"),
        ({"name": "crm"}, Conflict, "a webhook called 'crm' already exists"),
    ],
)
def test_a_bad_subscription_is_refused_and_changes_nothing(
    services: Services, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    subscribe(services)
    before = counts(services)
    values: dict[str, Any] = {
        "name": "erp",
        "url": "https://erp.example/hooks",
        "topics": ["points.*"],
        "secret": SECRET,
    }
    with pytest.raises(error) as raised, unit_of_work(services.sessions) as session:
        add_subscription(session, services.vault, **{**values, **fields}, actor="test")
    assert raised.value.message == message  # type: ignore[attr-defined]
    assert counts(services) == before


# --- delivering ---


def test_the_dispatcher_posts_a_signed_event_once_and_records_it(services: Services) -> None:
    subscribe(services)
    with unit_of_work(services.sessions) as session:
        person = Person(created_at=NOW)
        session.add(person)
        session.flush()
        person_id = person.id
        event_id = emit(
            session,
            "points.earned",
            {"points": 12, "store": "徐汇店"},
            key="k1",
            occurred_at=OCCURRED,
            person_id=person_id,
            now=NOW,
        ).event_id
    receiver = Receiver()

    report = deliver_due(services, receiver.client(), NOW, 10)

    assert (report.delivered, report.retrying, report.dead) == (1, 0, 0)
    assert receiver.received == [
        {
            "id": event_id,
            "topic": "points.earned",
            "occurred_at": "2026-03-01T03:59:00+00:00",
            "person_id": person_id,
            "data": {"points": 12, "store": "徐汇店"},
        }
    ]
    [headers] = receiver.headers
    assert headers["Idempotency-Key"] == str(event_id)
    assert headers["X-MemberOps-Topic"] == "points.earned"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-MemberOps-Signature"].startswith(f"t={int(NOW.timestamp())},v1=")
    assert receiver.urls == ["https://crm.example/hooks"]
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.attempts, delivery.delivered_at, delivery.next_attempt_at) == (
        "delivered",
        1,
        NOW,
        None,
    )
    assert (delivery.last_status_code, delivery.last_error) == (200, None)

    assert deliver_due(services, receiver.client(), NOW + timedelta(days=1), 10).handled == 0
    assert len(receiver.received) == 1


def test_nothing_is_posted_before_a_delivery_is_due_or_while_its_webhook_is_paused(
    services: Services,
) -> None:
    subscription_id = subscribe(services)
    emit_one(services)
    receiver = Receiver()
    assert deliver_due(services, receiver.client(), NOW - timedelta(seconds=1), 10).handled == 0
    with unit_of_work(services.sessions) as session:
        session.execute(
            update(WebhookSubscription).where(WebhookSubscription.id == subscription_id).values(active=False)
        )
    assert deliver_due(services, receiver.client(), NOW, 10).handled == 0
    assert receiver.received == []
    assert [(d.status, d.attempts) for d in deliveries(services)] == [("pending", 0)]


def test_a_failing_receiver_is_retried_on_the_exact_schedule_then_dead_then_redelivered(
    services: Services,
) -> None:
    subscribe(services)
    event_id = emit_one(services)
    receiver = Receiver(status=500)
    client = receiver.client()

    now = NOW
    waits: list[timedelta] = []
    for attempt in range(1, DEFAULT_RETRY_POLICY.max_attempts + 1):
        # a moment before it is due nothing happens
        assert deliver_due(services, client, now - timedelta(seconds=1), 10).handled == 0
        receiver.now = now
        report = deliver_due(services, client, now, 10)
        [delivery] = deliveries(services)
        assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (
            attempt,
            500,
            "HTTP 500: down",
        )
        if attempt < DEFAULT_RETRY_POLICY.max_attempts:
            assert (report.retrying, delivery.status) == (1, "pending")
            assert delivery.next_attempt_at is not None
            waits.append(delivery.next_attempt_at - now)
            now = delivery.next_attempt_at
        else:
            assert (report.dead, delivery.status, delivery.next_attempt_at) == (1, "dead", None)

    assert waits == [
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=6),
        timedelta(hours=6),
        timedelta(hours=6),
    ]
    assert len(receiver.received) == 10
    assert deliver_due(services, client, now + timedelta(days=30), 10).handled == 0

    with unit_of_work(services.read_sessions) as session:
        [dead] = dead_deliveries(session)
    assert (
        dead.subscription,
        dead.event_id,
        dead.topic,
        dead.attempts,
        dead.last_status_code,
        dead.last_error,
    ) == (
        "crm",
        event_id,
        "points.earned",
        10,
        500,
        "HTTP 500: down",
    )

    later = now + timedelta(days=2)
    with unit_of_work(services.sessions) as session:
        redeliver(session, dead.delivery_id, actor="test", now=later)
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("pending", 0, later)

    receiver.status = 200
    receiver.now = later
    assert deliver_due(services, client, later, 10).delivered == 1
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.attempts, delivery.delivered_at, delivery.last_error) == (
        "delivered",
        1,
        later,
        None,
    )
    with unit_of_work(services.read_sessions) as session:
        assert dead_deliveries(session) == []


def test_a_network_error_is_a_failed_attempt_without_a_status(services: Services) -> None:
    subscribe(services)
    emit_one(services)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    policy = RetryPolicy(delays=(timedelta(seconds=5),), max_attempts=2)
    client = httpx.Client(transport=httpx.MockTransport(refuse))
    assert deliver_due(services, client, NOW, 10, policy=policy).retrying == 1
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.last_status_code, delivery.last_error, delivery.next_attempt_at) == (
        "pending",
        None,
        "ConnectError: connection refused",
        NOW + timedelta(seconds=5),
    )
    assert deliver_due(services, client, NOW + timedelta(seconds=5), 10, policy=policy).dead == 1


def test_redeliver_refuses_what_is_not_dead_and_changes_nothing(services: Services) -> None:
    subscribe(services)
    emit_one(services)
    [delivery] = deliveries(services)
    with (
        pytest.raises(Conflict, match=f"webhook delivery {delivery.id} is pending, not dead"),
        unit_of_work(services.sessions) as session,
    ):
        redeliver(session, delivery.id, actor="test")
    with pytest.raises(NotFound, match="no webhook delivery 999"), unit_of_work(services.sessions) as session:
        redeliver(session, 999, actor="test")
    assert [(d.status, d.attempts, d.next_attempt_at) for d in deliveries(services)] == [("pending", 0, NOW)]


class Crash(BaseException):
    """A dispatcher dying mid-request (not an error it would record)."""


def test_a_claim_whose_dispatcher_died_is_taken_over_after_the_lease(services: Services) -> None:
    subscribe(services)
    emit_one(services)

    def die(request: httpx.Request) -> httpx.Response:
        raise Crash

    with pytest.raises(Crash):
        deliver_due(services, httpx.Client(transport=httpx.MockTransport(die)), NOW, 10)
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
        "pending",
        1,
        NOW + DEFAULT_LEASE,
    )

    takeover = NOW + DEFAULT_LEASE
    receiver = Receiver(now=takeover)
    assert deliver_due(services, receiver.client(), takeover - timedelta(seconds=1), 10).handled == 0
    assert deliver_due(services, receiver.client(), takeover, 10).delivered == 1
    assert [(d.status, d.attempts) for d in deliveries(services)] == [("delivered", 2)]


def test_a_final_attempt_that_never_reported_back_goes_dead(services: Services) -> None:
    subscribe(services)
    emit_one(services)
    policy = RetryPolicy(delays=(timedelta(seconds=5),), max_attempts=1)

    def die(request: httpx.Request) -> httpx.Response:
        raise Crash

    with pytest.raises(Crash):
        deliver_due(services, httpx.Client(transport=httpx.MockTransport(die)), NOW, 10, policy=policy)
    report = deliver_due(services, Receiver().client(), NOW + DEFAULT_LEASE, 10, policy=policy)
    assert (report.delivered, report.dead) == (0, 1)
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "dead",
        1,
        "no outcome was recorded for the last attempt (the dispatcher stopped or timed out)",
    )


def test_a_dispatcher_that_outlived_its_lease_cannot_overwrite_the_takeover(services: Services) -> None:
    # given a slow first dispatcher: while its request hangs, the lease runs out and another
    # dispatcher delivers; then the slow one's receiver answers 500
    subscribe(services)
    emit_one(services)
    takeover = NOW + DEFAULT_LEASE
    fast = Receiver(now=takeover)
    slow = Receiver(status=500)
    slow.before_answer = lambda: deliver_due(services, fast.client(), takeover, 10) and None

    report = deliver_due(services, slow.client(), NOW, 10)

    assert (report.delivered, report.retrying, report.dead) == (0, 0, 0)  # its outcome was not recorded
    assert len(fast.received) == len(slow.received) == 1
    [delivery] = deliveries(services)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.delivered_at) == (
        "delivered",
        2,
        200,
        takeover,
    )


# --- PostgreSQL races ---


@pytest.fixture
def pg(postgres_services: Services) -> Services:
    """Races prove PostgreSQL's locking; SQLite serialises every writer by design."""
    return postgres_services


@pytest.mark.postgres
def test_concurrent_dispatchers_never_deliver_one_delivery_twice(pg: Services) -> None:
    subscribe(pg, "a")
    subscribe(pg, "b")
    with unit_of_work(pg.sessions) as session:
        emit_many(
            session, [DomainEvent("points.earned", {"n": i}, f"k{i}", OCCURRED) for i in range(40)], now=NOW
        )
    receiver = Receiver()

    def slow_answer() -> None:
        time.sleep(0.002)

    receiver.before_answer = slow_answer

    def dispatch(_: int) -> int:
        client = receiver.client()
        delivered = 0
        while (report := deliver_due(pg, client, NOW, 5)).handled:
            delivered += report.delivered
        return delivered

    results = race(4, dispatch)

    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 80  # type: ignore[arg-type]
    posts = Counter(
        (url, headers["Idempotency-Key"])
        for url, headers in zip(receiver.urls, receiver.headers, strict=True)
    )
    assert len(posts) == 80
    assert set(posts.values()) == {1}
    assert {(d.status, d.attempts) for d in deliveries(pg)} == {("delivered", 1)}


@pytest.mark.postgres
def test_the_same_event_emitted_at_once_is_stored_once(pg: Services) -> None:
    subscribe(pg)

    def emit_it(index: int) -> tuple[int, bool]:
        with unit_of_work(pg.sessions) as session:
            result = emit(
                session, "points.earned", {"writer": index}, key="points:entry:1", occurred_at=OCCURRED
            )
        return result.event_id, result.created

    results = race(8, emit_it)

    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(created for _, created in results) == [False] * 7 + [True]  # type: ignore[misc]
    assert len({event_id for event_id, _ in results}) == 1  # type: ignore[misc]
    assert len(events(pg)) == 1
    assert len(deliveries(pg)) == 1


# --- the schema ---


def _outbox_objects_only(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table":
        return name in OUTBOX_TABLES
    table = getattr(obj, "table", None)
    return table is not None and table.name in OUTBOX_TABLES


def test_migration_0002_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": _outbox_objects_only, "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    assert tables >= OUTBOX_TABLES


def test_migration_0002_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    try:
        migrate.upgrade(engine, "0002")
        migrate.downgrade(engine, "0001")
        with engine.connect() as connection:
            assert OUTBOX_TABLES.isdisjoint(inspect(connection).get_table_names())
        migrate.upgrade(engine, "0002")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) >= OUTBOX_TABLES
    finally:
        engine.dispose()


# --- the command line, against a real HTTP receiver on the loopback ---


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A real HTTP server on 127.0.0.1 that answers 204 to signed requests and 401 to others."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signed = verify_signature(
                SECRET, self.headers["X-MemberOps-Signature"], body, now=datetime.now(UTC)
            )
            received.append((dict(self.headers), body))
            self.send_response(204 if signed else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli(services: Services, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``memberops webhook …`` in-process on the test database (the e2e tests cover the real process)."""
    monkeypatch.setattr(common, "_services", services)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(webhook_app, list(args))

    return run


def test_the_webhook_commands_end_to_end(
    services: Services,
    cli: Callable[..., Result],
    http_receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = http_receiver
    added = cli(
        "add", "--name", "crm", "--url", url, "--topics", "points.*, tier.changed", "--secret", SECRET
    )
    assert added.exit_code == 0, added.output
    assert added.stdout == "added webhook 'crm' for points.*, tier.changed\n"
    refused = cli("add", "--name", "crm", "--url", url, "--topics", "*")
    assert refused.exit_code == 2
    assert "a webhook called 'crm' already exists" in refused.stderr
    generated = cli("add", "--name", "erp", "--url", url, "--topics", "plan.*")
    assert generated.exit_code == 0
    assert (
        generated.stdout.splitlines()[1] == "signing secret (give it to the receiver; it is not shown again):"
    )
    assert len(generated.stdout.splitlines()[2]) >= 32

    with unit_of_work(services.sessions) as session:
        event_id = emit(session, "points.earned", {"points": 5}, key="k1", occurred_at=OCCURRED).event_id
        emit(session, "coupon.issued", {"coupon": "C1"}, key="k2", occurred_at=OCCURRED)

    delivered = cli("deliver", "--once")
    assert delivered.exit_code == 0, delivered.output
    assert delivered.stdout.splitlines()[-1] == "total: delivered 1, retrying 0, dead 0"
    [(headers, body)] = received
    assert json.loads(body)["data"] == {"points": 5}
    assert headers["Idempotency-Key"] == str(event_id)

    listed = cli("list", "--format", "json")
    assert [
        {k: row[k] for k in ("name", "url", "topics", "active", "pending", "delivered", "dead")}
        for row in json.loads(listed.stdout)
    ] == [
        {
            "name": "crm",
            "url": url,
            "topics": ["points.*", "tier.changed"],
            "active": True,
            "pending": 0,
            "delivered": 1,
            "dead": 0,
        },
        {
            "name": "erp",
            "url": url,
            "topics": ["plan.*"],
            "active": True,
            "pending": 0,
            "delivered": 0,
            "dead": 0,
        },
    ]

    with unit_of_work(services.sessions) as session:
        session.execute(
            update(WebhookDelivery).values(status="dead", next_attempt_at=None, last_error="HTTP 500: down")
        )
    [delivery] = deliveries(services)
    dead = cli("dead", "--format", "json")
    assert [
        (d["delivery_id"], d["webhook"], d["topic"], d["last_error"]) for d in json.loads(dead.stdout)
    ] == [(delivery.id, "crm", "points.earned", "HTTP 500: down")]
    requeued = cli("redeliver", str(delivery.id))
    assert requeued.exit_code == 0, requeued.output
    again = cli("redeliver", str(delivery.id))
    assert again.exit_code == 2
    assert f"webhook delivery {delivery.id} is pending, not dead" in again.stderr
    assert cli("deliver", "--once").exit_code == 0
    assert len(received) == 2
    assert [(d.status, d.attempts) for d in deliveries(services)] == [("delivered", 1)]
    with unit_of_work(services.read_sessions) as session:
        assert (
            session.execute(
                text("SELECT count(*) FROM audit_log WHERE action = 'webhook.redelivered'")
            ).scalar_one()
            == 1
        )
