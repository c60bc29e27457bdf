"""Dependencies shared by the routes: the caller (token, rate limit, directory), the gateway's
services, and a read-model connection that first waits for the caller's own writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.auth import Principal, current_principal
from services.gateway.commands.directory import user_stream_id
from services.gateway.commands.domain import stream_id
from services.gateway.consistency import CHAT, DIRECTORY
from services.gateway.context import Gateway


async def gateway(request: Request) -> Gateway:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
    gw: Gateway = request.app.state.gateway
    return gw


async def caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="`Bearer <JWT>`")] = None,
) -> Principal:
    """The verified caller; counted against their rate limit and recorded in the directory."""
    principal = await current_principal(request, authorization)
    gw = await gateway(request)
    gw.limiter.check(principal.user_id)
    position = await gw.directory.observe(principal)
    gw.consistency.wrote(principal.user_id, DIRECTORY, user_stream_id(principal.user_id), position)
    return principal


Caller = Annotated[Principal, Depends(caller)]
Services = Annotated[Gateway, Depends(gateway)]


def wrote(gw: Gateway, principal: Principal, conversation_id: str, position: int) -> None:
    """Remember the caller's write for read-your-writes (position 0: nothing was appended)."""
    gw.consistency.wrote(principal.user_id, CHAT, stream_id(conversation_id), position)


@asynccontextmanager
async def reading(gw: Gateway, principal: Principal) -> AsyncIterator[AsyncConnection]:
    """A connection to the read models, once the caller's own writes are visible (bounded wait)."""
    await gw.consistency.wait(principal.user_id)
    async with gw.engine.connect() as conn:
        yield conn
