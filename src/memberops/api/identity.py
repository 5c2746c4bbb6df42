"""``/identity/merges``: the merges OneID made, and undoing a wrong one.

Undoing gives the absorbed person back its identifiers and the records attributed by them, and
keeps the two apart from then on; undoing an undone merge changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from memberops.api.deps import IdentityManager, PersonReader, ServicesDep, reading, writing
from memberops.api.schemas import MAX_ID, Text, error_responses
from memberops.identity import repository
from memberops.identity.queries import merges_of
from memberops.kit.errors import NotFound
from memberops.models import IdentityMerge

router = APIRouter(prefix="/identity", tags=["identity"], responses=error_responses(401, 403, 404, 422))


class Merge(BaseModel):
    """A merge of ``absorbed_id`` into ``survivor_id`` because a record shared an identifier."""

    id: int
    survivor_id: int
    absorbed_id: int
    identifier_type: str = Field(examples=["phone"])
    reason: str
    actor: str
    at: datetime
    undone_at: datetime | None
    undone_by: str | None

    @classmethod
    def of(cls, merge: IdentityMerge) -> Merge:
        return cls(
            id=merge.id,
            survivor_id=merge.survivor_id,
            absorbed_id=merge.absorbed_id,
            identifier_type=merge.identifier_kind,
            reason=merge.reason,
            actor=merge.actor,
            at=merge.created_at,
            undone_at=merge.undone_at,
            undone_by=merge.undone_by,
        )


class MergeList(BaseModel):
    """Merges, newest first."""

    merges: list[Merge]


class UndoRequest(BaseModel):
    """Why the merge was wrong (kept in the audit trail)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "different people"}]}
    )

    reason: Text


@router.get("/merges", response_model=MergeList, summary="List merges")
def list_merges(
    caller: PersonReader,
    services: ServicesDep,
    person_id: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, description="only merges this person (or its survivor) took part in"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MergeList:
    """Return recent merges, or those of one person (a merged id stands for its survivor)."""
    with reading(services) as session:
        current = None
        if person_id is not None:
            current = repository.current_person_id(session, person_id)
            if current is None:
                raise NotFound(f"person {person_id} does not exist")
        return MergeList(merges=[Merge.of(merge) for merge in merges_of(session, current, limit)])


@router.post("/merges/{merge_id}/undo", response_model=Merge, summary="Undo a wrong merge")
def undo_merge(
    merge_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: UndoRequest,
    caller: IdentityManager,
    services: ServicesDep,
) -> Merge:
    """Split the absorbed person off again with what it brought; the two are never merged again."""
    with writing(services) as session:
        merge = services.identity.undo_merge(session, merge_id, actor=caller.name, reason=body.reason)
        return Merge.of(merge)
