"""The relay as a service part: wiring shared by the gateway (which runs it in its process) and
`ledgerline relay` (which runs it alone, with the worker health server on `worker_port`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.broker import connect_configured_broker
from services.common.database import DatabaseProbe, open_engine
from services.common.health import Readiness
from services.common.health_server import create_health_app, service_metrics
from services.common.lifecycle import listen, run_service, serve_http
from shared.broker.port import EventPublisher
from shared.broker.relay import Relay, RelayOptions
from shared.config import Settings
from shared.errors import ConfigError
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.sql import SqlEventStore

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def running_relay(
    store: SqlEventStore,
    publisher: EventPublisher,
    engine: AsyncEngine,
    database_url: str,
    readiness: Readiness,
    metrics: MetricsRegistry,
    options: RelayOptions | None = None,
) -> AsyncIterator[Relay]:
    """A started relay (leading or standing by), listed in /readyz as `relay`; stopped on exit."""
    relay = Relay.for_database(store, publisher, engine, database_url, options=options, metrics=metrics)
    readiness.add("relay", relay.healthy)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


def relay_main() -> int:
    """The body of `ledgerline relay`."""
    return run_service("relay", serve_relay)


async def serve_relay(settings: Settings, stop: asyncio.Event) -> None:
    if settings.broker_url is None:
        raise ConfigError(["LEDGERLINE_BROKER_URL: the relay needs a broker to publish to"])
    metrics = service_metrics()
    readiness = Readiness()
    url = settings.resolved_database_url
    engine = open_engine(url, pool_size=4)
    store = SqlEventStore(engine)
    readiness.add("database", DatabaseProbe(engine))
    sock = listen(settings.worker_host, settings.worker_port, settings.listen_fd)
    http_stop = asyncio.Event()
    http = asyncio.create_task(serve_http(create_health_app(readiness, metrics), sock, http_stop, grace=1))
    broker = None
    try:
        broker = await connect_configured_broker(settings, "relay")
        assert broker is not None
        readiness.add("broker", broker.healthy)
        async with running_relay(store, broker, engine, url, readiness, metrics):
            log.info("relay_service_ready", health=f"http://{settings.worker_host}:{settings.worker_port}")
            await _until_stop(stop, http)
    finally:
        readiness.mark_stopping()
        http_stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await http
        if broker is not None:
            await broker.close()
        await store.close()
        await engine.dispose()


async def _until_stop(stop: asyncio.Event, http: asyncio.Task[None]) -> None:
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({stop_task, http}, return_when=asyncio.FIRST_COMPLETED)
    stop_task.cancel()
    if http.done():
        http.result()
        raise RuntimeError("the health server stopped by itself")
