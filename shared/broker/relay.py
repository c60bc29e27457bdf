"""The relay: the events table (the outbox) → the broker, in global position order, exactly one active.

    relay = Relay.for_store(store, broker, database_url, metrics=registry)
    await relay.start()     # returns at once; the relay leads or stands by in a task
    ...
    await relay.stop()      # finishes the batch in hand, releases the lock

Loop of the active relay: read a page of events after the last one read (`read_all`, up to
`page_size`) and publish it with `publish_events` (returns when the broker confirmed every event).
Up to `pipeline` pages are in flight: page k+1 is read and sent while page k is being confirmed
(the adapters send concurrent calls one after the other, so the broker stores them in order).
Pages are confirmed in order; the relay's position moves to a confirmed page's last position, and
the durable checkpoint follows at most every `checkpoint_interval` seconds (and whenever the relay
is caught up or stops), so the checkpoint's write does not compete with the appenders for the
database's write lock once per page. When caught up it sleeps in `wait_for_events` (LISTEN/NOTIFY
on PostgreSQL, a cheap poll on SQLite) with `idle_wait` as the poll fallback.

A failed page cancels the pages behind it; publishing starts again from the last confirmed position.
On JetStream the broker stream also stays in position order when a server crash loses a page's tail
while later pages sit in the client's buffer: every event names its predecessor
(`Nats-Expected-Last-Msg-Id`), so the server refuses those later events until the tail is
republished (shared/broker/nats/broker.py, publish_events; found by the fault-injection run).

Crash between confirmation and checkpoint: the next active relay republishes from the checkpoint
(up to `checkpoint_interval` worth of events, plus the pages in flight). NATS
drops the copies by `Nats-Msg-Id` (= event id) within the stream's duplicate window; RabbitMQ has
no broker-side de-duplication, so the worker runtime drops recently acked ids and the handler
contract (checkpoint in the handler's transaction) absorbs the rest. Nothing is lost either way.

Leader election (shared.broker.relay_lock): a PostgreSQL session advisory lock or a SQLite file lock.
A candidate that does not get it stands by and tries again every `standby_retry` seconds, so a dead
relay is replaced within about that time. A leader whose lock session drops stops publishing at
once (its publish is cancelled) and becomes a candidate again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.broker.port import EventPublisher
from shared.broker.relay_checkpoint import RelayCheckpoint
from shared.broker.relay_lock import LeaderLock, leader_lock
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.port import EventStore

__all__ = ["Relay", "RelayMetrics", "RelayOptions"]

# How long a graceful stop lets the batch in hand finish before cancelling it (it is republished then).
STOP_GRACE = 5.0
# Lag in events needs a head read: at most this often.
LAG_REFRESH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RelayOptions:
    name: str = "relay"
    """Checkpoint row and lock name: one active relay per name."""
    page_size: int = 1000
    """Events read and published per batch."""
    pipeline: int = 2
    """Pages in flight at once: the next is sent while the previous one is confirmed."""
    checkpoint_interval: float = 0.1
    """Longest time between checkpoint writes while publishing (also written when caught up or
    stopping). A crash republishes what was confirmed since (de-duplicated, see the module doc)."""
    idle_wait: float = 1.0
    """Longest sleep when caught up before re-reading (a lost notification costs at most this)."""
    standby_retry: float = 1.0
    """A standby tries to take the lock this often: the failover time."""
    retry_base: float = 0.2
    retry_max: float = 5.0
    """Back-off after a failed publish or read: base * 2^(failures-1), at most retry_max."""


@dataclass(frozen=True, slots=True)
class _Page:
    """A page being published: its first event's recorded_at (for the lag), last position, size."""

    first_recorded_at: datetime
    last: int
    count: int
    started: float
    task: asyncio.Task[None]


_by_registry: weakref.WeakKeyDictionary[MetricsRegistry, RelayMetrics] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class RelayMetrics:
    lag_events: Gauge
    lag_seconds: Gauge
    published: Counter
    leader: Gauge
    batch_seconds: Histogram
    failures: Counter

    @classmethod
    def of(cls, registry: MetricsRegistry) -> RelayMetrics:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = cls(
                lag_events=registry.gauge("relay_lag_events", "Events appended, not yet published: head - checkpoint"),
                lag_seconds=registry.gauge(
                    "relay_lag_seconds", "Age of the oldest unpublished event (now - its recorded_at); 0 when caught up"
                ),
                published=registry.counter("relay_published", "Events published and confirmed by the broker"),
                leader=registry.gauge("relay_leader", "1 while this process is the active relay, 0 on standby"),
                batch_seconds=registry.histogram("relay_batch_seconds", "Publish of one batch, sent to confirmed"),
                failures=registry.counter("relay_failures", "Failed relay batches (publish or read), retried"),
            )
        return found


