"""The shape shared by the three workers (delivery, projections, tickets).

A worker process = a health server (/healthz, /readyz, /metrics on worker_host:worker_port) + the
worker runtime (shared.broker.runtime.Worker) consuming the event types its kind uses (or every type)
and calling the service's handler (services/<kind>/handlers.py).
Stopping: /readyz turns 503, the runtime finishes and acks the batch in hand and releases its
partition leases, then the health server, the broker connection and the database close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.broker import connect_configured_broker
from services.common.database import DatabaseProbe, open_engine
from services.common.health import Check, Readiness
from services.common.health_server import create_health_app, service_metrics
from services.common.lifecycle import StoppedWhileStarting, listen, run_service, serve_http, unless_stopped
from shared.broker.consume import Handler
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import Worker
from shared.config import Settings
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

# Connections of a worker process, kept open. Every owned partition's loop (16 by default) takes one
# per batch; a small pool with overflow closed and reopened a PostgreSQL connection for most batches
# under load (a server process forked each time: ~10 % of delivery's CPU at 100 msg/s, 2026-12-02).
# Loops beyond the pool wait for a connection instead.
WORKER_POOL_SIZE = 6


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a worker's handler may use; the worker service owns (and closes) all of it."""

    settings: Settings
    engine: AsyncEngine
    metrics: MetricsRegistry
    broker: ConsumingBroker | None = None
    """The service's broker connection, the one the worker consumes on: for a handler's side paths
    (delivery's ephemeral frames and presence) without a second connection."""


HandlerFactory = Callable[[WorkerContext], Handler]
WorkerParts = Callable[[WorkerContext], AbstractAsyncContextManager[Handler]]
"""For a handler with parts to start and stop (subscriptions, tasks): entered before the worker
starts, yields the handler, exited after the worker has stopped and before the broker closes."""


def worker_main(kind: str, build_handler: HandlerFactory) -> int:
    """The body of `ledgerline delivery|projections|tickets`."""

    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        await serve_worker(kind, build_handler, settings, stop)

    return run_service(kind, serve)


async def serve_worker(
    kind: str,
    build_handler: HandlerFactory,
    settings: Settings,
    stop: asyncio.Event,
    types: frozenset[str] | None = None,
) -> None:
    @asynccontextmanager
    async def plain(context: WorkerContext) -> AsyncIterator[Handler]:
        yield build_handler(context)

    await serve_worker_parts(kind, plain, settings, stop, types)


async def serve_worker_parts(
    kind: str, parts: WorkerParts, settings: Settings, stop: asyncio.Event, types: frozenset[str] | None = None
) -> None:
    """`types`: the event types the handler uses, filtered by the broker (None: every type, the
    handler chooses)."""
    metrics = service_metrics()
    readiness = Readiness()
    # Every transaction of the runtime here (partition leases) writes: on SQLite it takes the write
    # lock at BEGIN, so that it waits out another process's write (busy timeout) instead of failing
    # at once with "database is locked" when a read transaction would have to become a write one.
    engine = open_engine(settings.resolved_database_url, pool_size=WORKER_POOL_SIZE, max_overflow=0).execution_options(
        sqlite_begin="IMMEDIATE"
    )
    started = asyncio.Event()
    readiness.add("database", DatabaseProbe(engine))
    readiness.add("worker", _is_set(started))
    sock = listen(settings.worker_host, settings.worker_port, settings.listen_fd)
    http_stop = asyncio.Event()
    http = asyncio.create_task(serve_http(create_health_app(readiness, metrics), sock, http_stop, grace=1))
    broker = worker = None
    handler_parts = AsyncExitStack()
    try:
        try:
            broker = await unless_stopped(connect_configured_broker(settings, kind), stop)
        except StoppedWhileStarting:
            return  # SIGTERM while the broker was unreachable: nothing started, nothing to hand over
        if broker is not None:
            readiness.add("broker", broker.healthy)
            handler = await handler_parts.enter_async_context(parts(WorkerContext(settings, engine, metrics, broker)))
            worker = Worker(kind, types, handler, broker, engine, metrics=metrics)
            await worker.start()
        started.set()
        log.info("worker_ready", kind=kind, health=f"http://{settings.worker_host}:{settings.worker_port}")
        await _until_stop(stop, http)
    finally:
        readiness.mark_stopping()
        if worker is not None:
            await worker.stop()
        await handler_parts.aclose()
        http_stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await http
        if broker is not None:
            await broker.close()
        await engine.dispose()


def _is_set(event: asyncio.Event) -> Check:
    async def check() -> bool:
        return event.is_set()

    return check


async def _until_stop(stop: asyncio.Event, http: asyncio.Task[None]) -> None:
    """Return when stop is requested; raise if the health server ended by itself first."""
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({stop_task, http}, return_when=asyncio.FIRST_COMPLETED)
    stop_task.cancel()
    if http.done():
        http.result()
        raise RuntimeError("the health server stopped by itself")
