"""Deliveries lost in transit on JetStream: messages the server delivered to a worker's consumer that
never reached it (a connection dropped with a batch on the wire). The server holds them unacked until
`ack_wait` runs out and meanwhile hands newer events to the next fetch; a read model whose checkpoint
passed those would skip the lost ones for good (the chaos run's `cut projections<->NATS` found it:
one message of a conversation missing from the read model). The worker must notice the jump in the
consumer's delivery numbering, handle nothing of that fetch, and take the events in order once the
server redelivers them.

The loss is made for real on the machine's NATS: a pull request on the worker's durable consumer
from another connection, whose messages are taken and never acked, exactly what the server does
for a pull request of a connection that died.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from conftest import unique_suffix
from sqlalchemy.ext.asyncio import AsyncEngine
from test_broker_contract import Recorder, eventually, make_engine, make_events

from shared.broker.factory import connect_broker
from shared.broker.nats import NatsBroker
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.events.envelope import RecordedEvent
from shared.events.partition import partition_of
from shared.metrics import MetricsRegistry

KIND = "projections"
OPTIONS = WorkerOptions(
    batch_size=64,
    retry=RetryPolicy(max_deliver=3, backoff_base=0.02, backoff_max=0.1),
    ack_wait=3.0,
    lease_ttl=3.0,
    fetch_wait=0.2,
)


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[NatsBroker]:
    b = await connect_broker(nats_url, namespace=f"t{unique_suffix()}")
    assert isinstance(b, NatsBroker)
    try:
        yield b
    finally:
        await b.delete_topology([KIND])
        await b.close()


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    e = await make_engine(sqlite_url)  # the partition leases
    yield e
    await e.dispose()


class GatedRecorder(Recorder):
    """Holds the batch that holds `gate_version` until the test opens the gate."""

    def __init__(self, gate_version: int) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.at_gate = asyncio.Event()
        self._gate_version = gate_version

    def gated(self) -> Callable[[list[RecordedEvent]], Awaitable[None]]:
        inner = self.handler("worker")

        async def handle(batch: list[RecordedEvent]) -> None:
            if any(e.stream_version == self._gate_version for e in batch):
                self.at_gate.set()
                await self.gate.wait()
            await inner(batch)

        return handle


async def steal(nats_url: str, broker: NatsBroker, partition: int, count: int) -> list[int]:
    """Take `count` deliveries of the worker's consumer on another connection and drop them unacked."""
    nc = await nats.connect(nats_url)
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        durable = broker.names.durable(KIND, partition)
        request = json.dumps({"batch": count, "no_wait": True}).encode()
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{broker.names.stream}.{durable}", request, reply=inbox)
        versions = []
        while len(versions) < count:
            msg = await sub.next_msg(timeout=5.0)
            if msg.headers and msg.headers.get("Status"):
                break
            versions.append(json.loads(msg.data)["streamversion"])
        return versions
    finally:
        await nc.close()


async def test_deliveries_lost_in_transit_are_handled_in_order_once_redelivered(
    broker: NatsBroker, nats_url: str, engine: AsyncEngine
) -> None:
    events = make_events(streams=1, per_stream=10)
    partition = partition_of(events[0].stream_id, broker.partitions)
    recorder = GatedRecorder(gate_version=3)
    metrics = MetricsRegistry()
    worker = Worker(
        KIND, None, recorder.gated(), broker, engine, metrics=metrics, options=OPTIONS, instance_id="worker"
    )
    async with worker:
        await broker.publish_events(events[:3])
        await asyncio.wait_for(recorder.at_gate.wait(), 30.0)  # the worker holds 1..3, no fetch of its own waiting
        await broker.publish_events(events[3:])
        await asyncio.sleep(OPTIONS.fetch_wait + 0.3)  # its last pull request has expired on the server
        assert await steal(nats_url, broker, partition, 4) == [4, 5, 6, 7]
        recorder.gate.set()
        await eventually(lambda: recorder.count() == 10, what="every event, the lost ones included", within=30.0)
    assert dict(recorder.applied) == {events[0].stream_id: list(range(1, 11))}
    lost = metrics.registry.get_sample_value("ledgerline_worker_lost_deliveries_total", {"kind": KIND})
    assert lost == 4
