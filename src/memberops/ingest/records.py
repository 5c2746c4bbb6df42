"""Canonical records and the pure parsing that turns raw input into them.

The API and the bulk importer both hand raw mappings to ``parse_order`` / ``parse_event``, so a
row is judged by the same rules and gets the same reason whichever door it came in by.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from memberops.identity.identifiers import IdentifierKey, IdentifierKind, InvalidIdentifier, normalize
from memberops.kit.clock import InvalidTimestamp, parse_instant
from memberops.kit.errors import ValidationFailed
from memberops.kit.money import InvalidAmount, yuan_to_fen
from memberops.kit.pickling import Reduced, reduce_tuple

#: The event types the canonical format knows, in a fixed order (the demo indexes them).
EVENT_TYPES: tuple[str, ...] = (
    "register",
    "cancel_membership",
    "follow",
    "unfollow",
    "join_group",
    "leave_group",
    "visit",
    "share",
    "review",
    "consent",
)
EVENT_KINDS = frozenset(EVENT_TYPES)
#: The contact channels consent is given or withdrawn for, in a fixed order.
CONSENT_CHANNEL_TYPES: tuple[str, ...] = ("sms", "wecom", "email", "call", "push", "subscription")
CONSENT_CHANNELS = frozenset(CONSENT_CHANNEL_TYPES)
IDENTIFIER_COLUMNS = ("phone", "unionid", "openid", "platform_user_id", "member_no", "email")
_MAX_ID = 64
_MAX_QUANTITY = 1_000_000
#: Control characters (NUL above all) cannot be stored in PostgreSQL text and never belong in data.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# The records are named tuples rather than dataclasses: a bulk import hands them from the parsing
# process to the storing one by the hundred thousand, and a tuple unpickles several times faster.


class RecordRejected(ValidationFailed, ValueError):
    """A record that breaks the documented format; the message is the reason shown to the user."""

    code = "invalid_record"


class OrderLineIn(NamedTuple):
    """One order line: ``amount_fen`` is the line total."""

    sku: str
    category: str
    quantity: int
    amount_fen: int

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


class RefundIn(NamedTuple):
    """A refund of ``amount_fen`` on the order ``(source, order_external_id)``."""

    source: str
    external_id: str
    order_external_id: str
    refunded_at: datetime
    amount_fen: int
    reason: str | None = None

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


class OrderIn(NamedTuple):
    """A validated order; ``refund`` is set when the input says it was (partly) refunded."""

    source: str
    external_id: str
    paid_at: datetime
    amount_fen: int
    store_code: str | None
    identifiers: tuple[IdentifierKey, ...]
    lines: tuple[OrderLineIn, ...]
    share_id: str | None
    refund: RefundIn | None

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


class EventIn(NamedTuple):
    """A validated behaviour event; ``dedup_key`` makes replays harmless."""

    kind: str
    field: str
    occurred_at: datetime
    external_id: str | None
    identifiers: tuple[IdentifierKey, ...]
    attributes: dict[str, Any]
    dedup_key: str

    @property
    def share_id(self) -> str | None:
        value = self.attributes.get("share_id")
        return str(value) if value is not None else None

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from a Parquet null
        return None
    text = str(value).strip()
    if _CONTROL.search(text):
        raise RecordRejected(f"{name} contains control characters")
    return text or None


def _required(raw: Mapping[str, Any], name: str) -> str:
    value = _text(raw, name)
    if value is None:
        raise RecordRejected(f"{name} is missing")
    return value


def _identifier_text(raw: Mapping[str, Any], name: str) -> str:
    value = _required(raw, name)
    if len(value) > _MAX_ID:
        raise RecordRejected(f"{name} is longer than {_MAX_ID} characters")
    return value


def _instant(raw: Mapping[str, Any], name: str, naive_zone: str | None) -> datetime:
    value = raw.get(name)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RecordRejected(f"{name} has no UTC offset")
        return value
    try:
        return parse_instant(_required(raw, name), naive_zone=naive_zone)
    except InvalidTimestamp as error:
        raise RecordRejected(f"{name}: {error}") from None


def _fen(raw: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = _text(raw, name)
    if value is None:
        if required:
            raise RecordRejected(f"{name} is missing")
        return None
    try:
        return yuan_to_fen(value)
    except InvalidAmount as error:
        raise RecordRejected(f"{name}: {error}") from None


def parse_identifiers(raw: Mapping[str, Any], default_namespace: str) -> tuple[IdentifierKey, ...]:
    """Return the normalised identifiers a record carries; a malformed one rejects the record.

    Openids and buyer ids belong to the app or platform named by ``app_id`` when the record says,
    else to the record's channel: a Douyin live-room follow carries ``app_id: douyin`` so the
    follower's buyer id is the one their Douyin orders carry.
    """
    namespace = _text(raw, "app_id") or default_namespace
    if len(namespace) > _MAX_ID:
        raise RecordRejected(f"app_id is longer than {_MAX_ID} characters")
    keys: list[IdentifierKey] = []
    for column in IDENTIFIER_COLUMNS:
        value = _text(raw, column)
        if value is None:
            continue
        kind = IdentifierKind(column)
        try:
            keys.append(normalize(kind, value, namespace))
        except InvalidIdentifier as error:
            raise RecordRejected(str(error)) from None
    return tuple(dict.fromkeys(keys))


def _json(raw: Mapping[str, Any], name: str) -> Any:
    value = raw.get(name)
    if value is None or isinstance(value, list | dict):
        return value
    text = _text(raw, name)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise RecordRejected(f"{name} is not valid JSON") from None


def _lines(raw: Mapping[str, Any]) -> tuple[OrderLineIn, ...]:
    items = _json(raw, "items")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise RecordRejected("items must be a JSON list")
    lines: list[OrderLineIn] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise RecordRejected(f"items[{number}] must be an object")
        try:
            quantity = int(item.get("qty", 1))
        except (TypeError, ValueError):
            raise RecordRejected(f"items[{number}].qty is not a whole number") from None
        if not 0 < quantity <= _MAX_QUANTITY:
            raise RecordRejected(f"items[{number}].qty must be from 1 to {_MAX_QUANTITY:,}")
        sku = _text(item, "sku")
        if sku is None or len(sku) > _MAX_ID:
            raise RecordRejected(f"items[{number}].sku is missing or too long")
        amount = _fen(item, "amount")
        assert amount is not None
        category = _text(item, "category") or ""
        if len(category) > _MAX_ID:
            raise RecordRejected(f"items[{number}].category is longer than {_MAX_ID} characters")
        lines.append(OrderLineIn(sku, category, quantity, amount))
    return tuple(lines)


def parse_order(raw: Mapping[str, Any], *, naive_zone: str | None = None) -> OrderIn:
    """Validate a canonical order mapping (see docs/import-formats.md) or raise ``RecordRejected``."""
    source = _identifier_text(raw, "source")
    external_id = _identifier_text(raw, "external_id")
    paid_at = _instant(raw, "paid_at", naive_zone)
    amount = _fen(raw, "amount")
    assert amount is not None
    lines = _lines(raw)
    if lines and sum(line.amount_fen for line in lines) != amount:
        raise RecordRejected("items do not add up to amount")
    status = (_text(raw, "status") or "paid").lower()
    if status not in {"paid", "refunded"}:
        raise RecordRejected(f"status {status!r} is not paid or refunded")
    refund_amount = _fen(raw, "refund_amount", required=False)
    if refund_amount is not None and refund_amount > amount:
        raise RecordRejected("refund_amount is more than amount")
    refund: RefundIn | None = None
    if status == "refunded" or (refund_amount is not None and refund_amount > 0):
        refunded_at = _instant(raw, "refunded_at", naive_zone) if _text(raw, "refunded_at") else paid_at
        if refunded_at < paid_at:
            raise RecordRejected("refunded_at is before paid_at")
        refund = RefundIn(
            source=source,
            external_id=f"{external_id}#refund",
            order_external_id=external_id,
            refunded_at=refunded_at,
            amount_fen=amount if refund_amount is None else refund_amount,
        )
    store = _text(raw, "store")
    share_id = _text(raw, "share_id")
    if share_id is not None and len(share_id) > _MAX_ID:
        raise RecordRejected("share_id is longer than 64 characters")
    return OrderIn(
        source=source,
        external_id=external_id,
        paid_at=paid_at,
        amount_fen=amount,
        store_code=store,
        identifiers=parse_identifiers(raw, source),
        lines=lines,
        share_id=share_id,
        refund=refund,
    )


def _event_attributes(kind: str, attributes: dict[str, Any]) -> dict[str, Any]:
    if kind == "share":
        share_id = attributes.get("share_id")
        if not isinstance(share_id, str | int) or isinstance(share_id, bool) or not str(share_id).strip():
            raise RecordRejected("a share event needs attributes.share_id")
        if len(str(share_id)) > _MAX_ID:
            raise RecordRejected(f"attributes.share_id is longer than {_MAX_ID} characters")
    if kind == "review":
        if not attributes.get("sku"):
            raise RecordRejected("a review event needs attributes.sku")
        rating = attributes.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise RecordRejected("a review event needs attributes.rating, a whole number from 1 to 5")
    if kind == "consent":
        if attributes.get("channel") not in CONSENT_CHANNELS:
            raise RecordRejected(
                f"a consent event needs attributes.channel, one of {sorted(CONSENT_CHANNELS)}"
            )
        if not isinstance(attributes.get("granted"), bool):
            raise RecordRejected("a consent event needs attributes.granted, true or false")
    return attributes


def parse_event(raw: Mapping[str, Any], *, naive_zone: str | None = None) -> EventIn:
    """Validate a canonical event mapping or raise ``RecordRejected``."""
    kind = _required(raw, "type")
    if kind not in EVENT_KINDS:
        raise RecordRejected(f"type {kind!r} is not one of {', '.join(sorted(EVENT_KINDS))}")
    occurred_at = _instant(raw, "occurred_at", naive_zone)
    field = _identifier_text(raw, "field")
    external_id = _text(raw, "external_id")
    if external_id is not None and len(external_id) > _MAX_ID:
        raise RecordRejected("external_id is longer than 64 characters")
    identifiers = parse_identifiers(raw, field)
    if not identifiers:
        raise RecordRejected("an event needs at least one identifier (phone, unionid, openid, …)")
    attributes = _json(raw, "attributes") or {}
    if not isinstance(attributes, dict):
        raise RecordRejected("attributes must be a JSON object")
    if "\\u0000" in json.dumps(attributes) or len(json.dumps(attributes)) > 20_000:
        raise RecordRejected("attributes contain a NUL character or are larger than 20,000 characters")
    attributes = _event_attributes(kind, attributes)
    if external_id is not None:
        dedup_key = f"{field}:{external_id}"
    else:
        content = json.dumps(
            [
                kind,
                field,
                occurred_at.isoformat(),
                [[k.kind, k.namespace, k.value] for k in identifiers],
                attributes,
            ],
            sort_keys=True,
            ensure_ascii=False,
        )
        dedup_key = f"{field}#{hashlib.sha256(content.encode()).hexdigest()}"
    return EventIn(kind, field, occurred_at, external_id, identifiers, attributes, dedup_key)
