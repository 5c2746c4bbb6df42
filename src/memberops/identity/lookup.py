"""Name a person on the command line or in a URL by any identifier, or by id.

Accepted forms: ``person:42`` (a person id), ``phone:13800138000``, ``unionid:oU…``,
``member_no:M0001``, ``email:a@b.cn``, ``openid:APP:oX…``, ``platform_user_id:tmall:t123``, or a bare
value, tried as a phone, then a member card number, unionid and e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass

from memberops.identity.identifiers import (
    NAMESPACED_KINDS,
    IdentifierKey,
    IdentifierKind,
    InvalidIdentifier,
    normalize,
)

_BARE_ORDER = (IdentifierKind.PHONE, IdentifierKind.MEMBER_NO, IdentifierKind.UNIONID, IdentifierKind.EMAIL)


@dataclass(frozen=True)
class PersonReference:
    """Either a person id or identifier keys to try in order."""

    person_id: int | None
    candidates: tuple[IdentifierKey, ...]


def parse_person_reference(text: str) -> PersonReference:
    """Parse ``text`` into a reference; raise ``InvalidIdentifier`` when nothing could match."""
    raw = text.strip()
    head, _, rest = raw.partition(":")
    if rest and head == "person":
        if not (rest.isascii() and rest.isdigit()) or int(rest) >= 2**63:
            raise InvalidIdentifier(f"person id {rest!r} is not a valid id")
        return PersonReference(int(rest), ())
    if rest and head in IdentifierKind.__members__.values():
        kind = IdentifierKind(head)
        if kind in NAMESPACED_KINDS:
            namespace, _, value = rest.partition(":")
            if not value:
                raise InvalidIdentifier(f"write {kind} as {kind}:APP_OR_PLATFORM:VALUE")
            return PersonReference(None, (normalize(kind, value, namespace),))
        return PersonReference(None, (normalize(kind, rest),))
    candidates = []
    for kind in _BARE_ORDER:
        try:
            candidates.append(normalize(kind, raw))
        except InvalidIdentifier:
            continue
    if not candidates:
        raise InvalidIdentifier(f"{text!r} is neither a person id nor an identifier")
    return PersonReference(None, tuple(candidates))
