"""Which role may do what. Pure: the API and the CLI ask these before acting."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """The roles of people and systems that use memberops."""

    ADMIN = "admin"
    OPERATOR = "operator"
    ANALYST = "analyst"
    GUIDE = "guide"


class Permission(StrEnum):
    """Actions that are granted per role."""

    INGEST = "ingest"  # write orders, refunds, events, registrations
    READ_PERSONS = "read_persons"
    MANAGE_IDENTITY = "manage_identity"  # split persons, undo merges
    MANAGE_KEYS = "manage_keys"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.INGEST, Permission.READ_PERSONS, Permission.MANAGE_IDENTITY}),
    Role.ANALYST: frozenset({Permission.READ_PERSONS}),
    Role.GUIDE: frozenset({Permission.READ_PERSONS}),
}


def may(role: Role, permission: Permission) -> bool:
    """Return whether ``role`` holds ``permission``."""
    return permission in GRANTS[role]


def may_see_identifiers(role: Role, reveal_roles: frozenset[str]) -> bool:
    """Return whether ``role`` sees identifiers in clear (settings decide which roles do)."""
    return role.value in reveal_roles
