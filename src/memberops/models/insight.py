"""Tags and segments: definitions, who holds them now, and when each person gained or lost them.

Holdings (``person_tags``, ``segment_members``) are the current state; the history tables are
append-only and say who changed what, when and how (a rule refresh or a person's hand), so a
journey or an auditor can replay the past.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base

#: Tag kinds: ``rule`` (computed in batch from ``expression``) or ``manual`` (set by hand).
TAG_KINDS = ("rule", "manual")
#: Segment refresh schedules; ``manual`` segments refresh only when asked.
REFRESH_SCHEDULES = ("daily", "hourly", "manual")


class Tag(Base):
    """A label on persons (标签): computed by a rule, or set by operators (and guides, if allowed)."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    expression: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500))
    guides_may_set: Mapped[bool] = mapped_column(Boolean)
    holders: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PersonTag(Base):
    """A person holds a tag now (one row per tag and person)."""

    __tablename__ = "person_tags"
    __table_args__ = (Index("ix_person_tags_person", "person_id"),)

    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True, autoincrement=False)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True, autoincrement=False)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))


class TagChange(Base):
    """A person gained or lost a tag: ``change`` is ``gained`` or ``lost``, ``source`` rule or manual."""

    __tablename__ = "tag_history"
    __table_args__ = (
        Index("ix_tag_history_tag", "tag_id", "id"),
        Index("ix_tag_history_person", "person_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    change: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Segment(Base):
    """A saved audience (人群): an expression, its refresh schedule and its current size."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    expression: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500))
    refresh: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class SegmentMember(Base):
    """A person is in a segment now, since ``entered_at``."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_person", "person_id"),)

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), primary_key=True, autoincrement=False)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True, autoincrement=False)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SegmentChange(Base):
    """A person entered or left a segment at a refresh (``change`` is ``entered`` or ``left``)."""

    __tablename__ = "segment_history"
    __table_args__ = (
        Index("ix_segment_history_segment", "segment_id", "id"),
        Index("ix_segment_history_person", "person_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    change: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
