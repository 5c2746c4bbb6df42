"""``/programme`` and ``/members/{person}/points|tier``: the programme document and the points ledger.

``{person}`` is a person id (``42``) or any reference ``persons/lookup`` takes (``member_no:M1``,
``phone:13800138000``, ``person:42``); a bare number is a person id, so write a phone with its
``phone:`` prefix. Writes need an ``Idempotency-Key`` header: a replay answers 200 with the first
entry and changes nothing; the key reused for a different change answers 409.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from memberops.access.rules import Permission
from memberops.access.service import Caller
from memberops.api.deps import Ingestor, PersonReader, ServicesDep, reading, require, writing
from memberops.api.schemas import MAX_ID, Text, error_responses, safe_text
from memberops.identity import repository
from memberops.identity.queries import resolve_reference
from memberops.kit.clock import utc_now
from memberops.kit.errors import NotFound
from memberops.loyalty.points import adjust_points, spend_points
from memberops.loyalty.programme import load_programme
from memberops.loyalty.queries import entry_view
from memberops.loyalty.tasks import complete_task
from memberops.loyalty.versions import ActiveProgramme, require_programme
from memberops.models import PointsEntry
from memberops.wiring import Services

router = APIRouter(tags=["loyalty"], responses=error_responses(401, 403, 422))

ProgrammeManager = Annotated[Caller, Depends(require(Permission.MANAGE_PROGRAMME))]
PointsManager = Annotated[Caller, Depends(require(Permission.MANAGE_POINTS))]

PersonPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        description="a person id (`42`) or a reference: `member_no:M1`, `phone:13800138000`, `person:42`",
        examples=["42"],
    ),
    AfterValidator(safe_text),
]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=150,
        description="makes the write safe to retry: a replay returns the first result and changes nothing",
    ),
    AfterValidator(safe_text),
]


def _person(session: Session, services: Services, reference: str) -> int:
    text = reference.strip()
    if text.isascii() and text.isdigit() and int(text) < MAX_ID:
        found = repository.current_person_id(session, int(text))
    else:
        found = resolve_reference(session, services.identity, text)
    if found is None:
        raise NotFound(f"no person is known by {reference!r}")
    return found


# --- programme -------------------------------------------------------------------------------------


class ProgrammeView(BaseModel):
    """A stored programme version; ``changed`` is false when it was already the active one."""

    version_id: int
    version: str
    digest: str = Field(description="SHA-256 of the canonical document")
    active: bool
    applied_at: datetime
    applied_by: str
    changed: bool | None = None
    document: dict[str, Any]


def _programme_view(active: ActiveProgramme, changed: bool | None = None) -> ProgrammeView:
    return ProgrammeView(
        version_id=active.version_id,
        version=active.version,
        digest=active.digest,
        active=active.active,
        applied_at=active.applied_at,
        applied_by=active.applied_by,
        changed=changed,
        document=active.programme.model_dump(mode="json", by_alias=True),
    )


_DOCUMENT = Body(
    description="the programme document as JSON (the same fields as the TOML file; money in yuan)",
    examples=[
        {
            "version": "2026.2",
            "name": "FreshHours",
            "tiers": [{"code": "standard", "name": "Standard", "threshold": 0}],
        }
    ],
)


def _apply(services: Services, caller: Caller, document: dict[str, Any], response: Response) -> ProgrammeView:
    programme = load_programme(json.dumps(document), "json")
    with writing(services) as session:
        active, changed = services.loyalty.apply_programme(session, programme, actor=caller.name)
        view = _programme_view(active, changed)
    response.status_code = status.HTTP_201_CREATED if changed else status.HTTP_200_OK
    return view


@router.put(
    "/programme",
    response_model=ProgrammeView,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ProgrammeView, "description": "already the active version"},
        **error_responses(409),
    },
    summary="Apply a programme document",
)
def put_programme(
    document: Annotated[dict[str, Any], _DOCUMENT],
    caller: ProgrammeManager,
    services: ServicesDep,
    response: Response,
) -> ProgrammeView:
    """Validate the document (every problem listed with its path) and make it the active version."""
    return _apply(services, caller, document, response)


@router.post(
    "/programme",
    response_model=ProgrammeView,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ProgrammeView, "description": "already the active version"},
        **error_responses(409),
    },
    summary="Apply a programme document (same as PUT)",
)
def post_programme(
    document: Annotated[dict[str, Any], _DOCUMENT],
    caller: ProgrammeManager,
    services: ServicesDep,
    response: Response,
) -> ProgrammeView:
    """Validate the document and make it the active version (same as ``PUT /programme``)."""
    return _apply(services, caller, document, response)


@router.get(
    "/programme", response_model=ProgrammeView, responses=error_responses(404), summary="Show the programme"
)
def get_programme(caller: PersonReader, services: ServicesDep) -> ProgrammeView:
    """Return the active programme version and its whole document."""
    with reading(services) as session:
        return _programme_view(require_programme(session))


# --- points ----------------------------------------------------------------------------------------


class ExpiringPoints(BaseModel):
    """Points that expire at one instant."""

    expires_at: datetime
    points: int


class PointsBalance(BaseModel):
    """A member's points: the ledger balance, what they can spend now, any debt, what expires soon."""

    person_id: int
    balance: int = Field(description="the sum of the member's entries (below zero only after a refund)")
    spendable: int = Field(description="what can be redeemed now (expired lots not yet swept excluded)")
    debt: int = Field(description="points a refund could not take back, repaid from the next earnings")
    expiring: list[ExpiringPoints]
    expiring_within_days: int


