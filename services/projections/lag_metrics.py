"""`ledgerline_projection_lag_events{projection}`: events in the store that a read model has not applied
yet, refreshed every few seconds by the projections worker, counted by a kept `LagCounter`
(services/projections/lag.py: per partition, and reading only what is new since the last refresh)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.worker_service import WorkerContext
from services.projections.handlers import build_handler
from services.projections.lag import LagCounter
from services.projections.tables import PROJECTIONS
from shared.broker.consume import Handler
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

REFRESH_SECONDS = 5.0
log = get_logger(__name__)


def lag_gauge(metrics: MetricsRegistry) -> Gauge:
    gauge = metrics.gauge(
        "projection_lag_events", "Events in the store a read model has not applied yet", ["projection"]
    )
    for name in PROJECTIONS:  # every projection on /metrics from the start, before the first refresh
        gauge.labels(name)
    return gauge


async def refresh_lag(gauge: Gauge, engine: AsyncEngine, partitions: int, counter: LagCounter | None = None) -> None:
    counter = counter or LagCounter(partitions)
    for name, pending in (await counter.pending(engine)).items():
        gauge.labels(name).set(pending)


async def _refresh_forever(gauge: Gauge, engine: AsyncEngine, partitions: int) -> None:
    counter = LagCounter(partitions)
    while True:
        try:
            await refresh_lag(gauge, engine, partitions, counter)
        except Exception as err:  # a failed read (database restarting) must not stop the worker
            log.warning("projection_lag_refresh_failed", error=str(err))
        await asyncio.sleep(REFRESH_SECONDS)


@asynccontextmanager
async def projections_parts(context: WorkerContext) -> AsyncIterator[Handler]:
    """The projections handler, with the lag refresher running beside it."""
    gauge = lag_gauge(context.metrics)
    task = asyncio.create_task(_refresh_forever(gauge, context.engine, context.settings.partitions))
    try:
        yield build_handler(context)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
