"""The hottest route served by a plain Starlette endpoint in front of its FastAPI declaration.

Why: FastAPI's request machinery (dependency solving with its cache keys and per-parameter
extraction, body field validation through ModelField, response-model validation and serialization)
cost the gateway ~130 µs of CPU per message sent, 42 % of a send in process (an ASGI loop calling the
app, 2026-12-03): 306 µs against 176 for the same work in a Starlette endpoint. Sending is what the
gateway does most, so `POST /v1/conversations/{conversation_id}/messages` is served here; the FastAPI
route stays declared behind it, for the OpenAPI document (the contract) and as the reference this
one must answer like (tests/integration/test_lean_send.py compares the two).

What FastAPI does, done the same way, in the same order:
1. the body is read and, when the content type is JSON (no content type is not: FastAPI is strict),
   decoded with the stdlib's json; a decode error is a 422 `json_invalid` at ("body", position) at
   once, bytes that are no Unicode text a 400;
2. the caller is resolved (token, rate limit, directory: `deps.caller`), so a bad token is a 401
   even when the body is invalid;
3. the body is validated into its model; errors are a 422 with locations under "body";
4. the answer is the response model serialized by pydantic, with the route's status code.
Errors raised on the way are our exceptions or RequestValidationError, answered by the app's
problem+json handlers as on every other route.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

Model = TypeVar("Model", bound=BaseModel)
_MISSING = object()


async def read_json(request: Request) -> Any:
    """The decoded body, the body's bytes when it is not JSON, or _MISSING when it is empty (step 1)."""
    raw = await request.body()
    if not raw:
        return _MISSING
    if not _is_json(request.headers.get("content-type")):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": e.msg}}], body=e.doc) from e
    except ValueError as e:  # bytes that are not UTF-8 (or -16/-32) at all: FastAPI answers 400
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from e


def validate(model: type[Model], body: Any) -> Model:
    """Step 3: `body` (from read_json) as `model`, or RequestValidationError as FastAPI raises it."""
    if body is _MISSING:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return model.model_validate(body, from_attributes=True)  # as FastAPI validates a body field
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from e


def json_response(model: BaseModel, status_code: int) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), status_code, media_type="application/json")


class LeanRoute(Route):
    """A Starlette Route that names itself in the scope when matched, as Starlette's router does and
    FastAPI's does not for a plain Route: the HTTP metrics label requests by `scope["route"].path`."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope = {**child_scope, "route": self}
        return match, child_scope


def lean_route(path: str, method: str, endpoint: Callable[[Request], Awaitable[Response]]) -> Route:
    return LeanRoute(path, endpoint, methods=[method], include_in_schema=False)


def _is_json(content_type: str | None) -> bool:
    # FastAPI's test: no content type is not JSON (strict), else application/json or application/*+json.
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")
