"""Everything said about one business object (a deal, a tender …) that the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.routes.deps import Caller, Services, reading
from services.projections import queries
from services.projections.timeline import MAX_LIMIT
from services.projections.views import MessageView

router = APIRouter(tags=["objects"])


@router.get("/objects/{kind}/{object_id}/messages", response_model=list[MessageView])
async def object_messages(
    kind: str,
    object_id: str,
    principal: Caller,
    gw: Services,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
) -> list[MessageView]:
    """Newest first, across conversations; those the caller is not in are left out."""
    async with reading(gw, principal) as conn:
        return await queries.object_messages(conn, principal.user_id, kind, object_id, limit)