class PointsEntryView(BaseModel):
    """One ledger entry."""

    entry_id: int
    person_id: int
    kind: str = Field(
        examples=["spend"],
        description="earn, gift, adjust, spend, restore, refund_take_back, expire, claw_back, "
        "merge, split_out, split_in",
    )
    delta: int
    balance_after: int
    reason: str
    source: str
    actor: str
    idempotency_key: str
    programme_version_id: int | None
    created_at: datetime


class HistoryEntry(BaseModel):
    """One ledger entry in a member's history."""

    entry_id: int
    kind: str
    delta: int
    balance_after: int
    debt_delta: int
    reason: str
    source: str
    source_ref: str | None
    actor: str
    idempotency_key: str
    programme_version_id: int | None
    reverses_entry_id: int | None
    created_at: datetime


class PointsChange(BaseModel):
    """Points to add (or, for an adjustment, remove when negative) and why."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"points": 50, "reason": "goodwill"}]}
    )

    points: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    reason: Text


class Redemption(BaseModel):
    """Points to redeem and what for."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"points": 20, "reason": "fruit box"}]}
    )

    points: int = Field(ge=1, le=1_000_000_000)
    reason: Text = "redemption"


@router.get(
    "/members/{person}/points",
    response_model=PointsBalance,
    responses=error_responses(404),
    summary="Points balance",
)
def get_points(person: PersonPath, caller: PersonReader, services: ServicesDep) -> PointsBalance:
    """Return a member's balance, spendable points, debt and the lots expiring in the next 90 days."""
    with reading(services) as session:
        return PointsBalance.model_validate(
            services.loyalty.points_summary(session, _person(session, services, person))
        )


@router.get(
    "/members/{person}/points/history",
    response_model=list[HistoryEntry],
    responses=error_responses(404),
    summary="Points history",
)
def get_points_history(
    person: PersonPath,
    caller: PersonReader,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="page: entries older than this one")
    ] = None,
) -> list[HistoryEntry]:
    """Return a member's entries, newest first."""
    with reading(services) as session:
        rows = services.loyalty.points_history(
            session, _person(session, services, person), limit=limit, before_id=before_id
        )
    return [HistoryEntry.model_validate(row) for row in rows]


def _answer(entry: PointsEntry, now: datetime, response: Response) -> PointsEntryView:
    # A replay returns the entry stored the first time, whose time is not this request's.
    response.status_code = status.HTTP_201_CREATED if entry.created_at == now else status.HTTP_200_OK
    return PointsEntryView.model_validate(entry_view(entry))


