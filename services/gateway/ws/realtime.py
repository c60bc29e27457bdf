"""The gateway's realtime parts, built once per app by the router's lifespan (services/gateway/ws/__init__.py)
and kept as `app.state.realtime`: the hub (sessions and broker fan-in), presence, and the coalesced
Delivered / Read writers (socket acks and fetched pages share the Delivered one)."""

from __future__ import annotations

import contextlib

from services.gateway.context import Gateway
from services.gateway.ws.coalesce import Coalescer
from services.gateway.ws.fetched import FetchDelivery
from services.gateway.ws.hub import Hub
from services.gateway.ws.presence import GatewayPresence
from shared.broker.port import Broker


class Realtime:
    def __init__(self, gateway: Gateway, broker: Broker | None, presence: GatewayPresence | None = None) -> None:
        self.gateway = gateway
        self._broker = broker
        self.presence = presence or GatewayPresence(broker, gateway.engine)
        self.hub = Hub(broker, self.presence)
        self.delivered = Coalescer(gateway.conversations.mark_delivered)
        self.read = Coalescer(gateway.conversations.mark_read)
        self.fetch_delivery = FetchDelivery(self.delivered.submit)

    async def start(self) -> None:
        await self.presence.start(self.hub.local)

    async def stop(self) -> None:
        await self.fetch_delivery.stop()
        await self.presence.stop()

    async def publish(self, subject: str, data: bytes) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):  # ephemeral (typing): a lost one is repeated by the client
                await self._broker.publish_ephemeral(subject, data)
