"""The gateway's domain errors as problem+json (services/gateway/errors.py says what each means).

NotFound 404 (also for a resource the caller may not see), NotAllowed 403, Invalid 422 with
`errors: [{field, message}]` like schema errors, Conflict 409, Unauthorized 401 with
`WWW-Authenticate: Bearer`, TooLarge 413 with the field, the limit and the size, RateLimited 429
with `Retry-After`. The store being down is 503 with `Retry-After`. Types: docs/chat-api.md.
"""

from __future__ import annotations

import math

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from services.common.problems import VALIDATION_TYPE, problem_response
from services.gateway.errors import Conflict, GatewayError, Invalid, NotAllowed, NotFound, TooLarge, Unauthorized
from shared.store.port import StoreUnavailable


def problem_type(slug: str) -> str:
    return f"urn:ledgerline:problem:{slug}"


class RateLimited(GatewayError):
    """The caller used up their requests for now; `retry_after` seconds until the next is allowed."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many requests; retry after {retry_after:.1f} s")


class UnsupportedMedia(GatewayError):
    """An uploaded file whose content is none of the accepted types."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


async def gateway_error_handler(_request: Request, exc: Exception) -> Response:
    match exc:
        case NotFound():
            return problem_response(404, str(exc), title="Not found", type_=problem_type("not-found"))
        case NotAllowed():
            return problem_response(403, exc.reason, title="Not allowed", type_=problem_type("not-allowed"))
        case Invalid():
            errors = [{"field": exc.field, "message": exc.message}]
            return problem_response(
                422, str(exc), title="Invalid request", type_=VALIDATION_TYPE, extra={"errors": errors}
            )
        case Conflict():
            return problem_response(409, exc.message, title="Conflict", type_=problem_type("conflict"))
        case Unauthorized():
            return problem_response(
                401,
                exc.reason,
                title="Unauthorized",
                type_=problem_type("unauthorized"),
                headers={"WWW-Authenticate": "Bearer"},
            )
        case TooLarge():
            extra = {"errors": [{"field": exc.what, "message": str(exc)}], "limit": exc.limit, "size": exc.size}
            return problem_response(413, str(exc), title="Too large", type_=problem_type("too-large"), extra=extra)
        case RateLimited():
            retry = str(max(1, math.ceil(exc.retry_after)))
            return problem_response(
                429,
                str(exc),
                title="Too many requests",
                type_=problem_type("rate-limited"),
                headers={"Retry-After": retry},
            )
        case UnsupportedMedia():
            return problem_response(
                415, exc.reason, title="Unsupported file type", type_=problem_type("unsupported-media-type")
            )
    return problem_response(500, "an internal error occurred; it has been logged")


async def store_unavailable_handler(_request: Request, exc: Exception) -> Response:
    return problem_response(
        503,
        "the event store is unavailable; retry shortly",
        type_=problem_type("unavailable"),
        headers={"Retry-After": "1"},
    )


def install_gateway_problems(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, gateway_error_handler)
    app.add_exception_handler(StoreUnavailable, store_unavailable_handler)
