"""Realtime on the gateway: `GET /v1/ws` (docs/realtime.md).

`ws_router()` is included by create_app; its lifespan runs inside the app's (the broker and the read
engine exist by then) and builds `app.state.realtime`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.gateway.ws.endpoint import websocket_endpoint
from services.gateway.ws.presence import GatewayPresence
from services.gateway.ws.realtime import Realtime


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.gateway.settings
    presence = GatewayPresence(
        app.state.broker,
        app.state.gateway.engine,
        heartbeat=settings.presence_heartbeat_seconds,
        ttl=settings.presence_ttl_seconds,
    )
    realtime = Realtime(app.state.gateway, app.state.broker, presence)
    app.state.realtime = realtime
    await realtime.start()
    try:
        yield
    finally:
        await realtime.stop()


def ws_router() -> APIRouter:
    router = APIRouter(lifespan=_lifespan)
    router.add_api_websocket_route("/v1/ws", websocket_endpoint)
    return router
