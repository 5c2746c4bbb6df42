"""Every table of the operational store, in one place (Alembic reads ``Base.metadata``)."""

from memberops.models.access import ApiKey, AuditEntry
from memberops.models.base import Base, table_of
from memberops.models.commerce import Order, OrderLine, Refund
from memberops.models.engagement import Consent, Event
from memberops.models.identity import Identifier, IdentityMerge, IdentitySeparation, Person
from memberops.models.membership import Membership
from memberops.models.outbox import OutboxEvent, WebhookDelivery, WebhookSubscription
from memberops.models.reference import Channel, Store

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Channel",
    "Consent",
    "Event",
    "Identifier",
    "IdentityMerge",
    "IdentitySeparation",
    "Membership",
    "Order",
    "OrderLine",
    "OutboxEvent",
    "Person",
    "Refund",
    "Store",
    "WebhookDelivery",
    "WebhookSubscription",
    "table_of",
]
