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
    MANAGE_PROGRAMME = "manage_programme"  # apply the loyalty programme document
    MANAGE_POINTS = "manage_points"  # adjust and redeem members' points
    MANAGE_OFFERS = "manage_offers"  # issue, import and void coupons; cancel rewards; refund plans
    CHECKOUT = "checkout"  # quote and settle orders, redeem coupons and rewards, sell paid plans
    READ_REPORTS = "read_reports"  # points economics, tier and coupon reports (aggregates, no persons)


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {Permission.INGEST, Permission.READ_PERSONS, Permission.MANAGE_IDENTITY, Permission.MANAGE_POINTS}
        | {Permission.MANAGE_OFFERS, Permission.CHECKOUT, Permission.READ_REPORTS}
    ),
    Role.ANALYST: frozenset({Permission.READ_PERSONS, Permission.READ_REPORTS}),
    Role.GUIDE: frozenset({Permission.READ_PERSONS, Permission.CHECKOUT}),  # a guide serves at the till
}


def may(role: Role, permission: Permission) -> bool:
    """Return whether ``role`` holds ``permission``."""
    return permission in GRANTS[role]


def may_see_identifiers(role: Role, reveal_roles: frozenset[str]) -> bool:
    """Return whether ``role`` sees identifiers in clear (settings decide which roles do)."""
    return role.value in reveal_roles
