"""Full-text search over the messages the caller may see, newest first, with highlights."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.routes.deps import Caller, Services, reading
from services.projections import queries
from services.projections.views import SearchHit

router = APIRouter(tags=["search"])

# A search query is words, not documents; longer is someone probing the full-text parser.
Q_MAX = 500
LIMIT_MAX = 100


@router.get("/search", response_model=list[SearchHit])
async def search(
    principal: Caller,
    gw: Services,
    q: Annotated[str, Query(min_length=1, max_length=Q_MAX)],
    conversation_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = 20,
) -> list[SearchHit]:
    async with reading(gw, principal) as conn:
        return await queries.search(conn, principal.user_id, q, conversation_id, limit)
