"""The worker runtime: consumes events for one worker kind (delivery, projections, tickets …).

    worker = Worker("projections", {"MessageSent", "Read"}, handle, broker, engine, metrics=registry)
    await worker.start()      # returns once it is consuming (or waiting for partitions)
    ...
    await worker.stop()       # finishes the batch in hand, releases the leases

The handler contract
--------------------
`async def handle(batch: list[RecordedEvent]) -> None` receives up to `batch_size` events, each
stream's events in stream order, never two batches of one partition at once.
- It commits its own transaction, with its checkpoint (e.g. the last applied position per read
  model) in the same transaction as its changes. The runtime acks the batch *after* it returns.
- Delivery is at least once: after a crash, a lost lease or a failed ack, the same events come
  again (also as a one-event batch after a batch failure). The handler makes effects idempotent:
  skip what its checkpoint already covers; emit events with deterministic ids.
- Raising retries: the failing batch is replayed one event at a time, each with exponential
  back-off, up to `max_deliver` tries (broker redeliveries count); then the event goes to the
  dead letters with the error text and the partition moves on. `PoisonEvent` skips the retries.
- Handlers never call broker APIs (no acks): acknowledgement lives here only.

Scaling out: every instance of a kind registers in the database and takes a fair share of the P
partitions through leases (shared.broker.leases); each held partition has one consume loop
(shared.broker.consume). Instances joining or leaving rebalance within two lease ticks; a killed
instance's partitions move once its leases expire (`lease_ttl`), and its unacked batch is
redelivered by the broker (after `ack_wait` on JetStream, at once on RabbitMQ); the new owner does
not fetch past it (shared/broker/consume.py, "Takeover").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.broker.consume import Handler, PartitionRunner, PoisonEvent, RetryPolicy
from shared.broker.leases import PartitionLeases
from shared.broker.port import ConsumerSpec, ConsumingBroker
from shared.broker.worker_metrics import WorkerMetrics
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

__all__ = ["Handler", "PoisonEvent", "RetryPolicy", "Worker", "WorkerOptions"]

_KIND_RE = re.compile(r"^[A-Za-z0-9_-]{1,60}$")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_size: int = 256
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ack_wait: float = 30.0
    """Seconds before the broker redelivers an unacked message (JetStream); kept alive during retries."""
    lease_ttl: float = 15.0
    """Seconds a lease lasts without renewal: how long a killed instance's partitions wait."""
    fetch_wait: float = 1.0
    """Longest wait for a batch; bounds how fast a stop or a lost lease is noticed."""
    dedup_window: int = 4096


@dataclass(slots=True)
class _Owned:
    runner: PartitionRunner
    task: asyncio.Task[None]