class Relay:
    def __init__(
        self,
        store: EventStore,
        publisher: EventPublisher,
        checkpoint: RelayCheckpoint,
        lock: LeaderLock,
        *,
        options: RelayOptions | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._checkpoint = checkpoint
        self._lock = lock
        self.options = options or RelayOptions()
        self._metrics = RelayMetrics.of(metrics or MetricsRegistry())
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pages_in_flight = 0  # pages being published: a stop lets them finish
        self._lag_checked = 0.0
        self._saved = 0  # the position last written to the checkpoint
        self._saved_at = 0.0  # monotonic time of that write
        self.is_leader = False
        self.terms = 0
        """How many times this relay became the leader (a lost and retaken lock counts twice)."""
        self.position = 0
        """The last position this relay published and the broker confirmed (inclusive); the durable
        checkpoint follows within `checkpoint_interval`, and is written up to it on stop."""
        self._log = get_logger("ledgerline.relay").bind(relay=self.options.name)

    @classmethod
    def for_database(
        cls,
        store: EventStore,
        publisher: EventPublisher,
        engine: AsyncEngine,
        database_url: str,
        *,
        options: RelayOptions | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> Relay:
        """The relay of the store at `database_url`: its checkpoint row and the lock that fits the database."""
        options = options or RelayOptions()
        checkpoint = RelayCheckpoint(engine, options.name)
        return cls(
            store, publisher, checkpoint, leader_lock(database_url, options.name), options=options, metrics=metrics
        )

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"relay-{self.options.name}")

    async def stop(self) -> None:
        """Finish the batch in hand (up to STOP_GRACE), release the lock; idempotent."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def healthy(self) -> bool:
        """The relay loop runs (as leader or standby): for /readyz."""
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Lead or stand by until stop() is called."""
        announced_standby = False
        try:
            while not self._stopping.is_set():
                if await self._try_acquire():
                    announced_standby = False
                    await self._lead()
                    continue
                if not announced_standby:
                    self._log.info("relay_standing_by", retry_seconds=self.options.standby_retry)
                    announced_standby = True
                await self._watch_as_standby()
                await self._sleep_unless_stopping(self.options.standby_retry)
        finally:
            await self._lock.release()
            self._set_leader(False)
            self._log.info("relay_stopped", position=self.position)

    async def _try_acquire(self) -> bool:
        try:
            return await self._lock.try_acquire()
        except Exception as err:  # the database is down: keep standing by
            self._log.warning("relay_lock_unavailable", error=repr(err))
            return False

    async def _lead(self) -> None:
        self.terms += 1
        self._set_leader(True)
        work = asyncio.create_task(self._publish_forever(), name="relay-publish")
        lost = asyncio.create_task(self._lock.wait_lost(), name="relay-lock-watch")
        stop = asyncio.create_task(self._stopping.wait())
        done: set[asyncio.Task[None] | asyncio.Task[bool]] = set()
        try:
            done, _ = await asyncio.wait({work, lost, stop}, return_when=asyncio.FIRST_COMPLETED)
            if lost in done:
                self._log.error("relay_leadership_lost", position=self.position)
            elif stop in done and self._pages_in_flight:
                await asyncio.wait({work, lost}, timeout=STOP_GRACE, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, lost, stop):
                task.cancel()
            for task in (work, lost, stop):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if lost not in done:  # with the lock lost, the new leader owns the checkpoint
                await self._flush_checkpoint()
            await self._lock.release()
            self._set_leader(False)

    async def _flush_checkpoint(self) -> None:
        """Write what was confirmed and not yet checkpointed (graceful stop); bounded, best effort:
        what is not written is republished and de-duplicated."""
        if self.position <= self._saved:
            return
        try:
            await asyncio.wait_for(self._save_checkpoint(), STOP_GRACE)
        except Exception as err:
            self._log.warning("relay_checkpoint_not_written", position=self.position, error=repr(err))

    async def _save_checkpoint(self) -> None:
        position = self.position
        await self._checkpoint.save(position)
        self._saved = max(self._saved, position)
        self._saved_at = time.monotonic()

    def _set_leader(self, leading: bool) -> None:
        self.is_leader = leading
        self._metrics.leader.set(1 if leading else 0)

    async def _publish_forever(self) -> None:
        position = await self._load_checkpoint()
        self.position = self._saved = position
        self._saved_at = time.monotonic()
        self._log.info("relay_leading", from_position=position)
        failures = 0
        in_flight: deque[_Page] = deque()
        read_after = position  # the last position read (published or in flight)
        try:
            while not self._stopping.is_set():
                try:
                    if len(in_flight) < self.options.pipeline:
                        batch = await self._store.read_all(read_after, self.options.page_size)
                        if batch:
                            in_flight.append(self._send(batch))
                            read_after = batch[-1].position
                            continue
                    if in_flight:
                        await self._confirmed(in_flight.popleft())
                        failures = 0
                        continue
                    await self._caught_up()
                    await self._idle(self.position)
                except Exception as err:  # broker or database trouble: retry from the last confirmed page
                    await self._abandon(in_flight)
                    read_after = self.position
                    failures += 1
                    self._metrics.failures.inc()
                    delay = min(self.options.retry_max, self.options.retry_base * 2 ** (failures - 1))
                    self._log.warning("relay_batch_failed", position=self.position, failures=failures, error=repr(err))
                    await self._sleep_unless_stopping(delay)
            # Stopping: the pages in hand may finish (_lead cancels this task once its grace has passed).
            while in_flight:
                await self._confirmed(in_flight.popleft())
        except Exception as err:  # a page failed while stopping: it is republished by the next leader
            self._log.warning("relay_batch_failed", position=self.position, failures=1, error=repr(err))
        finally:
            await self._abandon(in_flight)

    def _send(self, batch: list[RecordedEvent]) -> _Page:
        self._pages_in_flight += 1
        task = asyncio.create_task(self._publisher.publish_events(batch), name="relay-page")
        return _Page(batch[0].recorded_at, batch[-1].position, len(batch), time.perf_counter(), task)

    async def _confirmed(self, page: _Page) -> None:
        """Wait for `page` (the oldest in flight) to be confirmed; move the position and maybe the checkpoint."""
        self._metrics.lag_seconds.set(max(0.0, (datetime.now(UTC) - page.first_recorded_at).total_seconds()))
        await page.task
        self.position = page.last
        self._pages_in_flight -= 1
        self._metrics.published.inc(page.count)
        self._metrics.batch_seconds.observe(time.perf_counter() - page.started)
        if time.monotonic() - self._saved_at >= self.options.checkpoint_interval:
            await self._save_checkpoint()
        await self._refresh_lag_events(page.last)

    async def _caught_up(self) -> None:
        if self.position > self._saved:
            await self._save_checkpoint()

    async def _abandon(self, in_flight: deque[_Page]) -> None:
        """Cancel the pages still in flight (they are republished from the last confirmed position)."""
        pages = list(in_flight)
        in_flight.clear()
        for page in pages:
            page.task.cancel()
        for page in pages:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await page.task
        self._pages_in_flight = 0

    async def _idle(self, position: int) -> None:
        self._metrics.lag_events.set(0)
        self._metrics.lag_seconds.set(0)
        waiting = asyncio.create_task(self._store.wait_for_events(position, self.options.idle_wait))
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stop):
                task.cancel()
            for task in (waiting, stop):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _refresh_lag_events(self, position: int) -> None:
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_SECONDS:
            return
        self._lag_checked = now
        head = await self._store.head()
        self._metrics.lag_events.set(max(0, head.position - position))

    async def _watch_as_standby(self) -> None:
        """A standby reports the active relay's lag too, so a stuck leader shows on every node."""
        try:
            checkpoint = await self._checkpoint.load()
            head = await self._store.head()
            oldest = await self._store.read_all(checkpoint, 1)
        except Exception as err:
            self._log.debug("relay_standby_lag_unknown", error=repr(err))
            return
        self._metrics.lag_events.set(max(0, head.position - checkpoint))
        age = (datetime.now(UTC) - oldest[0].recorded_at).total_seconds() if oldest else 0.0
        self._metrics.lag_seconds.set(max(0.0, age))

    async def _load_checkpoint(self) -> int:
        failures = 0
        while True:
            try:
                return await self._checkpoint.load()
            except Exception as err:
                failures += 1
                self._log.warning("relay_checkpoint_unreadable", failures=failures, error=repr(err))
                await asyncio.sleep(min(self.options.retry_max, self.options.retry_base * 2 ** (failures - 1)))

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel (Python 3.11)
                await self._stopping.wait()
