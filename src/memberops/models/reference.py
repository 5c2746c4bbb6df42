"""Stores and channels (fields): the places where a person meets the brand."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from memberops.kit.db import BigId, UTCDateTime
from memberops.models.base import Base


class Channel(Base):
    """A channel or field (场域): a sales source, a social field, or both."""

    __tablename__ = "channels"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: ``sales`` takes orders, ``social`` only sees events (follows, groups, visits), ``both`` does both.
    kind: Mapped[str] = mapped_column(String(16))


class Store(Base):
    """A physical (or virtual) store; its type feeds cross tables such as tier × store type."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    store_type: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
