"""``/tags`` and ``/segments``: define, refresh, set by hand, preview, history and export.

Who may do what (``insight.tags.may_*``): every role lists tags and sees a person's tags;
analysts also preview, list, read histories and export (identifiers masked unless the role may
see them in clear); operators and admins define and refresh; guides set or remove only the manual
tags that allow guides. A bad expression answers 422 ``invalid_expression`` naming the column.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from memberops.access.rules import Role, may_see_identifiers
from memberops.access.service import Caller
from memberops.api.deps import ServicesDep, current_caller, reading, writing
from memberops.api.schemas import MAX_ID, error_responses
from memberops.insight import segments, tags
from memberops.insight.tags import Refreshed
from memberops.models import Segment, Tag
from memberops.wiring import Services

router = APIRouter(tags=["tags and segments"], responses=error_responses(401, 403, 422))

CallerDep = Annotated[Caller, Depends(current_caller)]
NamePath = Annotated[str, Path(min_length=1, max_length=64, description="the tag or segment name")]
PersonPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="a person id (a merged id leads to the survivor)")
]
Expression = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4000),
    Field(
        description="see docs/segments.md",
        examples=['tier in ("gold","silver") and bought(category="榴莲", days=90) >= 2 and not tag("投诉")'],
    ),
]


def _analyst(caller: Caller) -> None:
    tags.require(caller.role is not Role.GUIDE, caller.role, "read segments or tag histories")


def _definer(caller: Caller) -> None:
    tags.require(tags.may_define(caller.role), caller.role, "define or refresh tags and segments")


class TagRequest(BaseModel):
    """A rule tag (with ``expression``) or a manual tag (without)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    expression: Expression | None = None
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    guides_may_set: bool = Field(default=False, description="store guides may set this manual tag")


class TagView(BaseModel):
    name: str
    kind: Literal["rule", "manual"]
    expression: str | None
    description: str
    guides_may_set: bool
    holders: int
    created_at: datetime
    created_by: str
    refreshed_at: datetime | None


def _tag_view(tag: Tag) -> TagView:
    return TagView.model_validate(tag, from_attributes=True)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None, description="rule tags to refresh; all of them when absent"
    )


class RefreshView(BaseModel):
    """How many people came in and went out; ``holders`` is the size afterwards."""

    name: str
    gained: int
    lost: int
    holders: int


def _refresh_views(results: list[Refreshed]) -> list[RefreshView]:
    return [RefreshView.model_validate(result.as_dict()) for result in results]


class TagChangeView(BaseModel):
    tag: str
    person_id: int
    change: Literal["gained", "lost"]
    source: Literal["rule", "manual"]
    by: str
    at: datetime
    note: str | None


class HeldTagView(BaseModel):
    tag: str
    kind: str
    since: datetime
    source: str
    by: str


class PersonTagsView(BaseModel):
    person_id: int
    tags: list[HeldTagView]


class ManualTagResult(BaseModel):
    tag: str
    person_id: int
    holds: bool
    changed: bool = Field(description="false when the person already held (or did not hold) the tag")


def _by_hand(
    change: tags.ChangeByHand, name: str, person_id: int, caller: Caller, services: Services, *, holds: bool
) -> ManualTagResult:
    """Set (``holds``) or take a manual tag as the caller, whose role the tag must allow.

    ``change`` is ``tags.set_by_hand`` or ``tags.remove_by_hand``; both answer whether anything
    changed, and the answer says whether the person holds the tag now.
    """
    with writing(services) as session:
        changed = change(session, name, person_id, actor=caller.name, role=caller.role)
    return ManualTagResult(tag=name, person_id=person_id, holds=holds, changed=changed)


@router.get("/tags", response_model=list[TagView], summary="List tags")
def list_tags(caller: CallerDep, services: ServicesDep) -> list[TagView]:
    """Every tag with its kind, rule and number of holders (every role)."""
    with reading(services) as session:
        return [_tag_view(tag) for tag in tags.list_tags(session)]


