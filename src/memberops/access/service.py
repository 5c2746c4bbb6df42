"""API keys: created once and shown once, stored only as a SHA-256, looked up by prefix.

Keys carry 256 bits of randomness, so a plain SHA-256 is enough (a slow password hash protects
guessable secrets; these are not guessable) and keeps authentication to one index seek.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.access.rules import Role
from memberops.kit.clock import utc_now
from memberops.kit.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from memberops.models import ApiKey, AuditEntry

KEY_PREFIX = "mo_"
_PREFIX_LENGTH = 11  # "mo_" + 8 characters: enough to find the row, useless for guessing


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's name (the actor in audit entries) and its role."""

    name: str
    role: Role


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, role: str, *, actor: str) -> tuple[ApiKey, str]:
    """Create a key; return the row and the clear key, which is never retrievable again."""
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("a key needs a name of 1 to 100 characters")
    try:
        parsed_role = Role(role)
    except ValueError:
        raise ValidationFailed(f"role {role!r} is not one of {', '.join(r.value for r in Role)}") from None
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise Conflict(f"a key named {name!r} already exists")
    clear = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        role=parsed_role.value,
        prefix=clear[:_PREFIX_LENGTH],
        key_hash=_hash(clear),
        created_at=utc_now(),
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    audit(session, actor, "apikey.created", "api_key", str(row.id), {"name": name, "role": parsed_role.value})
    return row, clear


#: How long a process trusts a key it has checked before asking the database again. A key
#: revoked in another process stops working within this time; in the same process at once.
TRUST_SECONDS = 30.0
_trusted: dict[tuple[str, str], tuple[Caller, float]] = {}


def trusted_caller(database: str, presented: str | None) -> Caller | None:
    """Return the caller of a key checked in the last ``TRUST_SECONDS`` on ``database``, else None.

    Needs no database, so a request can be admitted without leaving the event loop; raises
    ``Unauthenticated`` for a missing or malformed key.
    """
    if not presented or not presented.startswith(KEY_PREFIX):
        raise Unauthenticated("send an API key as 'Authorization: Bearer mo_…'")
    trusted = _trusted.get((database, _hash(presented)))
    if trusted is not None and trusted[1] > time.monotonic():
        return trusted[0]
    return None


def authenticate(session: Session, presented: str | None) -> Caller:
    """Return the caller for a presented key, or raise ``Unauthenticated``.

    A key checked in the last ``TRUST_SECONDS`` is not looked up again: the lookup would
    otherwise be a database round trip on every request of a busy POS integration.
    """
    database = str(session.get_bind().engine.url)
    trusted = trusted_caller(database, presented)
    if trusted is not None:
        return trusted
    assert presented is not None  # trusted_caller refused anything else
    digest = _hash(presented)
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == presented[:_PREFIX_LENGTH])):
        if hmac.compare_digest(row.key_hash, digest) and row.revoked_at is None:
            caller = Caller(row.name, Role(row.role))
            _trusted[(database, digest)] = (caller, time.monotonic() + TRUST_SECONDS)
            return caller
    _trusted.pop((database, digest), None)
    raise Unauthenticated("the API key is not valid or has been revoked")


def revoke_key(session: Session, name: str, *, actor: str) -> ApiKey:
    """Revoke the key called ``name``; revoking twice changes nothing."""
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        raise NotFound(f"no key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        forget_trusted_keys()
        audit(session, actor, "apikey.revoked", "api_key", str(row.id), {"name": name})
    return row


def forget_trusted_keys() -> None:
    """Make every key be checked against the database again (after a revocation)."""
    _trusted.clear()


def list_keys(session: Session) -> list[ApiKey]:
    """Return every key, newest first (hashes included; callers show the prefix only)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))


def audit(
    session: Session, actor: str, action: str, subject_type: str, subject_id: str, detail: dict[str, Any]
) -> None:
    """Append an entry to the audit trail (part of the caller's transaction)."""
    session.add(
        AuditEntry(
            at=utc_now(),
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=detail,
        )
    )
