"""RFC 9457 problem details (`application/problem+json`): the one shape of every HTTP error.

Handlers for FastAPI/Starlette: HTTP errors keep their status and text, validation errors become 422
with the list of what is wrong, anything unhandled becomes a 500 that says nothing about the inside
(the stack trace goes to the log, with the request path).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
# Problem types are URNs (RFC 9457 allows any URI): stable names that resolve nowhere by accident.
VALIDATION_TYPE = "urn:ledgerline:problem:validation"
_REQUEST_PARTS = ("body", "query", "path", "header", "cookie")


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail or _phrase(status),
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def http_exception_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))


async def validation_exception_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": field_name(err.get("loc", ())),
            "message": err.get("msg", ""),
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    return problem_response(
        422,
        "the request does not match the expected schema",
        title="Invalid request",
        type_=VALIDATION_TYPE,
        extra={"errors": jsonable_encoder(errors)},
    )


def field_name(loc: Sequence[object]) -> str:
    """`["body", "links", 0, "kind"]` -> `links[0].kind`: where in the request, without the part
    (body, query, path) FastAPI puts first; a body that is not JSON at all is the field `body`."""
    parts = list(loc[1:]) if len(loc) > 1 and loc[0] in _REQUEST_PARTS else list(loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or (str(loc[0]) if loc else "body")


async def unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", method=request.method, path=request.url.path, exc_info=exc)
    return problem_response(500, "an internal error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(Exception, unhandled_exception_handler)
