"""The user directory: people by name, for starting a conversation (fed from token claims)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.routes.deps import Caller, Services, reading
from services.projections import queries
from services.projections.views import UserEntry

router = APIRouter(tags=["users"])


@router.get("/users", response_model=list[UserEntry])
async def find_users(
    principal: Caller,
    gw: Services,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[UserEntry]:
    """Names containing `q` (case-insensitive, any script), by name; everyone when `q` is empty."""
    async with reading(gw, principal) as conn:
        return await queries.users(conn, q, limit)
