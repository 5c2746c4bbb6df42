"""``/api-keys``: create (the clear key is shown once), list and revoke API keys (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from memberops.access import service as access
from memberops.access.rules import Role
from memberops.api.deps import KeyManager, ServicesDep, reading, writing
from memberops.api.schemas import error_responses, safe_text
from memberops.models import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api keys"], responses=error_responses(401, 403, 422))

#: The key table's name column is 100 characters wide.
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(safe_text)]


class KeyRequest(BaseModel):
    """A new key: a name (the actor in the audit trail, e.g. the system using it) and a role."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "pos-sync", "role": "operator"}]}
    )

    name: KeyName
    role: Role


class KeyView(BaseModel):
    """A key as listed: its prefix only, never the key or its hash."""

    name: str
    role: Role
    prefix: str = Field(examples=["mo_AbCdEfGh"])
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyView:
        return cls(
            name=row.name,
            role=Role(row.role),
            prefix=row.prefix,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


class CreatedKey(KeyView):
    """A new key with its clear value, which is stored only as a hash and never shown again."""

    key: str = Field(description="send as `Authorization: Bearer <key>`; shown only this once")


class KeyList(BaseModel):
    """Every key, newest first."""

    keys: list[KeyView]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedKey,
    responses=error_responses(409),
    summary="Create an API key",
)
def create_key(body: KeyRequest, caller: KeyManager, services: ServicesDep) -> CreatedKey:
    """Create a key and return it in clear, once; a name already taken is a conflict (409)."""
    with writing(services) as session:
        row, clear = access.create_key(session, body.name, body.role.value, actor=caller.name)
        return CreatedKey(**KeyView.of(row).model_dump(), key=clear)


@router.get("", response_model=KeyList, summary="List API keys")
def list_keys(caller: KeyManager, services: ServicesDep) -> KeyList:
    """Return every key with its prefix, role and whether it was revoked."""
    with reading(services) as session:
        return KeyList(keys=[KeyView.of(row) for row in access.list_keys(session)])


@router.delete("/{name}", response_model=KeyView, responses=error_responses(404), summary="Revoke an API key")
def revoke_key(name: Annotated[KeyName, Path()], caller: KeyManager, services: ServicesDep) -> KeyView:
    """Revoke the key: requests with it get 401 from now on. Revoking twice changes nothing."""
    with writing(services) as session:
        return KeyView.of(access.revoke_key(session, name, actor=caller.name))
