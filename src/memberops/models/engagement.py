"""Behaviour events and consent: what people do in each field, and what they agreed to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base


class Event(Base):
    """One behaviour event (register, follow, join_group, visit, share, review, …).

    ``dedup_key`` is ``field:external_id`` when the source gave an id, else a hash of the content,
    so replaying a file or a request never stores an event twice.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_person_occurred", "person_id", "occurred_at"),
        Index("ix_events_type_occurred", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    identifier_id: Mapped[int] = mapped_column(ForeignKey("identifiers.id"))
    share_id: Mapped[str | None] = mapped_column(String(64), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consent(Base):
    """A grant or withdrawal of consent for one contact channel; the latest row per channel holds."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_person_channel", "person_id", "channel", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    channel: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    field: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
