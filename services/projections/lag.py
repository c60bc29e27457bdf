"""Counting the events each read model has not applied yet, per projection and partition: for
`ledgerline projections status` (services/projections/rebuild.py) and the worker's lag gauge
(services/projections/lag_metrics.py).

Per partition, not head minus the lowest checkpoint: checkpoints are per partition, so a partition
that receives no events keeps an old checkpoint while the others move on, and head minus it would
grow on a worker that is fully caught up. Incrementally: that same quiet partition made every count
read every event after its old checkpoint. In a busy group (one partition busy, fifteen quiet) that
was the whole store every 5 s, ~0.3 s of the worker's event loop on the 2-core VM at 50,000 events
and growing with the store; its other transactions, holding SQLite's write lock, waited behind it,
and so did every append (sends stalled 100-400 ms every 5 s; decision 0026). A counter that is kept
remembers each partition's last event up to where it has read, so its next count reads only the new
events plus the events after the checkpoints that are really behind.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.projections.projector import read_checkpoints
from services.projections.tables import PROJECTIONS
from shared.events.partition import partition_of
from shared.store.tables import events

SCAN_PAGE = 5_000  # events per query of a count; the loop is given back between pages
PARTITION_CACHE_MAX = 100_000  # streams whose partition is remembered


def reader(engine: AsyncEngine) -> AsyncEngine:
    """DEFERRED: a count is a read; on SQLite it must not hold the write lock the appends and the
    projections need (the workers' engine begins IMMEDIATE)."""
    return engine.execution_options(sqlite_begin="DEFERRED")


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
        async with reader(engine).connect() as conn:
            counts = await self.count(conn, await read_checkpoints(conn, PROJECTIONS))
        totals = dict.fromkeys(PROJECTIONS, 0)
        for (projection, _), n in counts.items():
            totals[projection] += n
        return totals

    async def count(self, conn: AsyncConnection, done: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Per (projection, partition), the events after its checkpoint in `done` (absent: 0)."""
        behind = [[done.get((n, p), 0) for n in PROJECTIONS] for p in range(self._partitions)]
        starts = [c for p, cs in enumerate(behind) for c in cs if self._scanned is None or c < self._last[p]]
        if self._scanned is not None:
            starts.append(self._scanned)
        counts = [[0] * len(PROJECTIONS) for _ in range(self._partitions)]
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
                for i, c in enumerate(behind[p]):
                    if position > c:
                        counts[p][i] += 1
            if rows:
                after = rows[-1].position
            if len(rows) < SCAN_PAGE:
                break
            await asyncio.sleep(0)  # a long backlog: let the worker's batches through between pages
        self._scanned = max(after, self._scanned or 0)
        return {(n, p): counts[p][i] for i, n in enumerate(PROJECTIONS) for p in range(self._partitions)}