@router.post(
    "/tags",
    response_model=TagView,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 409),
    summary="Define a tag",
)
def create_tag(body: TagRequest, caller: CallerDep, services: ServicesDep) -> TagView:
    """Define a rule tag (computed now, then at every refresh) or a manual tag (operators, admins)."""
    _definer(caller)
    with writing(services) as session:
        tag = tags.define_tag(
            session,
            body.name,
            expression=body.expression,
            description=body.description,
            guides_may_set=body.guides_may_set,
            actor=caller.name,
        )
    if tag.kind == "rule":
        tags.refresh_tags(
            services.engine,
            services.sessions,
            [tag.name],
            time_zone=services.settings.time_zone,
            actor=caller.name,
        )
    with reading(services) as session:
        return _tag_view(tags.find_tag(session, body.name))


@router.post(
    "/tags/refresh",
    response_model=list[RefreshView],
    responses=error_responses(404, 409),
    summary="Refresh tags",
)
def refresh_tags(body: RefreshRequest, caller: CallerDep, services: ServicesDep) -> list[RefreshView]:
    """Recompute rule tags in batch (all, or the named ones); gains and losses go to the history."""
    _definer(caller)
    results = tags.refresh_tags(
        services.engine,
        services.sessions,
        body.names,
        time_zone=services.settings.time_zone,
        actor=caller.name,
    )
    return _refresh_views(results)


@router.get(
    "/tags/{name}/history",
    response_model=list[TagChangeView],
    responses=error_responses(404),
    summary="Tag history",
)
def tag_history(
    name: NamePath,
    caller: CallerDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TagChangeView]:
    """When people gained or lost the tag, by rule or by hand, and who did it (newest first)."""
    _analyst(caller)
    with reading(services) as session:
        return [
            TagChangeView(
                tag=tag_name,
                person_id=change.person_id,
                change=change.change,
                source=change.source,
                by=change.actor,
                at=change.at,
                note=change.note,
            )
            for change, tag_name in tags.history(session, name=name, limit=limit)
        ]


@router.put(
    "/tags/{name}/persons/{person_id}",
    response_model=ManualTagResult,
    responses=error_responses(404, 409),
    summary="Set a manual tag",
)
def set_tag(
    name: NamePath, person_id: PersonPath, caller: CallerDep, services: ServicesDep
) -> ManualTagResult:
    """Give a person a manual tag (operators; guides where the tag allows); a repeat changes nothing."""
    return _by_hand(tags.set_by_hand, name, person_id, caller, services, holds=True)


@router.delete(
    "/tags/{name}/persons/{person_id}",
    response_model=ManualTagResult,
    responses=error_responses(404, 409),
    summary="Remove a manual tag",
)
def remove_tag(
    name: NamePath, person_id: PersonPath, caller: CallerDep, services: ServicesDep
) -> ManualTagResult:
    """Take a manual tag from a person (operators; guides where the tag allows)."""
    return _by_hand(tags.remove_by_hand, name, person_id, caller, services, holds=False)


@router.get(
    "/persons/{person_id}/tags",
    response_model=PersonTagsView,
    responses=error_responses(404),
    summary="A person's tags",
)
def person_tags(person_id: PersonPath, caller: CallerDep, services: ServicesDep) -> PersonTagsView:
    """The tags a person holds now (every role)."""
    with reading(services) as session:
        live, held = tags.tags_of(session, person_id)
        return PersonTagsView(
            person_id=live,
            tags=[
                HeldTagView(tag=tag.name, kind=tag.kind, since=row.since, source=row.source, by=row.actor)
                for tag, row in held
            ],
        )


# -------------------------------------------------------------------------------------- segments


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: Expression
    as_of: date | None = Field(default=None, description="business date to evaluate on (default today)")


class PreviewView(BaseModel):
    expression: str
    people: int


class SegmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    expression: Expression
    refresh: Literal["daily", "hourly", "manual"] = "daily"
    description: Annotated[str, StringConstraints(max_length=500)] = ""


class SegmentView(BaseModel):
    name: str
    expression: str
    description: str
    refresh: str
    size: int
    created_at: datetime
    created_by: str
    refreshed_at: datetime | None
    next_refresh_at: datetime | None


def _segment_view(segment: Segment) -> SegmentView:
    return SegmentView.model_validate(segment, from_attributes=True)


