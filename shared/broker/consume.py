"""One partition's consume loop: fetch a batch, hand it to the handler, ack; retry, dead-letter.

Order: the loop is the partition's only consumer (it holds the lease) and handles one batch at a
time, acking after the handler returns. A failing batch is replayed one event at a time, in order,
each retried with back-off until it succeeds or is dead-lettered, so a later event of the same
stream is never handled before an earlier one is settled.

Takeover: a previous owner of the partition may have died holding a fetched batch. On JetStream
those messages come back only after `ack_wait`, and a fetch before then would hand out newer events
first — a read model whose checkpoint then passed them would skip the old ones for good. So a loop
that finds unsettled messages when it starts waits (at most `ack_wait` and a margin, less when they
are acked meanwhile) before its first fetch; the server then redelivers them ahead of anything newer.

Lost deliveries: when the consumer reports that messages delivered to it never arrived
(DeliveriesLost: a dropped connection, NATS), the loop hands out nothing of that fetch and waits the
same way, for as long as the consumer says the broker needs to redeliver them in order.

Lease gaps: when the lease's validity runs out (a late renewal on a busy machine) the loop pauses
between batches instead of ending, and carries on when the next renewal arrives; the worker stops
it only when the lease is really lost. Ending and restarting it would release and retake the
partition (churn) and, on JetStream, make every restart pay the takeover wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from shared.broker.port import ConsumerSpec, ConsumingBroker, DeliveriesLost, Delivery, PartitionConsumer
from shared.broker.screening import invalid_reason
from shared.broker.worker_metrics import WorkerMetrics
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger

Handler = Callable[[list[RecordedEvent]], Awaitable[None]]

LEASE_POLL_SECONDS = 0.1
TAKEOVER_POLL_SECONDS = 0.5
# Past `ack_wait` the server still needs a moment to queue the expired messages for redelivery.
TAKEOVER_MARGIN_SECONDS = 1.0


class PoisonEvent(Exception):
    """Raised by a handler (with a one-event batch) for an event that can never succeed: it is
    dead-lettered at once instead of after `max_deliver` tries."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_deliver: int = 5
    """Tries of one event (broker redeliveries included) before it is dead-lettered."""
    backoff_base: float = 0.2
    backoff_max: float = 10.0

    def delay(self, failures: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, failures - 1)))


class _RecentIds:
    """The ids of the last `size` events acked here: republished copies are dropped without a handler
    call (RabbitMQ has no broker-side de-duplication; on JetStream this covers the time after its
    duplicate window). Older duplicates are absorbed by the handler contract."""

    def __init__(self, size: int) -> None:
        self._order: deque[object] = deque()
        self._ids: set[object] = set()
        self._size = size

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: object) -> None:
        if event_id in self._ids:
            return
        self._order.append(event_id)
        self._ids.add(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())


