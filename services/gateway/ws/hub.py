"""The gateway's realtime hub: which sessions are here, per user, and the broker fan-in.

A user's ephemeral subject (`ledgerline.rt.user.<token>`) is subscribed when the user's first
session on this gateway joins and unsubscribed when the last one leaves; every frame arriving on it
goes to each of the user's sessions here. The hub also runs presence (services/gateway/ws/presence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict

from services.delivery.realtime import user_subject
from services.gateway.ws.presence import GatewayPresence
from services.gateway.ws.session import Frame, Session
from shared.broker.port import Broker, EphemeralHandler, Subscription
from shared.logging import get_logger

log = get_logger(__name__)


class Hub:
    def __init__(self, broker: Broker | None, presence: GatewayPresence) -> None:
        self._broker = broker
        self.presence = presence
        self.sessions: dict[str, set[Session]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def join(self, session: Session) -> None:
        user = session.user_id
        async with self._locks[user]:
            first = user not in self.sessions
            self.sessions.setdefault(user, set()).add(session)
            if first and self._broker is not None:
                self._subscriptions[user] = await self._broker.subscribe_ephemeral(
                    user_subject(user), self._forward(user)
                )
        if first:
            await self.presence.user_joined(user, session)
        else:
            self.presence.send_known(session)

    async def leave(self, session: Session) -> None:
        user = session.user_id
        async with self._locks[user]:
            sessions = self.sessions.get(user, set())
            sessions.discard(session)
            if sessions:
                return
            self.sessions.pop(user, None)
            subscription = self._subscriptions.pop(user, None)
            if subscription is not None:
                with contextlib.suppress(Exception):  # the broker may be gone at shutdown
                    await subscription.unsubscribe()
        self._locks.pop(user, None)
        await self.presence.user_left(user)

    def local(self, user_id: str) -> set[Session]:
        return self.sessions.get(user_id, set())

    def _forward(self, user: str) -> EphemeralHandler:
        async def deliver(subject: str, data: bytes) -> None:
            try:
                frame: Frame = json.loads(data)
            except ValueError:
                log.warning("bad_realtime_frame", subject=subject)
                return
            for session in list(self.sessions.get(user, ())):
                session.deliver(frame, None if frame.get("type") == "message" else data)
            if frame.get("type") == "conversation":
                self.presence.contacts_changed(user)

        return deliver