class SegmentChangeView(BaseModel):
    person_id: int
    change: Literal["entered", "left"]
    at: datetime
    by: str


@router.post(
    "/segments/preview", response_model=PreviewView, responses=error_responses(404), summary="Preview"
)
def preview_segment(body: PreviewRequest, caller: CallerDep, services: ServicesDep) -> PreviewView:
    """Count who an expression selects, without saving anything (analysts and up)."""
    _analyst(caller)
    with reading(services) as session:
        people = segments.preview(
            services.engine, session, body.expression, time_zone=services.settings.time_zone, as_of=body.as_of
        )
    return PreviewView(expression=body.expression, people=people)


@router.get("/segments", response_model=list[SegmentView], summary="List segments")
def list_segments(caller: CallerDep, services: ServicesDep) -> list[SegmentView]:
    """Every segment with its size and schedule (analysts and up)."""
    _analyst(caller)
    with reading(services) as session:
        return [_segment_view(segment) for segment in segments.list_segments(session)]


@router.post(
    "/segments",
    response_model=SegmentView,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 409),
    summary="Save a segment",
)
def create_segment(body: SegmentRequest, caller: CallerDep, services: ServicesDep) -> SegmentView:
    """Save a segment and fill it; everyone in it enters (``segment.entered``) (operators, admins)."""
    _definer(caller)
    with writing(services) as session:
        segments.define_segment(
            session,
            body.name,
            body.expression,
            refresh=body.refresh,
            description=body.description,
            actor=caller.name,
        )
    segments.refresh(
        services.engine,
        services.sessions,
        [body.name],
        time_zone=services.settings.time_zone,
        actor=caller.name,
    )
    with reading(services) as session:
        return _segment_view(segments.find_segment(session, body.name))


@router.post("/segments/refresh-due", response_model=list[RefreshView], summary="Refresh due segments")
def refresh_due_segments(caller: CallerDep, services: ServicesDep) -> list[RefreshView]:
    """Refresh every daily/hourly segment whose time has come (what a scheduler calls)."""
    _definer(caller)
    return _refresh_views(
        segments.refresh_due(
            services.engine, services.sessions, time_zone=services.settings.time_zone, actor=caller.name
        )
    )


@router.post(
    "/segments/{name}/refresh",
    response_model=RefreshView,
    responses=error_responses(404),
    summary="Refresh a segment",
)
def refresh_segment(name: NamePath, caller: CallerDep, services: ServicesDep) -> RefreshView:
    """Refresh one segment now: who entered and who left is recorded and announced."""
    _definer(caller)
    [result] = segments.refresh(
        services.engine, services.sessions, [name], time_zone=services.settings.time_zone, actor=caller.name
    )
    return _refresh_views([result])[0]


@router.get(
    "/segments/{name}/history",
    response_model=list[SegmentChangeView],
    responses=error_responses(404),
    summary="Segment history",
)
def segment_history(
    name: NamePath,
    caller: CallerDep,
    services: ServicesDep,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SegmentChangeView]:
    """Who entered and left the segment, and when (newest first)."""
    _analyst(caller)
    with reading(services) as session:
        return [
            SegmentChangeView(person_id=c.person_id, change=c.change, at=c.at, by=c.actor)
            for c in segments.history(session, name, person_id=person_id, limit=limit)
        ]


_CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "one row per member"},
    **error_responses(404),
}


@router.get(
    "/segments/{name}/export",
    response_class=Response,
    responses=_CSV_RESPONSES,
    summary="Export a segment as CSV",
)
def export_segment(name: NamePath, caller: CallerDep, services: ServicesDep) -> Response:
    """Export the members as CSV (person_id, member_no, phone, tier, entered_at); audited.

    Phones are masked unless the caller's role may see identifiers in clear."""
    _analyst(caller)
    reveal = may_see_identifiers(caller.role, services.settings.reveal_identifier_roles)
    out = io.StringIO()
    with writing(services) as session:
        segments.export_csv(
            session, name, out, vault=services.vault, reveal=reveal, actor=caller.name, via="api"
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="segment.csv"'},
    )