@router.post(
    "/members/{person}/points/adjustments",
    response_model=PointsEntryView,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": PointsEntryView, "description": "a replay"}, **error_responses(404, 409)},
    summary="Adjust points by hand",
)
def adjust(
    person: PersonPath,
    body: PointsChange,
    key: IdempotencyKey,
    caller: PointsManager,
    services: ServicesDep,
    response: Response,
) -> PointsEntryView:
    """Add or remove points with a reason; the caller is recorded as the operator."""
    now = utc_now()
    with writing(services) as session:
        entry = adjust_points(
            session,
            _person(session, services, person),
            body.points,
            reason=body.reason,
            actor=caller.name,
            key=f"adjust:{key}",
            time_zone=services.loyalty.time_zone,
            now=now,
        )
        return _answer(entry, now, response)


@router.post(
    "/members/{person}/points/redemptions",
    response_model=PointsEntryView,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PointsEntryView, "description": "a replay"},
        **error_responses(404, 409),
    },
    summary="Redeem points",
)
def redeem(
    person: PersonPath,
    body: Redemption,
    key: IdempotencyKey,
    caller: PointsManager,
    services: ServicesDep,
    response: Response,
) -> PointsEntryView:
    """Spend points, soonest-expiring first; past the balance: 409 ``insufficient_points``, no change."""
    now = utc_now()
    with writing(services) as session:
        entry = spend_points(
            session,
            _person(session, services, person),
            body.points,
            key=f"redeem:{key}",
            reason=body.reason,
            source="redemption",
            actor=caller.name,
            now=now,
        )
        return _answer(entry, now, response)


# --- tier ------------------------------------------------------------------------------------------


class NextTier(BaseModel):
    """The tier above and the growth still missing for it."""

    tier: str
    growth_needed: int


class DowngradeWarning(BaseModel):
    """ "Will go down to ``to_tier`` on ``on`` unless ``growth_needed`` more growth"."""

    on: str
    to_tier: str
    growth_needed: int


class TierView(BaseModel):
    """A member's tier, growth and what it takes to move."""

    person_id: int
    tier: str | None
    tier_name: str | None = None
    floor: str | None = None
    since: datetime | None = None
    growth_total: int
    window_growth: int | None = None
    next_tier: NextTier | None = None
    downgrade_warning: DowngradeWarning | None = None
    next_evaluation_on: str | None = None
    history: list[dict[str, Any]]


class TaskRewardView(BaseModel):
    """What completing a growth task gave; ``created`` False on a replay."""

    person_id: int
    task: str
    growth: int
    points: int
    created: bool


TaskPath = Annotated[
    str, Path(min_length=1, max_length=64, description="a growth task's code in the programme")
]


@router.post(
    "/members/{person}/tasks/{task}",
    response_model=TaskRewardView,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": TaskRewardView, "description": "a replay"}, **error_responses(404, 409)},
    summary="Complete a growth task",
)
def complete_growth_task(
    person: PersonPath,
    task: TaskPath,
    key: IdempotencyKey,
    caller: Ingestor,
    services: ServicesDep,
    response: Response,
) -> TaskRewardView:
    """Reward a growth task the member completed (growth value and points, once per its limit).

    Past the task's per-member limit: 409 ``task_limit_reached``, nothing changes. Tasks bound to
    an event type (``on_event``) are also completed by ingesting such events.
    """
    with writing(services) as session:
        result = complete_task(
            session,
            _person(session, services, person),
            task,
            key=f"api:{key}",
            actor=caller.name,
            time_zone=services.loyalty.time_zone,
        )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return TaskRewardView(
        person_id=result.person_id,
        task=result.task,
        growth=result.growth,
        points=result.points,
        created=result.created,
    )


@router.get("/members/{person}/tier", response_model=TierView, responses=error_responses(404), summary="Tier")
def get_tier(person: PersonPath, caller: PersonReader, services: ServicesDep) -> TierView:
    """Return a member's tier, growth, "N to next tier" and any "will downgrade on D" warning."""
    with reading(services) as session:
        return TierView.model_validate(
            services.loyalty.tier_summary(session, _person(session, services, person))
        )
