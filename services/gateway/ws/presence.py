"""Presence on a gateway (docs/realtime.md): heartbeats out for the users here, heartbeats in from
every gateway, and `presence` frames to the local users who share a conversation with whoever changed.

Status of a user on this gateway: `online` when one of their sessions sent a frame within AWAY_AFTER,
else `away`; `offline` once the last session leaves (announced at once) or, for a killed gateway,
when its heartbeats expire (TTL_SECONDS, services/delivery/presence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.presence import HEARTBEAT_SECONDS, Heartbeat, PresenceTable, Status
from services.delivery.realtime import PRESENCE_ALL, presence_subject
from services.gateway.ws.session import Session
from services.projections.tables import TABLES
from shared.broker.port import Broker, Subscription
from shared.logging import get_logger

log = get_logger(__name__)

AWAY_AFTER = 300.0
SWEEP_SECONDS = 1.0
_mb = TABLES.members
_other = _mb.alias("other")
# Built once (a per-call alias is a dozen objects in reference cycles for the collector): the users
# who share an active conversation with :user.
_CONTACTS = (
    select(_other.c.user_id)
    .distinct()
    .select_from(_mb.join(_other, _other.c.conversation_id == _mb.c.conversation_id))
    .where(and_(_mb.c.user_id == bindparam("user"), _mb.c.active.is_(True), _other.c.active.is_(True)))
)

SessionsOf = Callable[[str], set[Session]]


class GatewayPresence:
    def __init__(
        self, broker: Broker | None, engine: AsyncEngine, *, heartbeat: float = HEARTBEAT_SECONDS, ttl: float = 30.0
    ) -> None:
        self.gateway = uuid.uuid4().hex[:12]
        self.table = PresenceTable()
        self._broker = broker
        self._engine = engine
        self._heartbeat = heartbeat
        self._ttl = ttl
        self._contacts: dict[str, set[str]] = {}
        self._sessions_of: SessionsOf = lambda _: set()
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, sessions_of: SessionsOf) -> None:
        self._sessions_of = sessions_of
        if self._broker is not None:
            self._subscription = await self._broker.subscribe_ephemeral(PRESENCE_ALL, self._on_heartbeat)
        self._tasks = [asyncio.create_task(self._beat()), asyncio.create_task(self._sweep())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for user in list(self._contacts):
            await self._publish(user, "offline")
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def user_joined(self, user: str, session: Session) -> None:
        self._contacts[user] = await self._load_contacts(user)
        await self._publish(user, "online")
        self.send_known(session)

    async def user_left(self, user: str) -> None:
        self._contacts.pop(user, None)
        await self._publish(user, "offline")

    def contacts_changed(self, user: str) -> None:
        async def reload() -> None:
            if user in self._contacts:
                self._contacts[user] = await self._load_contacts(user)

        asyncio.get_running_loop().create_task(reload())

    def send_known(self, session: Session) -> None:
        now = time.monotonic()
        for contact in sorted(self._contacts.get(session.user_id, ())):
            status = self.table.status(contact, now)
            if status != "offline":
                session.send({"type": "presence", "user_id": contact, "status": status})

    def local_status(self, user: str) -> Status:
        sessions = self._sessions_of(user)
        if not sessions:
            return "offline"
        recent = max(s.last_active for s in sessions)
        return "online" if time.monotonic() - recent < AWAY_AFTER else "away"

    async def _publish(self, user: str, status: Status) -> None:
        if self._broker is None:
            self._changed(user, self.table.observe(Heartbeat(user, self.gateway, status, self._ttl), time.monotonic()))
            return
        beat = Heartbeat(user, self.gateway, status, self._ttl)
        with contextlib.suppress(Exception):  # ephemeral: the next heartbeat repairs a lost one
            await self._broker.publish_ephemeral(presence_subject(user), beat.encode())

    async def _on_heartbeat(self, subject: str, data: bytes) -> None:
        beat = Heartbeat.decode(data)
        if beat is not None:
            self._changed(beat.user_id, self.table.observe(beat, time.monotonic()))

    def _changed(self, user: str, status: Status | None) -> None:
        if status is None:
            return
        frame = {"type": "presence", "user_id": user, "status": status}
        for local, contacts in list(self._contacts.items()):
            if user in contacts:
                for session in list(self._sessions_of(local)):
                    session.send(frame)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            for user in list(self._contacts):
                await self._publish(user, self.local_status(user))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            for user in self.table.sweep(time.monotonic()):
                self._changed(user, "offline")

    async def _load_contacts(self, user: str) -> set[str]:
        try:
            async with self._engine.connect() as conn:
                return {r.user_id for r in await conn.execute(_CONTACTS, {"user": user})} - {user}
        except Exception as e:
            log.warning("presence_contacts_failed", user=user, error=repr(e))
            return set()