class PartitionRunner:
    def __init__(
        self,
        broker: ConsumingBroker,
        spec: ConsumerSpec,
        handler: Handler,
        retry: RetryPolicy,
        metrics: WorkerMetrics,
        lease_valid: Callable[[], bool],
        fetch_wait: float = 1.0,
        dedup_window: int = 4096,
    ) -> None:
        self.spec = spec
        self._broker = broker
        self._handler = handler
        self._retry = retry
        self._metrics = metrics
        self._lease_valid = lease_valid
        self._fetch_wait = fetch_wait
        self._recent = _RecentIds(dedup_window)
        self._consumer: PartitionConsumer | None = None
        self.stopping = asyncio.Event()
        self._log = get_logger("ledgerline.worker").bind(kind=spec.kind, partition=spec.partition)

    def _may_continue(self) -> bool:
        return not self.stopping.is_set() and self._lease_valid()

    async def run(self) -> None:
        consumer = self._consumer = await self._broker.open_consumer(self.spec)
        lag = self._metrics.lag.labels(self.spec.kind, str(self.spec.partition))
        try:
            await self._wait_for_unacked_to_return(consumer, self.spec.ack_wait)
            while not self.stopping.is_set():
                if not self._lease_valid():
                    await self._pause(LEASE_POLL_SECONDS)  # until the worker renews the lease or stops us
                    continue
                try:
                    deliveries = await consumer.fetch(self.spec.batch_size, self._fetch_wait)
                except DeliveriesLost as lost:
                    self._metrics.lost_deliveries.labels(self.spec.kind).inc(lost.missing)
                    self._log.warning("deliveries lost in transit; waiting for their redelivery in order",
                                      missing=lost.missing, at_most=lost.settle_seconds)  # fmt: skip
                    await self._wait_for_unacked_to_return(consumer, lost.settle_seconds)
                    continue
                if deliveries:
                    await self._process(deliveries)
                lag.set(await consumer.lag() or 0)
        finally:
            await consumer.close()

    async def _wait_for_unacked_to_return(self, consumer: PartitionConsumer, at_most: float) -> None:
        """Wait until no message of this partition is held elsewhere, or until what is held has
        passed `at_most` (ack_wait on a takeover) and will be redelivered first (module docstring,
        "Takeover")."""
        deadline = time.monotonic() + at_most + TAKEOVER_MARGIN_SECONDS
        held = await consumer.unsettled()
        if not held:
            return
        self._log.info("waiting for unacked messages to come back", unsettled=held, at_most=at_most)
        while held and not self.stopping.is_set() and (remaining := deadline - time.monotonic()) > 0:
            await self._pause(min(remaining, TAKEOVER_POLL_SECONDS))
            held = await consumer.unsettled()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel (Python 3.11)
                await self.stopping.wait()

    async def _process(self, deliveries: list[Delivery]) -> None:
        ready: list[tuple[Delivery, RecordedEvent]] = []
        in_batch: set[object] = set()
        self._observe_age(deliveries)
        for d in deliveries:
            event = await self._screen(d, in_batch)
            if event is not None:
                in_batch.add(event.event_id)
                ready.append((d, event))
        if not ready:
            return
        try:
            await self._call([e for _, e in ready])
        except Exception as err:
            self._log.warning("batch failed; handling one event at a time", size=len(ready), error=repr(err))
        else:
            await self._ack_all(ready)
            return
        for i, (d, event) in enumerate(ready):
            if not await self._settle_one(d, event, [x for x, _ in ready[i + 1 :]]):
                for later, _ in ready[i:]:
                    await later.release()
                return

    def _observe_age(self, deliveries: list[Delivery]) -> None:
        """Record time to receipt, per first delivery: where an event's time goes before its handler."""
        now = time.time()
        age = self._metrics.event_age_seconds.labels(self.spec.kind)
        for d in deliveries:
            if d.event is not None and d.deliveries == 1:
                age.observe(max(0.0, now - d.event.recorded_at.timestamp()))

    async def _screen(self, d: Delivery, in_batch: set[object]) -> RecordedEvent | None:
        """The event to handle, or None when it was settled here (undecodable, duplicate, dead)."""
        kind = self.spec.kind
        if d.event is None:
            await self._dead_letter(d, None, f"undecodable: {d.decode_error}")
            return None
        event = d.event
        if self.spec.types is not None and event.type not in self.spec.types:
            await d.ack()  # routed here by a wider filter (an older binding): not this worker's business
            return None
        if (reason := invalid_reason(event)) is not None:
            await self._dead_letter(d, event, reason)  # not the catalogue's: no handler may see it
            return None
        if event.event_id in self._recent or event.event_id in in_batch:
            self._metrics.duplicates.labels(kind).inc()
            await d.ack()
            return None
        if d.deliveries > 1:
            self._metrics.redeliveries.labels(kind).inc()
        if d.deliveries > self._retry.max_deliver:
            # Earlier deliveries were never acked nor failed here: the process died handling it.
            await self._dead_letter(d, event, f"delivered {d.deliveries} times without completing")
            return None
        return event

    async def _settle_one(self, d: Delivery, event: RecordedEvent, held: list[Delivery]) -> bool:
        """Handle one event until it succeeds or is dead-lettered; False when stopped before either."""
        failures = d.deliveries - 1
        with structlog.contextvars.bound_contextvars(event_id=str(event.event_id), stream_id=event.stream_id):
            while True:
                try:
                    await self._call([event])
                except Exception as err:
                    failures += 1
                    error = f"{type(err).__name__}: {err}"
                    if isinstance(err, PoisonEvent) or failures >= self._retry.max_deliver:
                        await self._dead_letter(d, event, error)
                        return True
                    self._log.warning("handler failed; retrying", failures=failures, error=error)
                    if not await self._back_off(failures, [d, *held]):
                        return False
                else:
                    await self._ack_all([(d, event)])
                    return True

    async def _back_off(self, failures: int, held: list[Delivery]) -> bool:
        """Wait before the next try, keeping the held messages' ack timers alive; False when stopped."""
        deadline = time.monotonic() + self._retry.delay(failures)
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._may_continue():
                return False
            for d in held:
                await d.in_progress()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, self.spec.ack_wait / 3)):
                    await self.stopping.wait()
        return self._may_continue()

    async def _call(self, batch: list[RecordedEvent]) -> None:
        kind = self.spec.kind
        started = time.perf_counter()
        try:
            await self._handler(batch)
        except Exception:
            self._metrics.handler_failures.labels(kind).inc()
            raise
        finally:
            self._metrics.handler_seconds.labels(kind).observe(time.perf_counter() - started)

    async def _ack_all(self, handled: list[tuple[Delivery, RecordedEvent]]) -> None:
        if self._consumer is not None:
            await self._consumer.ack_all([d for d, _ in handled])  # one frame where the broker allows
        else:
            for d, _ in handled:
                await d.ack()
        for _, event in handled:
            self._recent.add(event.event_id)
        self._metrics.handled.labels(self.spec.kind).inc(len(handled))

    async def _dead_letter(self, d: Delivery, event: RecordedEvent | None, error: str) -> None:
        await d.dead_letter(error)
        if event is not None:
            self._recent.add(event.event_id)
        self._metrics.dead_lettered.labels(self.spec.kind).inc()
        self._log.error(
            "event dead-lettered",
            event_id=str(event.event_id) if event else None,
            stream_id=event.stream_id if event else None,
            deliveries=d.deliveries,
            error=error,
        )
