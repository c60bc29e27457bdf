"""Realtime on the gateway: `GET /v1/ws` (docs/realtime.md).

`ws_router()` is included by create_app; its lifespan runs inside the app's (the broker and the read
engine exist by then) and builds `app.state.realtime`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.gateway.ws.endpoint import websocket_endpoint
from services.gateway.ws.handover import Handover
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
    frames = getattr(app.state, "handed_over_frames", None)
    if frames is None:  # once per app and registry, however often the lifespan runs
        frames = app.state.handed_over_frames = app.state.metrics.counter(
            "realtime_handed_over_frames",
            "Message frames this gateway handed to its own sockets right after the commit: sent, or left to "
            "delivery's copy (not the next seq of a conversation the socket follows)",
            ["outcome"],
        )
    executor = app.state.gateway.conversations.executor
    executor.on_committed = Handover(realtime.hub, frames)
    await realtime.start()
    try:
        yield
    finally:
        executor.on_committed = None
        await realtime.stop()


def ws_router() -> APIRouter:
    router = APIRouter(lifespan=_lifespan)
    router.add_api_websocket_route("/v1/ws", websocket_endpoint)
    return router
