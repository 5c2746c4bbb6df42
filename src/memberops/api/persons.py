"""``/persons``: a person's profile by id or by any identifier, and splitting a person.

Identifiers are shown in clear only to roles the settings name (``reveal_identifier_roles``);
everyone else sees them masked (``138****8000``). Every clear view is written to the audit trail
in the same transaction that read it, so there is no reveal without its record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from memberops.access.rules import may_see_identifiers
from memberops.access.service import Caller, audit
from memberops.api.deps import IdentityManager, PersonReader, ServicesDep, reading, writing
from memberops.api.schemas import MAX_ID, RowId, Text, error_responses, safe_text
from memberops.identity import repository
from memberops.identity.queries import person_profile, resolve_reference
from memberops.kit.errors import NotFound
from memberops.wiring import Services

router = APIRouter(prefix="/persons", tags=["persons"], responses=error_responses(401, 403, 404, 422))

PersonPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="a person id (a merged id leads to the survivor)")
]


class IdentifierView(BaseModel):
    """One identifier of the person; ``value`` is masked unless the caller's role may see it."""

    id: int
    type: str = Field(examples=["phone"])
    namespace: str = Field(description="the app or platform of an openid or buyer id; empty otherwise")
    value: str = Field(examples=["138****8000"])
    masked: bool
    source: str
    first_seen_at: datetime


class MembershipSpell(BaseModel):
    """One spell of membership (a person who leaves and rejoins has two)."""

    id: int
    member_no: str | None
    joined_at: datetime
    join_field: str
    status: str = Field(examples=["active"], description="`active`, `cancelled` or `merged`")
    cancelled_at: datetime | None


class MembershipView(BaseModel):
    """The current membership, and every spell."""

    is_member: bool
    member_no: str | None
    joined_at: datetime | None
    join_field: str | None
    history: list[MembershipSpell]


class OrdersSummary(BaseModel):
    """All the person's orders: how many, paid and refunded in yuan."""

    count: int
    paid: str = Field(examples=["128.00"])
    refunded: str = Field(examples=["0.00"])


class OrderView(BaseModel):
    """A recent order of the person."""

    id: int
    source: str
    external_id: str
    paid_at: datetime
    amount: str
    refunded: str
    store: str | None
    share_id: str | None


class MergeView(BaseModel):
    """A merge the person took part in."""

    id: int
    survivor_id: int
    absorbed_id: int
    identifier_type: str
    reason: str
    actor: str
    at: datetime
    undone_at: datetime | None


class PersonProfile(BaseModel):
    """A person as OneID knows them: identifiers, membership, orders, event counts and merges."""

    person_id: int = Field(description="the live person (the survivor, when the requested id was merged)")
    requested_id: int
    identifiers: list[IdentifierView]
    membership: MembershipView
    orders_summary: OrdersSummary
    orders: list[OrderView] = Field(description="the most recent orders, newest first")
    events: dict[str, int] = Field(description="how many events of each type", examples=[{"visit": 3}])
    merges: list[MergeView]


class SplitRequest(BaseModel):
    """Which identifiers (and the records attributed by them) move to a new person, and why."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"identifier_ids": [7], "reason": "two people shared a card"}]},
    )

    identifier_ids: Annotated[list[RowId], Field(min_length=1, max_length=1000)]
    reason: Text


class SplitResult(BaseModel):
    """The person that was split and the new person holding the moved identifiers."""

    person_id: int
    new_person_id: int
    identifier_ids: list[int]


def _profile(
    services: Services, caller: Caller, find: Callable[[Session], int | None], requested: str
) -> PersonProfile:
    """Find the person and build the profile in one transaction (a writing one when revealing)."""
    reveal = may_see_identifiers(caller.role, services.settings.reveal_identifier_roles)
    with (writing if reveal else reading)(services) as session:
        person_id = find(session)
        profile = (
            None
            if person_id is None
            else person_profile(session, services.identity, person_id, reveal=reveal)
        )
        if profile is None:
            raise NotFound(f"no person is known by {requested}")
        if reveal:
            # The reference itself stays out of the entry: it may be a phone number in clear.
            audit(
                session,
                caller.name,
                "person.identifiers_revealed",
                "person",
                str(profile["person_id"]),
                {"via": "api", "requested_id": profile["requested_id"]},
            )
        return PersonProfile.model_validate(profile)


@router.get("/lookup", response_model=PersonProfile, summary="Find a person by any identifier")
def lookup_person(
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="`13800138000`, `member_no:M1`, `unionid:oU…`, `openid:APP:oX…`, "
            "`platform_user_id:tmall:t1`, `email:a@b.cn` or `person:42`",
            examples=["member_no:M0001"],
        ),
        AfterValidator(safe_text),
    ],
    caller: PersonReader,
    services: ServicesDep,
) -> PersonProfile:
    """Return the profile of the person an identifier (or ``person:ID``) names."""
    return _profile(
        services, caller, lambda session: resolve_reference(session, services.identity, q), repr(q)
    )


@router.get("/{person_id}", response_model=PersonProfile, summary="Show a person")
def get_person(person_id: PersonPath, caller: PersonReader, services: ServicesDep) -> PersonProfile:
    """Return a person's profile; an id that was merged away returns the survivor's."""
    return _profile(services, caller, lambda _session: person_id, f"id {person_id}")


@router.post(
    "/{person_id}/split",
    status_code=status.HTTP_201_CREATED,
    response_model=SplitResult,
    responses=error_responses(409),
    summary="Split identifiers off into a new person",
)
def split_person(
    person_id: PersonPath, body: SplitRequest, caller: IdentityManager, services: ServicesDep
) -> SplitResult:
    """Move identifiers and the records attributed by them to a new person, kept apart from now on."""
    with writing(services) as session:
        current = repository.current_person_id(session, person_id)
        if current is None:
            raise NotFound(f"person {person_id} does not exist")
        new_person = services.identity.split(
            session, current, body.identifier_ids, actor=caller.name, reason=body.reason
        )
    return SplitResult(
        person_id=current, new_person_id=new_person, identifier_ids=sorted(set(body.identifier_ids))
    )
