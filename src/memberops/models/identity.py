"""OneID: persons, the identifiers that name them, and the record of merges and splits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base


class Person(Base):
    """One human being behind any number of identifiers.

    A person absorbed by a merge keeps its row with ``merged_into_id`` set, so an id handed out
    earlier still leads to the survivor.
    """

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)


class Identifier(Base):
    """One identifier of a person: stored as a keyed digest (lookup) and ciphertext (clear value).

    ``namespace`` scopes identifiers that are only unique within an app or platform: an openid
    belongs to one WeChat app, a buyer id to one marketplace. It is empty for global types.
    """

    __tablename__ = "identifiers"
    __table_args__ = (UniqueConstraint("digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    namespace: Mapped[str] = mapped_column(String(64))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary())
    masked: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdentityMerge(Base):
    """A merge of ``absorbed_id`` into ``survivor_id``; ``detail`` lists what moved, for undoing."""

    __tablename__ = "identity_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    absorbed_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    identifier_kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    undone_by: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class IdentitySeparation(Base):
    """Two persons an operator declared different: OneID never merges them again."""

    __tablename__ = "identity_separations"
    __table_args__ = (Index("ix_identity_separations_pair", "person_low_id", "person_high_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_low_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    person_high_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
