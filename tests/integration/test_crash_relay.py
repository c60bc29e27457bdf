"""Kill -9 of the active relay while it publishes: the standby takes over within seconds, the killed
one comes back as a standby, and every event reaches the worker exactly once in effect, each stream
in order. On NATS (SQLite and PostgreSQL stores: file lock and advisory lock) and RabbitMQ.

The relays are child processes (tests/helpers/relay_proc.py: the real Relay) that hold each batch a
moment between the broker's confirmation and the checkpoint write, so the kill most likely falls in
that window and the next leader republishes what was already confirmed: JetStream drops the copies
by Nats-Msg-Id; on RabbitMQ the runtime's recent ids and the handler's checkpoint absorb them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import unique_suffix
from helpers.flow_events import append_messages
from helpers.flow_handler import (
    applied_versions,
    assert_exactly_once_in_order,
    create_tables,
    handled_count,
    recording_handler,
    wait_handled,
)
from helpers.processes import Child, wait_until
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.broker.factory import connect_broker
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore
from shared.store.tables import checkpoints, metadata

KIND = "relaycrash"
STREAMS, PER_STREAM = 20, 80
TOTAL = STREAMS * PER_STREAM
TAKEOVER_LIMIT = 5.0  # "within seconds": standby retry 0.5 s + the child's own start-up slack
WORKER = WorkerOptions(
    batch_size=64,
    retry=RetryPolicy(max_deliver=20, backoff_base=0.05, backoff_max=0.5),
    ack_wait=3.0,
    lease_ttl=5.0,
    fetch_wait=0.2,
)


@pytest.fixture(
    params=[("nats", "sqlite"), ("rabbitmq", "sqlite"), ("nats", "postgres")], ids=lambda p: f"{p[0]}-{p[1]}"
)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    broker_name, db = request.param
    broker_url = str(request.getfixturevalue("nats_url" if broker_name == "nats" else "rabbit_url"))
    db_url = str(request.getfixturevalue("pg_url")) if db == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    return broker_url, db_url


@pytest.fixture
async def handled_db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await create_tables(engine)
    yield engine
    await engine.dispose()


async def test_the_active_relay_killed_mid_publish_is_replaced_and_nothing_is_lost_or_doubled(
    setup: tuple[str, str], handled_db: AsyncEngine, tmp_path: Path
) -> None:
    broker_url, db_url = setup
    namespace = f"t{unique_suffix()}"
    await asyncio.to_thread(migrate, db_url)
    broker = await connect_broker(broker_url, namespace=namespace)
    store = await SqlEventStore.open(db_url)
    worker = Worker(KIND, None, recording_handler(handled_db), broker, handled_db, options=WORKER)
    args = ["--broker", broker_url, "--namespace", namespace, "--db", db_url, "--page-size", "50", "--hold", "0.03"]
    children: list[Child] = []
    try:
        await worker.start()  # declares its queues before anything is published
        a = Child("relay-a", "relay_proc.py", args, tmp_path)
        children.append(a)
        await wait_until(lambda: bool(a.log_events("relay_leading")), 30, "relay A to lead", children)
        b = Child("relay-b", "relay_proc.py", args, tmp_path)
        children.append(b)
        await wait_until(lambda: bool(b.log_events("relay_standing_by")), 30, "relay B to stand by", children)
        ids = await append_messages(store, STREAMS, PER_STREAM)  # both relays are up: A publishes now

        await _until_checkpoint_passes(store, 300, children)
        a.kill()
        took = await wait_until(lambda: bool(b.log_events("relay_leading")), 10, "relay B to take over", children)
        assert took < TAKEOVER_LIMIT
        restarted = Child("relay-a2", "relay_proc.py", args, tmp_path)
        children.append(restarted)

        await wait_handled(handled_db, TOTAL, 60.0, children)
        await wait_until(lambda: bool(restarted.log_events("relay_standing_by")), 30, "A to return as standby")
        await asyncio.sleep(1.0)  # anything doubled would show now
        assert await handled_count(handled_db) == TOTAL
        assert_exactly_once_in_order(await applied_versions(handled_db), {f"conversation-{c}": PER_STREAM for c in ids})
        resumed_from = b.log_events("relay_leading")[0]["from_position"]
        assert 300 <= resumed_from < TOTAL
    finally:
        for child in children:
            child.stop()
        await worker.stop()
        await broker.delete_topology([KIND])  # type: ignore[attr-defined]
        await broker.close()
        await store.close()


async def _until_checkpoint_passes(store: SqlEventStore, position: int, children: list[Child]) -> None:
    latest = 0

    async def poll() -> None:
        nonlocal latest
        while True:
            async with store.engine.connect() as conn:
                row = (await conn.execute(select(checkpoints.c.position).where(checkpoints.c.name == "relay"))).first()
            latest = row[0] if row else 0
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    try:
        await wait_until(lambda: latest >= position, 30, f"the checkpoint to pass {position}", children)
    finally:
        poller.cancel()
    assert latest < TOTAL, "the relay finished before the kill"
