"""Rebuild read models from the event store into fresh `*_rebuild` tables and swap them in; and the
status (checkpoint and lag per projection and partition).

Rebuilding while the worker runs loses nothing (docs/read-models.md, "Rebuild"):
1. replay pages of `read_all` into the fresh tables, each page in its own transaction, without any
   lock: the worker keeps serving the old tables meanwhile;
2. in ONE transaction: take the rebuild lock exclusively (the worker takes it shared at the start of
   every batch transaction, so none is in flight and the next one waits), replay what was appended
   since step 1 up to the head H seen under the lock, drop the old tables, rename the fresh ones,
   create the canonical indexes, and set every partition's checkpoint of the rebuilt projections
   to H. Everything at or below H is in the new tables; everything after H is committed later and
   reaches the worker, which applies it on top because its checkpoints say H.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import MetaData, Table, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.projections import search
from services.projections.lag import LagCounter, reader
from services.projections.projector import read_checkpoints, replay, take_rebuild_lock
from services.projections.tables import PROJECTIONS, TABLES, ChatTables, build_tables, checkpoints
from shared.store.sql import SqlEventStore
from shared.store.tables import events

PAGE = 2000
SUFFIX = "_rebuild"
Progress = Callable[[int, int], None]


def _pairs(fresh: ChatTables, names: Sequence[str]) -> list[tuple[Table, Table]]:
    return [pair for n in names for pair in zip(fresh.of(n), TABLES.of(n), strict=True)]


async def rebuild(
    engine: AsyncEngine,
    store: SqlEventStore,
    names: Sequence[str] = PROJECTIONS,
    *,
    partitions: int,
    progress: Progress | None = None,
) -> int:
    """Rebuild `names`; returns the head H they were rebuilt up to (inclusive)."""
    unknown = set(names) - set(PROJECTIONS)
    if unknown:
        raise ValueError(f"unknown projection(s) {sorted(unknown)}; known: {', '.join(PROJECTIONS)}")
    report = progress or (lambda done, total: None)
    writer = engine.execution_options(sqlite_begin="IMMEDIATE")
    fresh = build_tables(MetaData(), SUFFIX, indexes=False)
    async with writer.begin() as conn:
        await _create_copies(conn, fresh, names)
    total = (await store.head()).position
    after = 0
    while page := await store.read_all(after, PAGE):
        async with writer.begin() as conn:
            await replay(conn, fresh, page, names)
        after = page[-1].position
        report(after, max(total, after))
    async with writer.begin() as conn:
        await take_rebuild_lock(conn, exclusive=True)
        while page := await store.read_all(after, PAGE):
            await replay(conn, fresh, page, names)
            after = page[-1].position
        await _swap(conn, fresh, names)
        await _set_checkpoints(conn, names, partitions, after)
    report(after, after)
    return after


async def _create_copies(conn: AsyncConnection, fresh: ChatTables, names: Sequence[str]) -> None:
    """Fresh copies, without secondary indexes (created after the swap); leftovers of an interrupted
    rebuild are dropped first."""
    for new, _ in _pairs(fresh, names):
        await conn.execute(text(f"DROP TABLE IF EXISTS {new.name}"))
        await conn.run_sync(new.create)
    if "chat" in names:
        await conn.execute(text(f"DROP TABLE IF EXISTS {fresh.search}"))
        for ddl in search.create_ddl(conn.dialect.name, fresh.search):
            await conn.execute(text(ddl))


async def _swap(conn: AsyncConnection, fresh: ChatTables, names: Sequence[str]) -> None:
    pg = conn.dialect.name == "postgresql"
    renames = [(new.name, old.name) for new, old in _pairs(fresh, names)]
    if "chat" in names:
        renames.append((fresh.search, TABLES.search))
    for new_name, old_name in renames:
        await conn.execute(text(f"DROP TABLE {old_name}"))
        await conn.execute(text(f"ALTER TABLE {new_name} RENAME TO {old_name}"))
        if pg:  # constraint names are schema-wide on PostgreSQL: give back the canonical one
            await conn.execute(text(f"ALTER TABLE {old_name} RENAME CONSTRAINT {new_name}_pkey TO {old_name}_pkey"))
    for _, old in _pairs(fresh, names):
        for index in old.indexes:
            await conn.run_sync(index.create)
    if "chat" in names:
        for ddl in search.index_ddl(conn.dialect.name):
            await conn.execute(text(ddl))


async def _set_checkpoints(conn: AsyncConnection, names: Sequence[str], partitions: int, head: int) -> None:
    await conn.execute(delete(checkpoints).where(checkpoints.c.projection.in_(list(names))))
    now = datetime.now(UTC)
    rows = [
        {"projection": n, "partition": p, "position": head, "updated_at": now} for n in names for p in range(partitions)
    ]
    await conn.execute(checkpoints.insert(), rows)


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    projection: str
    partition: int
    checkpoint: int
    """Last position applied, inclusive."""
    pending: int
    """Events of this partition in the store after the checkpoint: the lag."""
    head: int
    """The store's head position."""


async def status(engine: AsyncEngine, partitions: int) -> list[PartitionStatus]:
    """Checkpoint and lag per projection and partition (a fresh counter: one read of the events after
    the lowest checkpoint, the lag region)."""
    async with reader(engine).connect() as conn:
        done = await read_checkpoints(conn, PROJECTIONS)
        head = int((await conn.execute(select(func.coalesce(func.max(events.c.position), 0)))).scalar_one())
        pending = await LagCounter(partitions).count(conn, done)
    return [PartitionStatus(n, p, done.get((n, p), 0), pending[(n, p)], head) for n, p in pending]
