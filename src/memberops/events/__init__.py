"""Domain events out: the transactional outbox and the signed webhooks that deliver it.

Services call ``emit`` (or ``emit_many``) inside their transaction; the dispatcher
(``deliver_due``, run by ``memberops webhook deliver``) posts the events to subscribed receivers.
Receivers check requests with ``verify_signature``.
"""

from memberops.events.outbox import DomainEvent, Emitted, emit, emit_many
from memberops.events.rules import (
    DEFAULT_RETRY_POLICY,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    RetryPolicy,
    signature_header,
    topic_matches,
    verify_signature,
)
from memberops.events.webhooks import (
    DispatchReport,
    HttpClient,
    add_subscription,
    dead_deliveries,
    deliver_due,
    redeliver,
)

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "DispatchReport",
    "DomainEvent",
    "Emitted",
    "HttpClient",
    "RetryPolicy",
    "add_subscription",
    "dead_deliveries",
    "deliver_due",
    "emit",
    "emit_many",
    "redeliver",
    "signature_header",
    "topic_matches",
    "verify_signature",
]
