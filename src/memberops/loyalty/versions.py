"""Programme versions in the store: apply a document, find the active one.

Applying stores the canonical document under its digest and makes it the one active version;
every ledger entry written afterwards records that version's id. Applying the same content again
changes nothing (or re-activates it, if another version was applied since); a version label
names one content only, so "2026.1" can never mean two different rule sets in the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memberops.events import emit
from memberops.kit.clock import utc_now
from memberops.kit.db import lock_keys
from memberops.kit.errors import Conflict, NotFound
from memberops.loyalty.programme import Programme, load_programme
from memberops.models import ProgrammeVersion

_LOCK = "loyalty:programme"
#: Parsed programmes by version id; a stored version never changes, so entries never go stale.
_PARSED: dict[tuple[int, str], Programme] = {}


@dataclass(frozen=True)
class ActiveProgramme:
    """A stored programme version and its parsed document."""

    version_id: int
    version: str
    digest: str
    applied_at: datetime
    applied_by: str
    active: bool
    programme: Programme


class NoProgramme(NotFound):
    """No programme has been applied yet."""

    code = "no_programme"


def _parsed(row: ProgrammeVersion) -> ActiveProgramme:
    cache_key = (row.id, row.digest)
    programme = _PARSED.get(cache_key)
    if programme is None:
        programme = load_programme(json.dumps(row.document), "json")
        _PARSED[cache_key] = programme
    return ActiveProgramme(
        row.id, row.version, row.digest, row.applied_at, row.applied_by, row.active, programme
    )


def active_programme(session: Session) -> ActiveProgramme | None:
    """Return the active programme version, or None before any programme was applied."""
    row = session.scalars(select(ProgrammeVersion).where(ProgrammeVersion.active.is_(True))).first()
    return _parsed(row) if row is not None else None


def require_programme(session: Session) -> ActiveProgramme:
    """Return the active programme version, or raise ``NoProgramme``."""
    found = active_programme(session)
    if found is None:
        raise NoProgramme("no programme is applied yet: run `memberops programme apply FILE` first")
    return found


def programme_version(session: Session, version_id: int) -> ActiveProgramme:
    """Return a stored version by id (the one an entry names)."""
    row = session.get(ProgrammeVersion, version_id)
    if row is None:
        raise NotFound(f"programme version {version_id} does not exist")
    return _parsed(row)


def all_versions(session: Session) -> list[ActiveProgramme]:
    """Return every stored version, oldest first."""
    return [_parsed(row) for row in session.scalars(select(ProgrammeVersion).order_by(ProgrammeVersion.id))]


def apply_programme(
    session: Session, programme: Programme, *, actor: str, now: datetime | None = None
) -> tuple[ActiveProgramme, bool]:
    """Make ``programme`` the active version; return it and whether anything changed.

    The same content applied again is a no-op while it is active. A label already used for
    different content is refused (``Conflict``): give the new document a new ``version``.
    """
    now = now or utc_now()
    lock_keys(session, [_LOCK])
    digest = programme.digest()
    by_digest = session.scalars(
        select(ProgrammeVersion).where(ProgrammeVersion.digest == digest).with_for_update()
    ).first()
    if by_digest is not None and by_digest.active:
        return _parsed(by_digest), False
    if by_digest is None:
        clash = session.scalars(
            select(ProgrammeVersion).where(ProgrammeVersion.version == programme.version)
        ).first()
        if clash is not None:
            raise Conflict(
                f"version {programme.version!r} was applied before with different content "
                f"(digest {clash.digest[:12]}…): give the changed document a new version",
                version=programme.version,
                digest=clash.digest,
            )
    session.execute(
        update(ProgrammeVersion).where(ProgrammeVersion.active.is_(True)).values(active=False),
        execution_options={"synchronize_session": False},
    )
    if by_digest is None:
        row = ProgrammeVersion(
            version=programme.version,
            digest=digest,
            document=json.loads(programme.canonical_json()),
            active=True,
            applied_at=now,
            applied_by=actor,
        )
        session.add(row)
    else:
        row = by_digest
        row.active = True
        row.applied_at, row.applied_by = now, actor
    session.flush()
    emit(
        session,
        "programme.applied",
        {"version_id": row.id, "version": row.version, "digest": digest, "actor": actor},
        key=f"programme:applied:{row.id}:{now.isoformat()}",
        occurred_at=now,
        now=now,
    )
    return _parsed(row), True
