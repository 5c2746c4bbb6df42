"""Channels and fields (场域): the registry that orders' ``source`` and events' ``field`` must name."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from memberops.access.service import audit
from memberops.kit.errors import Conflict, ValidationFailed
from memberops.models import Channel

CHANNEL_KINDS = ("sales", "social", "both")
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def add_channel(session: Session, code: str, name: str, kind: str, *, actor: str) -> Channel:
    """Register a new channel; codes are lower-case words such as ``jd`` or ``xiaohongshu``."""
    if not _CODE.match(code):
        raise ValidationFailed(f"channel code {code!r} must be 2–32 lower-case letters, digits or _")
    if kind not in CHANNEL_KINDS:
        raise ValidationFailed(f"channel kind {kind!r} is not one of {', '.join(CHANNEL_KINDS)}")
    if not name.strip():
        raise ValidationFailed("a channel needs a name")
    if session.get(Channel, code) is not None:
        raise Conflict(f"channel {code!r} already exists")
    channel = Channel(code=code, name=name.strip(), kind=kind)
    session.add(channel)
    audit(session, actor, "channel.added", "channel", code, {"name": name, "kind": kind})
    return channel


def list_channels(session: Session) -> list[Channel]:
    """Return every channel, by code."""
    return list(session.scalars(select(Channel).order_by(Channel.code)))
