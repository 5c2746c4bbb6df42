"""Identifier types, their normalisation and their masked display.

Normalisation decides what "the same identifier" means: ``+86 138 0013 8000``, ``138-0013-8000``
and ``13800138000`` are one phone. Everything here is pure (no I/O).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

import phonenumbers

from memberops.kit.errors import ValidationFailed
from memberops.kit.pickling import Reduced, reduce_tuple


class IdentifierKind(StrEnum):
    """The kinds of identifier OneID knows; the namespace column scopes the per-app ones."""

    PHONE = "phone"
    UNIONID = "unionid"
    OPENID = "openid"
    PLATFORM_USER_ID = "platform_user_id"
    MEMBER_NO = "member_no"
    EMAIL = "email"


#: Kinds only unique inside an app or platform; their namespace is that app or platform.
NAMESPACED_KINDS = frozenset({IdentifierKind.OPENID, IdentifierKind.PLATFORM_USER_ID})

#: Which identifier a record is attributed by when it carries several (strongest first).
ATTRIBUTION_ORDER = (
    IdentifierKind.MEMBER_NO,
    IdentifierKind.PHONE,
    IdentifierKind.UNIONID,
    IdentifierKind.OPENID,
    IdentifierKind.PLATFORM_USER_ID,
    IdentifierKind.EMAIL,
)

_MASK_WIDTH = 64
_TOKEN = re.compile(r"^[A-Za-z0-9_\-.:@]{1,64}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$")


class InvalidIdentifier(ValidationFailed, ValueError):
    """An identifier value that cannot be normalised (a malformed phone, an empty id…)."""

    code = "invalid_identifier"


class IdentifierKey(NamedTuple):
    """A normalised identifier: kind, namespace (``""`` for global kinds) and value.

    A named tuple rather than a dataclass: batches hash and compare millions of them.
    """

    kind: IdentifierKind
    namespace: str
    value: str

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


_SEPARATORS = re.compile(r"[\s\-().]")


@lru_cache(maxsize=8)
def _mobile_pattern(region: str) -> re.Pattern[str] | None:
    """Return libphonenumber's own pattern of valid mobile numbers for ``region``."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None or metadata.mobile.national_number_pattern is None:
        return None
    return re.compile(metadata.mobile.national_number_pattern)


@lru_cache(maxsize=200_000)
def normalize_phone(raw: str, default_region: str = "CN") -> str:
    """Return the phone in E.164 (``+8613800138000``) or raise ``InvalidIdentifier``.

    Numbers without a country code are read in ``default_region``; ``86 138…`` without the plus
    is common in Chinese exports, so a leading 86 before an 11-digit mobile is accepted too.
    """
    digits = _SEPARATORS.sub("", raw.strip())
    # Fast path for the common case, a domestic mobile, judged by libphonenumber's own metadata
    # pattern; parsing with the full library costs ~80 µs a number, which dominates big imports.
    mobile = _mobile_pattern(default_region)
    if mobile is not None and digits.isascii() and digits.isdigit() and mobile.fullmatch(digits):
        code = phonenumbers.country_code_for_region(default_region)
        return f"+{code}{digits}"
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        digits = "+" + digits
    elif digits.startswith("0086"):
        digits = "+" + digits[2:]
    try:
        number = phonenumbers.parse(digits, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier(f"phone {raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier(f"phone {raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize(kind: IdentifierKind, raw: str, namespace: str = "") -> IdentifierKey:
    """Normalise a raw identifier value of ``kind`` into its key, or raise ``InvalidIdentifier``."""
    value = raw.strip()
    if not value:
        raise InvalidIdentifier(f"{kind} is empty")
    if kind is IdentifierKind.PHONE:
        return IdentifierKey(kind, "", normalize_phone(value))
    if kind is IdentifierKind.EMAIL:
        if not _EMAIL.match(value):
            raise InvalidIdentifier(f"email {raw!r} is not an e-mail address")
        return IdentifierKey(kind, "", value.lower())
    if not _TOKEN.match(value):
        raise InvalidIdentifier(f"{kind} {raw!r} has characters an id cannot have")
    if kind in NAMESPACED_KINDS:
        if not namespace:
            raise InvalidIdentifier(f"{kind} needs the app or platform it belongs to")
        return IdentifierKey(kind, namespace, value)
    return IdentifierKey(kind, "", value)


def mask(kind: IdentifierKind | str, value: str) -> str:
    """Return the display form for roles that may not see the clear value (``138****8000``)."""
    if kind == IdentifierKind.PHONE:
        local = value[3:] if value.startswith("+86") else value
        if len(local) >= 8:
            return f"{local[:3]}****{local[-4:]}"
        return "****" + local[-2:]
    if kind == IdentifierKind.EMAIL:
        name, _, domain = value.partition("@")
        shown = f"{name[:1]}***@{domain}"
        return shown if len(shown) <= _MASK_WIDTH else shown[: _MASK_WIDTH - 3] + "..."
    if len(value) <= 6:
        return value[:1] + "***"
    return f"{value[:3]}***{value[-3:]}"