class Worker:
    def __init__(
        self,
        kind: str,
        types: Collection[str] | None,
        handler: Handler,
        broker: ConsumingBroker,
        engine: AsyncEngine,
        *,
        metrics: MetricsRegistry | None = None,
        options: WorkerOptions | None = None,
        instance_id: str | None = None,
    ) -> None:
        if not _KIND_RE.match(kind):
            raise ValueError(f"worker kind {kind!r} must match {_KIND_RE.pattern} (it names queues)")
        self.kind = kind
        self.types = frozenset(types) if types is not None else None
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._handler = handler
        self._broker = broker
        self._options = options or WorkerOptions()
        self._metrics = WorkerMetrics.of(metrics or MetricsRegistry())
        self._leases = PartitionLeases(engine, kind, self.instance_id, broker.partitions, self._options.lease_ttl)
        self._owned: dict[int, _Owned] = {}
        self._valid_until = 0.0  # monotonic time until which held leases may be used
        self._stopping = asyncio.Event()
        self._balancer: asyncio.Task[None] | None = None
        self._log = get_logger("ledgerline.worker").bind(kind=kind, instance=self.instance_id)

    @property
    def owned_partitions(self) -> frozenset[int]:
        return frozenset(self._owned)

    def spec(self, partition: int) -> ConsumerSpec:
        o = self._options
        return ConsumerSpec(self.kind, self.types, partition, o.retry.max_deliver, o.ack_wait, o.batch_size)

    async def start(self) -> None:
        """Declare every partition's consumer (so events are kept for this kind from now on), join
        the lease table and take a first share."""
        await self._broker.declare_consumers([self.spec(p) for p in range(self._broker.partitions)])
        await self._leases.setup()
        await self._balance_once()
        self._balancer = asyncio.create_task(self._balance_forever(), name=f"balance-{self.kind}")
        self._log.info("worker started", partitions=sorted(self._owned))

    async def stop(self) -> None:
        """Finish the batches in hand, release the leases and leave; idempotent."""
        self._stopping.set()
        if self._balancer is not None:
            await self._balancer
            self._balancer = None
        await self._stop_partitions(frozenset(self._owned))
        with contextlib.suppress(SQLAlchemyError):
            await self._leases.leave()
        self._metrics.partitions_owned.labels(self.kind, self.instance_id).set(0)
        self._log.info("worker stopped")

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _lease_valid(self) -> bool:
        return time.monotonic() < self._valid_until

    @property
    def _tick_interval(self) -> float:
        return self._options.lease_ttl / 4

    async def _balance_forever(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_interval):  # not wait_for: it can swallow a cancel (3.11)
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self._balance_once()
            except (SQLAlchemyError, OSError) as err:
                # Consumers stop by themselves when `_valid_until` passes without a renewal.
                self._log.warning("lease renewal failed", error=repr(err))
            await self._reap_finished()

    async def _balance_once(self) -> None:
        started = time.monotonic()
        tick = await self._leases.tick(frozenset(self._owned))
        # Stop a safety margin before the leases would expire elsewhere (clock skew, slow batch).
        self._valid_until = started + self._options.lease_ttl * 0.75
        lost = frozenset(self._owned) - tick.held
        if lost:
            self._log.warning("leases lost", partitions=sorted(lost))
            await self._stop_partitions(lost)
        surplus = len(tick.held) - tick.share
        if surplus > 0:
            give_up = frozenset(sorted(tick.held, reverse=True)[:surplus])
            await self._stop_partitions(give_up)
            await self._leases.release(give_up)
        elif surplus < 0 and not self._stopping.is_set():
            for p in sorted(await self._leases.acquire(-surplus)):
                self._start_partition(p)
        self._metrics.partitions_owned.labels(self.kind, self.instance_id).set(len(self._owned))
        if lost or surplus:
            self._log.info("partitions rebalanced", owned=sorted(self._owned), live=tick.live_instances)

    def _start_partition(self, partition: int) -> None:
        o = self._options
        runner = PartitionRunner(
            self._broker,
            self.spec(partition),
            self._handler,
            o.retry,
            self._metrics,
            self._lease_valid,
            fetch_wait=o.fetch_wait,
            dedup_window=o.dedup_window,
        )
        task = asyncio.create_task(runner.run(), name=f"{self.kind}-p{partition}")
        self._owned[partition] = _Owned(runner, task)

    async def _stop_partitions(self, partitions: frozenset[int]) -> None:
        stopping = [self._owned.pop(p) for p in partitions if p in self._owned]
        for owned in stopping:
            owned.runner.stopping.set()
        for owned in stopping:
            await self._await_runner(owned)

    async def _reap_finished(self) -> None:
        """Partition loops that ended on their own (lease deadline passed, broker error) give their
        partition back, so it can be taken again at the next tick."""
        done = frozenset(p for p, o in self._owned.items() if o.task.done())
        for p in done:
            await self._await_runner(self._owned.pop(p))
        if done:
            with contextlib.suppress(SQLAlchemyError):
                await self._leases.release(done)

    async def _await_runner(self, owned: _Owned) -> None:
        try:
            await owned.task
        except Exception as err:
            self._log.error("partition loop failed", partition=owned.runner.spec.partition, error=repr(err))
