"""Batching and retrying in front of a Notifier, off the delivery path.

`offer()` only appends to the user's pending list and, when none is running, starts the user's flush
task: it waits `window` seconds (so a busy group gives one call per user, not one per message),
sends what accumulated, and retries a failure with exponential back-off (`retry_base` doubling up to
`retry_max`, `attempts` tries); what arrives meanwhile goes into the next batch. A batch that fails
every try is dropped and logged: the messages themselves are safe in the store, the notification is
a courtesy. The delivery handler never awaits a notifier call.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from services.delivery.notifiers.port import Notification, Notifier
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

# Beyond this many notifications waiting for one user, the oldest are dropped (a user away for a
# week in a busy group must not grow memory without end); the host system shows a count anyway.
MAX_PENDING_PER_USER = 200


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    window: float = 2.0
    attempts: int = 5
    retry_base: float = 0.5
    retry_max: float = 30.0
    max_batch: int = 50


class OfflineDispatcher:
    def __init__(self, notifier: Notifier, metrics: MetricsRegistry, policy: DispatchPolicy | None = None) -> None:
        self._notifier = notifier
        self._policy = policy or DispatchPolicy()
        self._pending: dict[str, list[Notification]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._calls = metrics.counter("delivery_notify_calls", "Offline notifier calls, by outcome", ["outcome"])
        for outcome in ("ok", "failed"):  # on /metrics from the start: an alert needs the series before the event
            self._calls.labels(outcome)

    def offer(self, user_id: str, item: Notification) -> None:
        pending = self._pending.setdefault(user_id, [])
        pending.append(item)
        del pending[:-MAX_PENDING_PER_USER]
        if user_id not in self._tasks:
            self._tasks[user_id] = asyncio.create_task(self._flush(user_id))

    async def _flush(self, user_id: str) -> None:
        try:
            while self._pending.get(user_id):
                await asyncio.sleep(self._policy.window)
                pending = self._pending.pop(user_id, [])
                batch, rest = pending[: self._policy.max_batch], pending[self._policy.max_batch :]
                if rest:
                    self._pending[user_id] = rest + self._pending.get(user_id, [])
                await self._send(user_id, batch)
        finally:
            self._tasks.pop(user_id, None)

    async def _send(self, user_id: str, batch: list[Notification]) -> None:
        p = self._policy
        for attempt in range(1, p.attempts + 1):
            try:
                await self._notifier.notify(user_id, batch)
            except Exception as e:
                self._calls.labels("failed").inc()
                log.warning("notify_failed", user=user_id, attempt=attempt, size=len(batch), error=repr(e))
                if attempt < p.attempts:
                    await asyncio.sleep(min(p.retry_max, p.retry_base * 2 ** (attempt - 1)))
            else:
                self._calls.labels("ok").inc()
                return
        log.error("notify_gave_up", user=user_id, size=len(batch), attempts=p.attempts)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._notifier.close()
