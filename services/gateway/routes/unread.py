"""Unread totals of the caller: `last_seq - read_seq` per conversation, O(1) in group size."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.routes.deps import Caller, Services, reading
from services.projections import queries
from services.projections.views import Unread

router = APIRouter(tags=["unread"])


@router.get("/unread", response_model=Unread)
async def unread(principal: Caller, gw: Services) -> Unread:
    async with reading(gw, principal) as conn:
        return await queries.unread(conn, principal.user_id)
