"""Every table of the operational store, in one place (Alembic reads ``Base.metadata``)."""

from memberops.models.access import ApiKey, AuditEntry
from memberops.models.base import Base, table_of
from memberops.models.commerce import Order, OrderLine, Refund
from memberops.models.engagement import Consent, Event
from memberops.models.identity import Identifier, IdentityMerge, IdentitySeparation, Person
from memberops.models.insight import PersonTag, Segment, SegmentChange, SegmentMember, Tag, TagChange
from memberops.models.loyalty import (
    GrowthEntry,
    MemberTier,
    OrderEarning,
    PointsAccount,
    PointsAllocation,
    PointsEntry,
    PointsLot,
    ProgrammeVersion,
    RefundTakeBack,
    TierChangeRecord,
)
from memberops.models.membership import Membership
from memberops.models.offers import (
    BenefitGrant,
    CheckoutRefund,
    CheckoutSettlement,
    Coupon,
    CouponRedemption,
    PaidPlanTerm,
    RewardRedemption,
    RewardStock,
)
from memberops.models.outbox import OutboxEvent, WebhookDelivery, WebhookSubscription
from memberops.models.reference import Channel, Store

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "BenefitGrant",
    "Channel",
    "CheckoutRefund",
    "CheckoutSettlement",
    "Consent",
    "Coupon",
    "CouponRedemption",
    "Event",
    "GrowthEntry",
    "Identifier",
    "IdentityMerge",
    "IdentitySeparation",
    "MemberTier",
    "Membership",
    "Order",
    "OrderEarning",
    "OrderLine",
    "OutboxEvent",
    "PaidPlanTerm",
    "Person",
    "PersonTag",
    "PointsAccount",
    "PointsAllocation",
    "PointsEntry",
    "PointsLot",
    "ProgrammeVersion",
    "Refund",
    "RefundTakeBack",
    "RewardRedemption",
    "RewardStock",
    "Segment",
    "SegmentChange",
    "SegmentMember",
    "Store",
    "Tag",
    "TagChange",
    "TierChangeRecord",
    "WebhookDelivery",
    "WebhookSubscription",
    "table_of",
]
