"""Domain errors with a stable machine code, an HTTP status and a human message.

One handler in the API renders every subclass the same way, and the CLI prints the message and
exits non-zero, so a caller never sees a stack trace for bad input.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MemberOpsError(Exception):
    """Base of every error a caller can cause; carries the code the API and CLI report."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ValidationFailed(MemberOpsError):
    """The input does not satisfy the documented format."""

    code = "validation_failed"
    status = 422


class NotFound(MemberOpsError):
    """The named thing does not exist."""

    code = "not_found"
    status = 404


class Conflict(MemberOpsError):
    """The request contradicts what is stored (for example a replay with different content)."""

    code = "conflict"
    status = 409


class Unauthenticated(MemberOpsError):
    """No valid API key was given."""

    code = "unauthenticated"
    status = 401


class Forbidden(MemberOpsError):
    """The caller's role may not do this."""

    code = "forbidden"
    status = 403
