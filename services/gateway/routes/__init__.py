"""The /v1 chat routes, one module per resource (CONTRACT.md's HTTP table; docs/chat-api.md)."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.routes import (
    audit,
    conversations,
    files,
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


def v1_router() -> APIRouter:
    router = APIRouter(prefix="/v1")
    for module in (conversations, members, messages, receipts, unread, objects, search, users, files, support, tickets):
        router.include_router(module.router)
    router.include_router(ticket_views.router)
    router.include_router(audit.router)  # /v1/audit: auditors only (docs/audit.md)
    return router
