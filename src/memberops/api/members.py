"""``POST /members``: a registration (入会), sent as a ``register`` event through the event path.

Registration is not a separate write path on purpose: the importer's ``register`` rows and this
endpoint make members by the same rules (OneID resolution first, one active membership a person).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from memberops.api.deps import Ingestor, ServicesDep, writing
from memberops.api.events import store_event
from memberops.api.schemas import IdentifierFields, Instant, Token, error_responses, iso
from memberops.identity.queries import person_profile
from memberops.ingest.records import parse_event
from memberops.kit.clock import utc_now

router = APIRouter(tags=["members"], responses=error_responses(401, 403, 422))


class RegistrationRequest(IdentifierFields):
    """A person joining the programme, named by one or more identifiers.

    Send ``external_id`` (the registration's id in the field) to make retries safe: without it a
    registration is keyed by its content, and ``joined_at`` defaults to the time of the request.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "phone": "13800138000",
                    "openid": "oX1a2b3c",
                    "member_no": "M0001",
                    "field": "mini_program",
                    "joined_at": "2026-03-01T09:00:00+08:00",
                    "store": "SH001",
                    "external_id": "REG-0001",
                }
            ]
        },
    )

    field: Token = Field(default="mini_program", description="the channel the person joined in")
    joined_at: Instant | None = Field(default=None, description="defaults to now")
    store: Token | None = Field(default=None, description="the store code the person joined at")
    external_id: Token | None = Field(default=None, description="the registration's id in the field")

    def raw(self) -> dict[str, Any]:
        """Return the ``register`` event row this registration stands for."""
        row: dict[str, Any] = {
            name: value
            for name, value in super().raw().items()
            if name not in {"field", "joined_at", "store", "external_id"}
        }
        row.update(
            type="register",
            occurred_at=iso(self.joined_at or utc_now()),
            field=self.field,
            external_id=self.external_id,
            attributes={"store": self.store} if self.store else {},
        )
        return row


class MembershipState(BaseModel):
    """The person's membership after the registration."""

    is_member: bool
    member_no: str | None
    joined_at: datetime | None
    join_field: str | None


class Registration(BaseModel):
    """Who registered (OneID's person) and their membership."""

    person_id: int
    event_id: int
    created: bool = Field(description="false when this registration was already recorded")
    membership: MembershipState


@router.post(
    "/members",
    status_code=status.HTTP_201_CREATED,
    response_model=Registration,
    responses={200: {"model": Registration, "description": "a replay: the registration was recorded"}},
    summary="Register a member",
)
def register_member(
    body: RegistrationRequest, caller: Ingestor, services: ServicesDep, response: Response
) -> Registration:
    """Make the person a member (201); a person who already is one stays with their first spell."""
    event = parse_event(body.raw())
    with writing(services) as session:
        outcome = store_event(session, services, event, actor=caller.name)
        assert outcome.event_id is not None
        assert outcome.person_id is not None
        profile = person_profile(session, services.identity, outcome.person_id, reveal=False, order_limit=0)
        assert profile is not None
        membership = profile["membership"]
        result = Registration(
            person_id=profile["person_id"],
            event_id=outcome.event_id,
            created=outcome.created,
            membership=MembershipState(
                is_member=membership["is_member"],
                member_no=membership["member_no"],
                joined_at=membership["joined_at"],
                join_field=membership["join_field"],
            ),
        )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return result
