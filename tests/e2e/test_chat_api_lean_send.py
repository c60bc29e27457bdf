"""`POST /v1/conversations/{id}/messages` is served by a lean Starlette endpoint in front of its FastAPI
declaration (services/gateway/routes/lean.py). Every request here goes to both, and the answers must
be the same: status, content type and body, for good sends, repeats, and each kind of bad input
(JSON that does not parse, no body, no or another content type, fields out of bounds, a bad token
with a bad body, a conversation one is not in). On SQLite + embedded NATS and PostgreSQL + NATS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import chat_support
import httpx
import pytest
from chat_support import ChatStack
from fastapi.routing import APIRoute
from starlette.routing import Route

from services.gateway.routes import messages

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures

JSON = {"content-type": "application/json"}


@contextmanager
def reference_route(stack: ChatStack) -> Iterator[None]:
    """The FastAPI route serves while this is open: the lean one is taken out of the router."""
    routes = stack.app.router.routes
    lean = next(r for r in routes if isinstance(r, Route) and r.endpoint is messages.send_message_lean)
    index = routes.index(lean)
    routes.remove(lean)
    try:
        yield
    finally:
        routes.insert(index, lean)


def answer(r: httpx.Response) -> tuple[int, str, Any]:
    body = r.json() if r.content else None
    return r.status_code, r.headers.get("content-type", ""), body


def bad_bodies(user_headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What each bad request sends: httpx.request keyword arguments."""
    return {
        "not JSON": {"content": b'{"client_msg_id": "x", "text": ', "headers": user_headers | JSON},
        "no body": {"content": b"", "headers": user_headers | JSON},
        "not UTF-8": {"content": b"\xd9\x03\xff", "headers": user_headers | JSON},
        "NUL in a string": {"content": b'{"client_msg_id": "x", "text": "a\\u0000b"}', "headers": user_headers | JSON},
        "no content type": {"content": b'{"client_msg_id": "x", "text": "hi"}', "headers": user_headers},
        "text/plain": {
            "content": b'{"client_msg_id": "x"}',
            "headers": user_headers | {"content-type": "text/plain"},
        },
        "+json content type": {
            "content": b'{"client_msg_id": "", "text": "hi"}',
            "headers": user_headers | {"content-type": "application/vnd.ledgerline+json; charset=utf-8"},
        },
        "a list": {"content": b"[1, 2]", "headers": user_headers | JSON},
        "empty client_msg_id": {"json": {"client_msg_id": "", "text": "hi"}, "headers": user_headers},
        "text too long": {"json": {"client_msg_id": "x", "text": "x" * 200_000}, "headers": user_headers},
        "unknown field": {"json": {"client_msg_id": "x", "text": "hi", "colour": "red"}, "headers": user_headers},
        "bad link": {
            "json": {"client_msg_id": "x", "links": [{"kind": "planet", "id": "p1"}]},
            "headers": user_headers,
        },
        "attachments not a list": {"json": {"client_msg_id": "x", "attachments": "f1"}, "headers": user_headers},
        "no token, bad body": {"json": {"client_msg_id": ""}, "headers": {}},
        "bad token, not JSON": {
            "content": b"{",
            "headers": {"Authorization": "Bearer not.a.token"} | JSON,
        },
    }


async def test_the_lean_route_is_matched_before_the_fastapi_one(stack: ChatStack) -> None:
    routes = stack.app.router.routes
    path = "/v1" + messages.SEND_PATH
    lean = [i for i, r in enumerate(routes) if getattr(r, "endpoint", None) is messages.send_message_lean]
    declared = [i for i, r in enumerate(routes) if isinstance(r, APIRoute) and r.path == path and "POST" in r.methods]
    assert len(lean) == len(declared) == 1 and lean[0] < declared[0]
    assert routes[declared[0]].include_in_schema  # the contract still documents the route


async def test_lean_send_answers_as_the_fastapi_route_does(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    path = f"/v1/conversations/{c}/messages"
    alice = stack.headers("alice")

    for what, request in bad_bodies(alice).items():
        lean = await stack.http.request("POST", path, **request)
        with reference_route(stack):
            reference = await stack.http.request("POST", path, **request)
        assert answer(lean) == answer(reference), what
        assert lean.status_code in (400, 401, 413, 422), (what, lean.status_code, lean.text[:300])
        assert lean.headers["content-type"] == "application/problem+json", what

    stranger = await stack.http.request(
        "POST", path, json={"client_msg_id": "s1", "text": "hi"}, headers=stack.headers("eve")
    )
    with reference_route(stack):
        reference = await stack.http.request(
            "POST", path, json={"client_msg_id": "s2", "text": "hi"}, headers=stack.headers("eve")
        )
    assert answer(stranger)[0] == answer(reference)[0] == 404
    assert answer(stranger)[2]["type"] == answer(reference)[2]["type"]

    # Good sends, each way, and each repeated the other way: the same message, 201 both times.
    for first_lean in (True, False):
        body = {"client_msg_id": uuid.uuid4().hex, "text": "привет", "links": [{"kind": "deal", "id": "d-1"}]}
        if first_lean:
            first = await stack.http.request("POST", path, json=body, headers=alice)
            with reference_route(stack):
                again = await stack.http.request("POST", path, json=body, headers=alice)
        else:
            with reference_route(stack):
                first = await stack.http.request("POST", path, json=body, headers=alice)
            again = await stack.http.request("POST", path, json=body, headers=alice)
        assert first.status_code == again.status_code == 201, first.text
        assert answer(first) == answer(again)
        assert set(first.json()) == {"message_id", "seq", "sent_at"}

    listed = (await stack.call("GET", path, "alice")).json()
    assert [m["text"] for m in listed] == ["привет", "привет"]
    assert [m["links"][0]["id"] for m in listed] == ["d-1", "d-1"]
