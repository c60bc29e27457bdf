"""`ledgerline tickets`: the tickets worker process, configured by LEDGERLINE_* variables.

Beside the worker service's consumers it runs the SLA timer loop, hears presence heartbeats and
publishes `ticket` frames, on a broker connection of its own for the ephemeral path (as delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.broker import connect_configured_broker
from services.common.database import open_engine
from services.common.lifecycle import run_service
from services.common.worker_service import WORKER_POOL_SIZE, WorkerContext, serve_worker
from services.tickets.desk import Desk, DeskSettings
from services.tickets.domain.sla import load_sla_policy
from services.tickets.handlers import KIND, TYPES, tickets_handler
from services.tickets.realtime import AgentPresence, TicketFrames
from services.tickets.timers import TimerLoop
from shared.broker.consume import Handler
from shared.broker.port import Broker
from shared.config import Settings
from shared.store.sql import SqlEventStore


def utcnow() -> datetime:
    return datetime.now(UTC)


def main(args: argparse.Namespace) -> int:
    return run_service(KIND, serve)


class TicketsService:
    """The desk, its timer loop and its presence listener, built when the worker builds its handler
    (that is when the worker service's engine and metrics exist) and closed after the worker stops."""

    def __init__(self, settings: Settings, broker: Broker | None, now: Callable[[], datetime] = utcnow) -> None:
        self._settings = settings
        self._broker = broker
        self._now = now
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._store: SqlEventStore | None = None
        self._read_engine: AsyncEngine | None = None
        self._presence: AgentPresence | None = None
        self.desk: Desk | None = None

    def handler(self, context: WorkerContext) -> Handler:
        settings = self._settings
        # Pools as large as the runtime's, overflow not opened: the partition loops read at once, and
        # an overflow connection is closed when returned, so under load most batches forked a new
        # PostgreSQL server process (~10 % of the worker's CPU: WORKER_POOL_SIZE's note).
        url = settings.resolved_database_url
        self._store = SqlEventStore(open_engine(url, pool_size=WORKER_POOL_SIZE, max_overflow=0), own_engine=True)
        desk_settings = DeskSettings(
            settings.support_agent_capacity, settings.support_reopen_window_seconds, load_sla_policy(settings)
        )
        self._read_engine = read_engine = open_engine(url, pool_size=WORKER_POOL_SIZE, max_overflow=0)
        if read_engine.dialect.name == "postgresql":
            # Each read is consistent by itself (READ COMMITTED gives every statement its own snapshot
            # anyway): in autocommit psycopg sends no BEGIN before it and no ROLLBACK after it, two
            # round trips of three for the query every batch of messages makes (Desk.latest_tickets).
            read_engine = read_engine.execution_options(isolation_level="AUTOCOMMIT")
        self.desk = desk = Desk(
            context.engine,
            read_engine,
            self._store,
            desk_settings,
            TicketFrames(self._broker),
            context.metrics,
            self._now,
        )
        timers = TimerLoop(context.engine, desk, context.metrics, self._now)
        self._tasks.append(asyncio.create_task(timers.run(self._stop)))
        self._presence = AgentPresence(self._broker, desk.on_presence)
        desk.online = self._presence.is_online
        self._tasks.append(asyncio.create_task(self._presence.start()))
        return tickets_handler(desk, context.metrics)

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._presence is not None:
            await self._presence.close()
        if self._store is not None:
            await self._store.close()
        if self._read_engine is not None:
            await self._read_engine.dispose()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    load_sla_policy(settings)  # a bad policy file stops the service at start, naming what is wrong
    broker = await connect_configured_broker(settings, KIND)
    service = TicketsService(settings, broker)
    try:
        await serve_worker(KIND, service.handler, settings, stop, TYPES)
    finally:
        await service.close()
        if broker is not None:
            await broker.close()
