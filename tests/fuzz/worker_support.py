"""The gateway (in process, through httpx.ASGITransport, with its relay) plus the projections and delivery
workers on the real worker runtime, each with a metrics registry of its own that the test reads, in a
broker namespace of the test's own, and a raw NATS connection to publish hostile bytes straight onto the
namespace's event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from chat_support import FAST, PARTITIONS, SECRET, ChatStack
from conftest import unique_suffix

from services.delivery.handlers import KIND as DELIVERY
from services.delivery.handlers import delivery_handler
from services.delivery.service import DeliveryRealtime
from services.gateway.app import create_app
from services.projections.handlers import KIND as PROJECTIONS
from services.projections.handlers import projections_handler
from shared.broker.factory import connect_broker
from shared.broker.nats.names import NatsNames
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import Worker
from shared.config import Settings, load_settings
from shared.metrics import MetricsRegistry
from shared.store.engine import create_engine
from shared.store.migrate import migrate

KINDS = (PROJECTIONS, DELIVERY)


@dataclass
class WorkerStack:
    chat: ChatStack
    broker: ConsumingBroker
    names: NatsNames
    nc: Any
    metrics: dict[str, MetricsRegistry] = field(default_factory=dict)

    def sample(self, kind: str, name: str, **labels: str) -> float:
        value = self.metrics[kind].registry.get_sample_value(name, {"kind": kind, **labels})
        return float(value or 0.0)

    async def publish_raw(self, type_: str, partition: int, body: bytes) -> None:
        """Straight onto the namespace's event stream, as a buggy or hostile publisher would."""
        await self.nc.jetstream().publish(self.names.event_subject(type_, partition), body, stream=self.names.stream)


@asynccontextmanager
async def worker_stack(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[WorkerStack]:
    migrate(database_url)
    namespace = f"t{unique_suffix()}"
    settings = load_settings(
        {}, data_dir=tmp_path, database_url=database_url, broker_url=nats_url, jwt_secret=SECRET,
        partitions=PARTITIONS, rate_limit_per_minute=0,
    )  # fmt: skip

    async def connect(settings: Settings, service: str) -> ConsumingBroker:
        return await connect_broker(
            nats_url, namespace=namespace, partitions=PARTITIONS, source=f"ledgerline/{service}"
        )

    app = create_app(settings, connect=connect)
    engine = create_engine(database_url).execution_options(sqlite_begin="IMMEDIATE")
    brokers: list[ConsumingBroker] = []
    nc = await nats.connect(nats_url)
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            metrics: dict[str, MetricsRegistry] = {}
            for kind in KINDS:
                broker = await connect(settings, kind)
                brokers.append(broker)
                metrics[kind] = MetricsRegistry()
                if kind == PROJECTIONS:
                    handler = projections_handler(engine, PARTITIONS, metrics[kind])
                else:
                    realtime = DeliveryRealtime(broker, None, None)
                    await realtime.start()
                    stack.push_async_callback(realtime.close)
                    handler = delivery_handler(realtime, engine, PARTITIONS, metrics[kind])
                worker = Worker(kind, None, handler, broker, engine, metrics=metrics[kind], options=FAST)
                await stack.enter_async_context(worker)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30)
            )
            yield WorkerStack(
                ChatStack(http, app, settings), brokers[0], NatsNames.for_namespace(namespace), nc, metrics
            )
    finally:
        await nc.close()
        for broker in brokers:
            await broker.delete_topology(KINDS)  # type: ignore[attr-defined]
            await broker.close()
        await engine.dispose()
