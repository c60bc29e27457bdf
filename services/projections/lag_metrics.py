"""`ledgerline_projection_lag_events{projection}`: events in the store that a read model has not applied
yet, refreshed every few seconds by the projections worker.

Counted as `ledgerline projections status` counts them (services/projections/rebuild.py: events after each
partition's checkpoint), not as head minus the lowest checkpoint: checkpoints are per partition, so a
partition that receives no events keeps an old checkpoint while the others move on, and head minus it
would grow on a worker that is fully caught up (an alert on it would fire on a healthy system).

Counted incrementally (`LagCounter`): that same quiet partition made every refresh read every event
after its old checkpoint. In a busy group (one partition busy, fifteen quiet) that was the whole
store every 5 s, ~0.3 s of the worker's event loop on the 2-core VM at 50,000 events and growing
with the store; its other transactions, holding SQLite's write lock, waited behind it, and so did
every append (sends stalled 100-400 ms every 5 s). The counter remembers each partition's last event
up to where it has read, so a refresh reads only the new events plus the events after the
checkpoints that are really behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Gauge
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.worker_service import WorkerContext
from services.projections.handlers import build_handler
from services.projections.projector import read_checkpoints
from services.projections.tables import PROJECTIONS
from shared.broker.consume import Handler
from shared.events.partition import partition_of
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.tables import events

REFRESH_SECONDS = 5.0
SCAN_PAGE = 5_000  # events per query of a refresh; the loop is given back between pages
PARTITION_CACHE_MAX = 100_000  # streams whose partition is remembered
log = get_logger(__name__)


def lag_gauge(metrics: MetricsRegistry) -> Gauge:
    gauge = metrics.gauge(
        "projection_lag_events", "Events in the store a read model has not applied yet", ["projection"]
    )
    for name in PROJECTIONS:  # every projection on /metrics from the start, before the first refresh
        gauge.labels(name)
    return gauge


class LagCounter:
    """Events not applied yet, per projection, reading only what a refresh needs (module docstring).

    Exact: for a partition p and projection n with checkpoint c, the events of p after c are either
    after `scanned` (read by every refresh) or, when c is behind `last[p]` (p's last event up to
    `scanned`), after c itself, and the refresh starts its read at the lowest such c. A checkpoint at
    or past `last[p]` has nothing of p pending before `scanned`. A checkpoint that moves back (an
    operator's reset) is behind `last[p]` again and is read from, as it should be."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._scanned: int | None = None  # events up to here were read (None: none yet)
        self._last = [0] * partitions  # per partition, its last event's position up to `_scanned`
        self._partition: dict[str, int] = {}
        self.read = 0  # events the last refresh read (its cost)

    async def pending(self, engine: AsyncEngine) -> dict[str, int]:
        """Per projection, the events in the store its checkpoints have not reached."""
        totals = dict.fromkeys(PROJECTIONS, 0)
        # DEFERRED: a read; on SQLite it must not hold the write lock the appends and projections need.
        async with engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
            done = await read_checkpoints(conn, PROJECTIONS)
            behind = [[done.get((n, p), 0) for n in PROJECTIONS] for p in range(self._partitions)]
            starts = [c for p, cs in enumerate(behind) for c in cs if self._scanned is None or c < self._last[p]]
            if self._scanned is not None:
                starts.append(self._scanned)
            after, last, partition_cache = min(starts, default=0), self._last, self._partition
            self.read = 0
            while True:
                query = select(events.c.stream_id, events.c.position).where(events.c.position > after)
                rows = (await conn.execute(query.order_by(events.c.position).limit(SCAN_PAGE))).all()
                self.read += len(rows)
                for stream_id, position in rows:
                    p = partition_cache.get(stream_id)
                    if p is None:
                        if len(partition_cache) >= PARTITION_CACHE_MAX:
                            partition_cache.clear()
                        p = partition_cache[stream_id] = partition_of(stream_id, self._partitions)
                    if position > last[p]:
                        last[p] = position
                    for n, c in zip(PROJECTIONS, behind[p], strict=True):
                        if position > c:
                            totals[n] += 1
                if rows:
                    after = rows[-1].position
                if len(rows) < SCAN_PAGE:
                    break
                await asyncio.sleep(0)  # a long backlog: let the worker's batches through between pages
        self._scanned = max(after, self._scanned or 0)
        return totals


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
