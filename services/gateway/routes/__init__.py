"""The /v1 chat routes, one module per resource (CONTRACT.md's HTTP table; docs/chat-api.md)."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.routes import (
    conversations,
    files,
    members,
    messages,
    objects,
    receipts,
    search,
    unread,
    users,
)


def v1_router() -> APIRouter:
    router = APIRouter(prefix="/v1")
    for module in (conversations, members, messages, receipts, unread, objects, search, users, files):
        router.include_router(module.router)
    return router
