"""Kill -9 of a worker process mid-batch, then a restart: every event is handled exactly once in
effect, each stream in order, with no gap. On both real brokers (machine NATS on 4222, RabbitMQ on
5672), each test in its own namespace. Events flow as in production: store -> relay -> broker.

The worker is a child process (tests/helpers/crash_worker.py) running the real runtime with the real
handler contract: rows unique on event id and a per-stream checkpoint in the same transaction, with
a pause before the commit so that the kill lands inside a batch's transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import unique_suffix
from helpers.crash_worker import KIND, options
from helpers.flow_events import append_messages
from helpers.flow_handler import (
    applied_versions,
    assert_exactly_once_in_order,
    create_tables,
    handled_count,
    wait_handled,
)
from helpers.processes import Child
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.broker.factory import connect_broker
from shared.broker.port import ConsumerSpec, ConsumingBroker
from shared.broker.relay import Relay, RelayOptions
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

STREAMS, PER_STREAM = 20, 60
TOTAL = STREAMS * PER_STREAM


@pytest.fixture(params=["nats", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("nats_url" if request.param == "nats" else "rabbit_url"))


@pytest.fixture
def namespace() -> str:
    return f"t{unique_suffix()}"


@pytest.fixture
async def broker(broker_url: str, namespace: str) -> AsyncIterator[ConsumingBroker]:
    b = await connect_broker(broker_url, namespace=namespace)
    try:
        yield b
    finally:
        await b.delete_topology([KIND])  # type: ignore[attr-defined]
        await b.close()


@pytest.fixture
async def worker_db(tmp_path: Path) -> AsyncIterator[tuple[str, AsyncEngine]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    engine = create_async_engine(url)
    await create_tables(engine)
    yield url, engine
    await engine.dispose()


async def test_a_worker_killed_mid_batch_and_restarted_handles_every_event_exactly_once(
    broker: ConsumingBroker, broker_url: str, namespace: str, worker_db: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    db_url, engine = worker_db
    events_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await asyncio.to_thread(migrate, events_url)
    # The worker's queues / consumers exist before anything is published (RabbitMQ keeps no history).
    # Lease TTL: a tick must land within 75% of it or partitions churn; 1 s was too tight on a loaded 2-core CI.
    o = options(batch=32, ack_wait=2.0, lease_ttl=3.0)
    await broker.declare_consumers(
        [ConsumerSpec(KIND, None, p, o.retry.max_deliver, o.ack_wait, o.batch_size) for p in range(broker.partitions)]
    )
    args = ["--broker", broker_url, "--namespace", namespace, "--db", db_url, "--pause", "0.03"]
    store = await SqlEventStore.open(events_url)
    relay = Relay.for_database(store, broker, store.engine, events_url, options=RelayOptions(idle_wait=0.2))
    children: list[Child] = []
    try:
        ids = await append_messages(store, STREAMS, PER_STREAM)
        await relay.start()
        first = Child("worker-a", "crash_worker.py", args, tmp_path)
        children.append(first)
        await wait_handled(engine, 200, 30.0, children)
        first.kill()
        at_kill = await handled_count(engine)
        assert at_kill < TOTAL, "the kill came too late to be mid-flow"
        second = Child("worker-b", "crash_worker.py", args, tmp_path)
        children.append(second)
        await wait_handled(engine, TOTAL, 60.0, children)
        await asyncio.sleep(1.0)  # anything doubled would show now
        assert await handled_count(engine) == TOTAL
        assert_exactly_once_in_order(await applied_versions(engine), {f"conversation-{c}": PER_STREAM for c in ids})
    finally:
        for child in children:
            child.stop()
        await relay.stop()
        await store.close()


async def trickle(store: SqlEventStore, ids: list[str], rounds: int, gap: float) -> None:
    """One event per stream per round: live traffic, so the worker fetches small, partial batches."""
    for seq in range(1, rounds + 1):
        await append_messages(store, len(ids), 1, start_seq=seq, ids=ids)
        await asyncio.sleep(gap)


@pytest.mark.parametrize("broker_url", ["nats"], indirect=True)
async def test_a_partial_batch_held_by_a_killed_worker_is_not_overtaken_by_newer_events(
    broker: ConsumingBroker, broker_url: str, namespace: str, worker_db: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    """JetStream redelivers a killed owner's unacked batch only after `ack_wait`. Here `ack_wait` (6 s)
    is longer than the lease TTL (3 s), as in production (30 s / 15 s), so the next owner holds the
    partition before the old batch comes back. It must not fetch newer events first: a handler whose
    checkpoint passed them would skip the old ones for good (the count would stop short of TOTAL).
    RabbitMQ returns a dead connection's messages at once, in place, so this is JetStream's case."""
    db_url, engine = worker_db
    events_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await asyncio.to_thread(migrate, events_url)
    o = options(batch=32, ack_wait=6.0, lease_ttl=3.0)
    await broker.declare_consumers(
        [ConsumerSpec(KIND, None, p, o.retry.max_deliver, o.ack_wait, o.batch_size) for p in range(broker.partitions)]
    )
    args = ["--broker", broker_url, "--namespace", namespace, "--db", db_url, "--pause", "0.05"]
    args += ["--ack-wait", "6", "--lease-ttl", "3"]
    streams, rounds = 20, 40
    store = await SqlEventStore.open(events_url)
    relay = Relay.for_database(store, broker, store.engine, events_url, options=RelayOptions(idle_wait=0.05))
    children: list[Child] = []
    ids = [str(uuid.uuid4()) for _ in range(streams)]
    try:
        await relay.start()
        first = Child("worker-a", "crash_worker.py", args, tmp_path)
        children.append(first)
        traffic = asyncio.create_task(trickle(store, ids, rounds, gap=0.1))
        await wait_handled(engine, 150, 30.0, children)
        first.kill()  # mid-flow: live partitions hold small batches, unacked
        assert await handled_count(engine) < streams * rounds, "the kill came too late to be mid-flow"
        second = Child("worker-b", "crash_worker.py", args, tmp_path)
        children.append(second)
        await traffic
        await wait_handled(engine, streams * rounds, 60.0, children)
        await asyncio.sleep(1.0)  # anything doubled would show now
        assert await handled_count(engine) == streams * rounds
        assert_exactly_once_in_order(await applied_versions(engine), {f"conversation-{c}": rounds for c in ids})
    finally:
        for child in children:
            child.stop()
        await relay.stop()
        await store.close()
