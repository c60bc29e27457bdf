"""The tickets worker on the ephemeral path: `ticket` frames to users' sockets, and agents' presence.

Frames go to `ledgerline.rt.user.<token>` exactly as the delivery worker sends chat frames (the
gateway holding the user's sockets forwards them; services/delivery/realtime.py is the wire). Presence
heartbeats from the gateways say who has a live session: an agent who set no explicit availability
takes tickets while online.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from services.delivery.presence import Heartbeat, PresenceTable
from services.delivery.realtime import PRESENCE_ALL, encode, user_subject
from shared.broker.port import Broker, Subscription
from shared.logging import get_logger

log = get_logger(__name__)

SWEEP_SECONDS = 5.0
OnPresence = Callable[[str, bool], Awaitable[None]]


class TicketFrames:
    """A FrameSink on the broker's ephemeral path (None: frames are dropped, e.g. no broker)."""

    def __init__(self, broker: Broker | None) -> None:
        self._broker = broker

    async def send(self, user_ids: list[str], frame: dict[str, Any]) -> None:
        if self._broker is None:
            return
        data = encode(frame)
        for user in user_ids:
            try:
                await self._broker.publish_ephemeral(user_subject(user), data)
            except Exception as e:  # frames are at most once: a lost one is not worth failing the event for
                log.warning("ticket_frame_lost", user_id=user, error=repr(e))


class AgentPresence:
    """Heartbeats -> online/offline changes handed to `on_change` (the desk updates availability)."""

    def __init__(self, broker: Broker | None, on_change: OnPresence) -> None:
        self._broker = broker
        self._on_change = on_change
        self._table = PresenceTable()
        self._subscription: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def is_online(self, user_id: str) -> bool:
        return self._table.status(user_id, time.monotonic()) != "offline"

    async def start(self) -> None:
        if self._broker is not None:
            self._subscription = await self._broker.subscribe_ephemeral(PRESENCE_ALL, self._on_heartbeat)
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def _on_heartbeat(self, subject: str, data: bytes) -> None:
        beat = Heartbeat.decode(data)
        if beat is None:
            return
        changed = self._table.observe(beat, time.monotonic())
        if changed is not None:
            await self._notify(beat.user_id, changed != "offline")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            for user in self._table.sweep(time.monotonic()):
                await self._notify(user, False)

    async def _notify(self, user_id: str, online: bool) -> None:
        try:
            await self._on_change(user_id, online)
        except Exception as e:  # presence is advisory: the next heartbeat tries again
            log.warning("presence_update_failed", user_id=user_id, error=repr(e))
