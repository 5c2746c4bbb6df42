"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Clients branch on the stable ``code``, people read the ``message``. Domain errors carry their own
status; the few exception types raised by pure parsing code (records, identifiers) and FastAPI's
request validation are mapped here, so no bad input ever reaches a client as a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memberops.kit.errors import MemberOpsError

#: How many validation problems the human message names before it says "and N more".
_SUMMARY_LIMIT = 3

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the envelope every error response uses (``details`` is always present)."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _render(error: MemberOpsError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error_body(error.code, error.message, error.details), error.status, headers=headers)


async def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, MemberOpsError)
    return _render(error)


def _location(loc: tuple[int | str, ...] | list[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def validation_problems(errors: Any) -> list[dict[str, Any]]:
    """Return Pydantic's errors without the offending input values.

    The input is left out on purpose: it may be a phone number or another identifier, and error
    bodies end up in client logs.
    """
    return [
        {
            "loc": list(problem.get("loc", ())),
            "message": str(problem.get("msg", "")),
            "type": problem.get("type"),
        }
        for problem in errors
    ]


async def _request_validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = validation_problems(error.errors())
    parts = [f"{_location(p['loc'])}: {p['message']}" for p in problems[:_SUMMARY_LIMIT]]
    more = len(problems) - _SUMMARY_LIMIT
    message = "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
    return JSONResponse(
        error_body("validation_failed", message or "the request is not valid", {"errors": problems}), 422
    )


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400:
        # FastAPI answers 400 for a body it cannot decode (not UTF-8) but 422 for malformed JSON;
        # both are an unreadable request, so both get the one validation error.
        message = f"the request body could not be read: {error.detail}"
        return JSONResponse(error_body("validation_failed", message, {"errors": []}), 422)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(error.detail)), error.status_code, headers=getattr(error, "headers", None)
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every caller-caused failure in the one envelope (routing errors included)."""
    app.add_exception_handler(MemberOpsError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
