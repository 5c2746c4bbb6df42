"""Field types and models shared by every area of the API.

The API accepts exactly what the import formats accept (docs/import-formats.md): money as yuan
strings, instants with an offset, identifiers in any common format. The types below only decide
the *shape* of a request and keep out values no column can hold (NUL bytes, lone surrogates,
numbers beyond 64 bits): the business rules stay in ``memberops.ingest.records``, which judges a
row from the API and from a file alike.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

#: The largest id a 64-bit primary key can hold; larger ids cannot exist and cannot be queried.
MAX_ID = 2**63 - 1

_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def safe_text(value: str) -> str:
    """Refuse control characters and lone surrogates: no column (and no PostgreSQL text) holds them."""
    if _UNSAFE.search(value):
        raise ValueError("text must not contain control characters")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("instant is out of range") from None


def _json_safe(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise ValueError("attributes are nested too deeply")
    if isinstance(value, str):
        safe_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("attributes must not contain NaN or infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            safe_text(key)
            _json_safe(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_safe(item, depth + 1)


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    _json_safe(value)
    share_id = value.get("share_id")
    if share_id is not None and len(str(share_id)) > 64:
        # Stated in the schema as well as checked by records.parse_event (a 64-character column).
        raise ValueError("share_id is longer than 64 characters")
    return value


#: A single line of free text (a reason, a name).
Text = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(safe_text)]
#: An id given by a source system: an order number, a channel or store code, a share id.
Token = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(safe_text)]
#: Yuan with at most two decimals, as a string so no binary float ever touches money.
Yuan = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,2})?$"),
    Field(examples=["36.80"], description="yuan with at most two decimals, as a string"),
]
#: An instant in ISO 8601 with a UTC offset (``2026-03-01T12:30:00+08:00``); kept in UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
#: Event attributes: any JSON object (what each event type needs is checked by the ingest rules).
Attributes = Annotated[dict[str, Any], AfterValidator(_attributes)]
#: The id of a stored row (a person, an identifier, a merge).
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]


def iso(moment: datetime) -> str:
    """Return ``moment`` as ISO 8601 in UTC, the form the ingest rules read."""
    return moment.astimezone(UTC).isoformat()


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine ``code``, a human ``message`` and structured ``details``."""

    code: str = Field(examples=["invalid_record"])
    message: str = Field(examples=["store 'SH999' is not a known store"])
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


_DESCRIPTIONS = {
    401: "no API key, or a revoked or unknown one (`unauthenticated`)",
    403: "the key's role may not do this (`forbidden`)",
    404: "the thing named does not exist (`not_found`)",
    409: "the request contradicts what is stored (`conflict`)",
    422: "the request is not valid (`validation_failed`, `invalid_record`, `invalid_identifier`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document the error envelope for ``statuses`` in the OpenAPI schema."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


class IdentifierFields(BaseModel):
    """Who a record is about: any of these identifiers (an order may carry none: a guest order)."""

    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, StringConstraints(max_length=32), AfterValidator(safe_text)] | None = Field(
        default=None, description="any common format: `+86 138 0013 8000`, `13800138000`"
    )
    unionid: Token | None = Field(default=None, description="WeChat unionid")
    openid: Token | None = Field(default=None, description="WeChat openid; its app is `app_id` when given")
    app_id: Token | None = Field(
        default=None, description="the app or platform the openid or buyer id belongs to"
    )
    platform_user_id: Token | None = Field(
        default=None, description="marketplace buyer id; its platform is the source or field"
    )
    member_no: Token | None = Field(default=None, description="membership card number")
    # 60, not 254: the masked form (first letter, ``***@``, domain) then fits a 64-character column whole.
    email: Annotated[str, StringConstraints(max_length=60), AfterValidator(safe_text)] | None = None

    def raw(self) -> dict[str, Any]:
        """Return the fields that were given, as the mapping the ingest rules read."""
        return {name: value for name, value in self.model_dump().items() if value is not None}
