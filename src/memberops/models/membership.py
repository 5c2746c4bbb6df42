"""Membership (会员): a person's registration in the brand's programme."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base


class Membership(Base):
    """One spell of membership; a person who leaves and rejoins has two rows.

    ``status`` is ``active``, ``cancelled`` or ``merged`` (a duplicate spell set aside when two
    persons who were both members were merged; undoing the merge makes it active again).
    ``birthday`` (nullable, added by migration 0004) is what the birthday-gift job reads.
    """

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    member_no: Mapped[str | None] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    join_field: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    join_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    status: Mapped[str] = mapped_column(String(16))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    identifier_id: Mapped[int | None] = mapped_column(ForeignKey("identifiers.id"))
    birthday: Mapped[date | None] = mapped_column(Date)
