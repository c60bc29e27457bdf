"""The /v1 chat routes, one module per resource (CONTRACT.md's HTTP table; docs/chat-api.md)."""

from __future__ import annotations

import inspect

from fastapi import APIRouter
from fastapi.routing import APIRoute

from services.gateway.routes import (
    audit,
    conversations,
    files,
    lean,
    members,
    messages,
    objects,
    receipts,
    search,
    support,
    ticket_views,
    tickets,
    unread,
    users,
)

V1 = "/v1"
_MODULES = (conversations, members, messages, receipts, unread, objects, search, users, files, support, tickets)

# add_api_route's options (path, endpoint and tags are given apart). An APIRoute keeps each option
# it was declared with as an attribute of the same name; read from the signature, so that an option a
# later FastAPI adds is passed on too instead of dropped.
_GIVEN_APART = {"self", "path", "endpoint", "tags"}
_ROUTE_OPTIONS = tuple(inspect.signature(APIRouter.add_api_route).parameters.keys() - _GIVEN_APART)


def add_v1_routes(router: APIRouter) -> None:
    """Every /v1 route straight on `router` (the app's), not a router per module included into it.

    Why: this FastAPI matches an included router's routes lazily on every request, twice per level
    of inclusion (once to match, once to handle), walking every module's routes; with two levels
    that was 16 % of the gateway's CPU under load. Re-registered here, a request walks one flat list.
    """
    # The send route's lean endpoint first: it serves what the FastAPI route declares (routes/lean.py).
    router.routes.append(lean.lean_route(V1 + messages.SEND_PATH, "POST", messages.send_message_lean))
    for module_router in (*(m.router for m in _MODULES), ticket_views.router, audit.router):
        for route in module_router.routes:
            assert isinstance(route, APIRoute), route
            options = {name: getattr(route, name) for name in _ROUTE_OPTIONS if hasattr(route, name)}
            tags = [*module_router.tags, *(t for t in route.tags if t not in module_router.tags)]
            router.add_api_route(V1 + route.path, route.endpoint, tags=tags, **options)
