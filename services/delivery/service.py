"""The delivery worker's realtime side, wired once per process: the ephemeral publisher, the
presence view (heartbeats from every gateway) and the offline notifier.

It uses the worker service's broker connection (WorkerContext.broker, services/delivery/main.py): one
connection per delivery process for the durable consumers and the ephemeral path alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.fanout import EphemeralPublisher, Fanout
from services.delivery.frames import Outgoing
from services.delivery.notifiers.dispatch import DispatchPolicy, OfflineDispatcher
from services.delivery.notifiers.port import Notification, Notifier
from services.delivery.notifiers.settings import notify_settings
from services.delivery.notifiers.webhook import WebhookNotifier
from services.delivery.presence import Heartbeat, PresenceTable
from services.delivery.realtime import PRESENCE_ALL
from shared.broker.consume import Handler
from shared.broker.port import Broker, Subscription
from shared.config import Settings
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

SWEEP_SECONDS = 5.0


class _NoPublisher:
    async def publish_ephemeral(self, subject: str, data: bytes) -> None:
        return None


class DeliveryRealtime:
    """Start with `start()`, stop with `close()`; `handler(...)` builds the worker's event handler
    (with the worker service's engine and metrics registry)."""

    def __init__(
        self, broker: Broker | None, notifier: Notifier | None = None, policy: DispatchPolicy | None = None
    ) -> None:
        self.presence = PresenceTable()
        self._broker = broker
        self._notifier = notifier
        self._policy = policy
        self._subscription: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._dispatcher: OfflineDispatcher | None = None

    @classmethod
    def from_settings(cls, settings: Settings, broker: Broker | None) -> DeliveryRealtime:
        notify = notify_settings(settings)
        notifier = None
        if notify.webhook_enabled and notify.webhook_url is not None:
            notifier = WebhookNotifier(notify.webhook_url, notify.webhook_secret)
        return cls(broker, notifier, DispatchPolicy(window=notify.batch_seconds))

    def handler(self, engine: AsyncEngine, partitions: int, metrics: MetricsRegistry) -> Handler:
        if self._notifier is not None and self._dispatcher is None:
            self._dispatcher = OfflineDispatcher(self._notifier, metrics, self._policy)
        publisher: EphemeralPublisher = self._broker if self._broker is not None else _NoPublisher()
        offline = self._offline if self._dispatcher is not None else None
        return Fanout(engine, partitions, publisher, metrics, offline).handle

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
        if self._dispatcher is not None:
            await self._dispatcher.close()
        elif self._notifier is not None:
            await self._notifier.close()

    async def _on_heartbeat(self, subject: str, data: bytes) -> None:
        beat = Heartbeat.decode(data)
        if beat is not None:
            self.presence.observe(beat, time.monotonic())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.presence.sweep(time.monotonic())

    async def _offline(self, out: Outgoing) -> None:
        assert self._dispatcher is not None
        now = time.monotonic()
        for user in out.offline_candidates:
            if self.presence.status(user, now) == "offline":
                self._dispatcher.offer(user, Notification.from_frame(out.frame))
