"""The projections handler through the real worker runtime and NATS: events appended to the store,
published as the relay publishes them, projected by the worker into the read models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import unique_suffix
from test_read_models_support import Env

from services.projections import queries
from services.projections.handlers import KIND, projections_handler
from services.projections.projector import Projector
from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.metrics import MetricsRegistry
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

FAST = WorkerOptions(
    batch_size=64, retry=RetryPolicy(max_deliver=3, backoff_base=0.02, backoff_max=0.1), lease_ttl=3.0, fetch_wait=0.2
)


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[ConsumingBroker]:
    b = await connect_broker(nats_url, namespace=f"t{unique_suffix()}")
    try:
        yield b
    finally:
        await b.delete_topology((KIND,))  # type: ignore[attr-defined]
        await b.close()


@pytest.mark.nats
async def test_worker_projects_published_events_and_ignores_their_redelivery(
    broker: ConsumingBroker, sqlite_url: str
) -> None:
    migrate(sqlite_url)
    store = await SqlEventStore.open(sqlite_url)
    engine = create_engine(sqlite_url).execution_options(sqlite_begin="IMMEDIATE")
    env = Env(store, engine, Projector(engine, partitions=broker.partitions))
    metrics = MetricsRegistry()
    worker = Worker(KIND, None, projections_handler(engine, broker.partitions, metrics), broker, engine,
                    metrics=metrics, options=FAST)  # fmt: skip
    try:
        await env.start("d", "direct", ["alice", "bob"])
        for n in range(20):
            await env.send("d", "alice", f"message {n}")
        await env.read("d", "bob", 5)
        events = await store.read_all(0, 1000)
        async with worker:
            await broker.publish_events(events)
            await broker.publish_events(events)  # a relay republishing after a crash
            for _ in range(150):
                async with engine.connect() as conn:
                    if (await queries.unread(conn, "bob")).total == 15:
                        break
                await asyncio.sleep(0.1)
        async with engine.connect() as conn:
            unread = await queries.unread(conn, "bob")
            page = await queries.messages(conn, "alice", "d", limit=100)
        assert unread.total == 15
        assert page is not None and len(page) == 20 and [m.status for m in page[4:6]] == ["read", "sent"]
    finally:
        await store.close()
        await engine.dispose()
