"""``POST /events``: behaviour events (register, share, review, consent, …) from any field.

Events go through ``records.parse_event`` and ``IngestService.ingest_events``, like an import
file's rows. An event is keyed by ``(field, external_id)``, or by a hash of its content when it
has no id, so a replay answers 200 with the first result and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from sqlalchemy.orm import Session

from memberops.api.deps import Ingestor, ServicesDep, writing
from memberops.api.schemas import Attributes, IdentifierFields, Instant, Token, error_responses, iso
from memberops.ingest.records import EVENT_KINDS, EventIn, RecordRejected, parse_event
from memberops.ingest.service import EventOutcome
from memberops.models import Event
from memberops.wiring import Services

#: The event types, for the schema (the ingest rules do the checking).
_EVENT_TYPES: list[JsonValue] = [*sorted(EVENT_KINDS)]

router = APIRouter(tags=["ingest"], responses=error_responses(401, 403, 422))


class EventRequest(IdentifierFields):
    """A canonical event (docs/import-formats.md, "Events"); at least one identifier is required."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "review",
                    "occurred_at": "2026-03-03T20:15:00+08:00",
                    "field": "mini_program",
                    "external_id": "RV-1001",
                    "phone": "13800138000",
                    "attributes": {"sku": "LATTE-M", "rating": 5, "order_external_id": "POS-20260301-0001"},
                },
                {
                    "type": "consent",
                    "occurred_at": "2026-03-03T20:16:00+08:00",
                    "field": "mini_program",
                    "openid": "oX1a2b3c",
                    "attributes": {"channel": "sms", "granted": True},
                },
            ]
        },
    )

    # A plain string checked by the ingest rules (the enum documents the choices), so an unknown
    # type gets the same ``invalid_record`` reason as in an import file.
    type: Token = Field(json_schema_extra={"enum": _EVENT_TYPES})
    occurred_at: Instant
    field: Token = Field(description="where it happened: a channel code (`mini_program`, `wecom`, …)")
    external_id: Token | None = Field(default=None, description="the event's id in that field")
    attributes: Attributes = Field(default_factory=dict, description="per type; see the import formats")

    def raw(self) -> dict[str, Any]:
        """Return the canonical row ``parse_event`` reads (the instant as ISO 8601 in UTC)."""
        row = super().raw()
        row["occurred_at"] = iso(self.occurred_at)
        return row


class EventStored(BaseModel):
    """The event as stored (on a replay: as stored the first time)."""

    event_id: int
    person_id: int
    created: bool = Field(description="false when the event was already there (nothing changed)")
    type: str
    field: str
    occurred_at: datetime


def store_event(session: Session, services: Services, event: EventIn, *, actor: str) -> EventOutcome:
    """Ingest one parsed event in ``session``; a rejection raises ``RecordRejected`` (nothing written)."""
    [outcome] = services.ingest.ingest_events(session, [event], actor=actor)
    if outcome.rejection is not None:
        raise RecordRejected(outcome.rejection)
    return outcome


@router.post(
    "/events",
    status_code=status.HTTP_201_CREATED,
    response_model=EventStored,
    responses={200: {"model": EventStored, "description": "a replay: the event was already stored"}},
    summary="Record an event",
)
def create_event(
    body: EventRequest, caller: Ingestor, services: ServicesDep, response: Response
) -> EventStored:
    """Store an event and apply what it means (membership, consent), once (201; replay 200)."""
    event = parse_event(body.raw())
    with writing(services) as session:
        outcome = store_event(session, services, event, actor=caller.name)
        assert outcome.event_id is not None
        stored = session.get_one(Event, outcome.event_id)
        result = EventStored(
            event_id=stored.id,
            person_id=stored.person_id,
            created=outcome.created,
            type=stored.kind,
            field=stored.field,
            occurred_at=stored.occurred_at,
        )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return result
