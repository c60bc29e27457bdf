"""The projector: applies a batch to every read model in one transaction with their checkpoints.

Checkpoints are per (projection, partition), inclusive: `position` is the last event applied.
An event at or below its partition's checkpoint is skipped, which makes the broker's at-least-once
redelivery harmless. The runtime hands one partition per batch; the projector still groups by
partition itself (partition_of), so that a test or a replay may hand it any slice of the store.

Batches of concurrent partition loops share one transaction (services/common/transaction_group.py):
each still reads the checkpoints and writes its own, in turn, inside it.

Rebuild coordination (docs/read-models.md, "Rebuild"): every batch transaction first takes the
rebuild lock in shared mode; the rebuild's swap takes it exclusively. On PostgreSQL that is a
transaction-scoped advisory lock; on SQLite the batch begins with BEGIN IMMEDIATE, which already
excludes every other writer, the swap included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common import pg_driver
from services.common.transaction_group import TransactionGroup
from services.projections import audit, chat, directory, erasure, support
from services.projections.tables import PROJECTIONS, TABLES, ChatTables, checkpoints
from shared.events.envelope import RecordedEvent
from shared.events.partition import DEFAULT_PARTITIONS, partition_of

REBUILD_LOCK_KEY = 0x4C44_4752_524D_5242  # "LDGRRMRB"

Apply = Callable[[AsyncConnection, ChatTables, Iterable[RecordedEvent]], Awaitable[None]]
APPLIERS: dict[str, Apply] = {
    "chat": chat.apply,
    "directory": directory.apply,
    "support": support.apply,
    "audit": audit.apply,
    "erasure": erasure.apply,  # after the others: it scrubs what they copied (docs/audit.md)
}
TYPES: dict[str, frozenset[str]] = {
    "chat": chat.TYPES,
    "directory": directory.TYPES,
    "support": support.TYPES,
    "audit": audit.TYPES,
    "erasure": erasure.TYPES,
}


def needed_types(projections: Sequence[str] = PROJECTIONS) -> frozenset[str]:
    """The event types the read models use; every other type only advances the checkpoints."""
    return frozenset().union(*(TYPES[p] for p in projections))


# PostgreSQL's statements of every batch run on the driver (services/common/pg_driver.py).
_PG_STORE_CHECKPOINTS = (
    "INSERT INTO rm_checkpoints (projection, partition, position, updated_at) "
    "SELECT p, n, pos, :at "
    "FROM unnest(CAST(:p AS text[]), CAST(:n AS integer[]), CAST(:pos AS bigint[])) AS u(p, n, pos) "
    "ON CONFLICT (projection, partition) DO UPDATE SET "
    "position = greatest(rm_checkpoints.position, excluded.position), updated_at = excluded.updated_at"
)
_PG_CHECKPOINTS_OF = (
    "SELECT projection, partition, position FROM rm_checkpoints"
    " WHERE projection = ANY(CAST(:projections AS text[])) AND partition = ANY(CAST(:partitions AS integer[]))"
)


async def take_rebuild_lock(conn: AsyncConnection, *, exclusive: bool) -> None:
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        await pg_driver.execute(conn, f"SELECT {fn}(:k)", {"k": REBUILD_LOCK_KEY})


async def replay(
    conn: AsyncConnection, tables: ChatTables, events: Sequence[RecordedEvent], projections: Sequence[str]
) -> None:
    """Apply `events` to `tables` without checkpoints (the rebuild's fresh tables)."""
    for projection in projections:
        await APPLIERS[projection](conn, tables, events)


_CHECKPOINTS = select(checkpoints.c.projection, checkpoints.c.partition, checkpoints.c.position).where(
    checkpoints.c.projection.in_(bindparam("projections", expanding=True))
)
_CHECKPOINTS_OF = _CHECKPOINTS.where(checkpoints.c.partition.in_(bindparam("partitions", expanding=True)))

# SQLite's upsert, built once (services/projections/sql.py); its max(a, b) is GREATEST for non-NULL values.
_sqlite_upsert = sqlite_insert(checkpoints)
_SQLITE_STORE_CHECKPOINTS = _sqlite_upsert.on_conflict_do_update(
    index_elements=["projection", "partition"],
    set_={
        "position": func.max(checkpoints.c.position, _sqlite_upsert.excluded.position),
        "updated_at": _sqlite_upsert.excluded.updated_at,
    },
)


async def read_checkpoints(
    conn: AsyncConnection, projections: Sequence[str], partitions: Iterable[int] | None = None
) -> dict[tuple[str, int], int]:
    """Positions applied per (projection, partition); only `partitions` when given (a batch's: a
    transaction of one event read all 16 partitions' rows of every projection before)."""
    if partitions is None:
        rows = await conn.execute(_CHECKPOINTS, {"projections": list(projections)})
    elif conn.dialect.name == "postgresql":
        params = {"projections": list(projections), "partitions": sorted(partitions)}
        return {(p, n): pos for p, n, pos in await pg_driver.fetch(conn, _PG_CHECKPOINTS_OF, params)}
    else:
        rows = await conn.execute(_CHECKPOINTS_OF, {"projections": list(projections), "partitions": sorted(partitions)})
    return {(r.projection, r.partition): r.position for r in rows}


def merged(batches: Sequence[Sequence[RecordedEvent]]) -> list[RecordedEvent]:
    """The batches as one, each event once (a batch whose caller gave up may meet its redelivery)."""
    seen: set[int] = set()
    out: list[RecordedEvent] = []
    for batch in batches:
        for e in batch:
            if e.position not in seen:
                seen.add(e.position)
                out.append(e)
    return out


class Projector:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        projections: Sequence[str] = PROJECTIONS,
    ) -> None:
        # The batch reads its checkpoints, then writes: on SQLite take the write lock at BEGIN so
        # that a concurrent writer makes us wait (busy timeout) instead of failing the upgrade.
        self._engine = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._partitions = partitions
        self._projections = tuple(projections)
        # Concurrent batches (one per partition loop) are applied together: services/common/transaction_group.py.
        self._group: TransactionGroup[Sequence[RecordedEvent], None] = TransactionGroup(
            self._engine, self._apply_together, prologue=lambda conn: take_rebuild_lock(conn, exclusive=False)
        )

    async def apply(self, batch: Sequence[RecordedEvent]) -> None:
        if batch:
            await self._group.run(batch)

    async def _apply_together(self, conn: AsyncConnection, batches: list[Sequence[RecordedEvent]]) -> list[None]:
        """One pass over the batches of several partitions (each stream's events stay in order)."""
        await self._apply_in(conn, batches[0] if len(batches) == 1 else merged(batches))
        return [None] * len(batches)

    async def _apply_in(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        partition = {e.stream_id: partition_of(e.stream_id, self._partitions) for e in batch}
        done = await read_checkpoints(conn, self._projections, set(partition.values()))
        advanced: list[dict[str, object]] = []
        for projection in self._projections:
            fresh = [e for e in batch if e.position > done.get((projection, partition[e.stream_id]), 0)]
            if not fresh:
                continue
            await APPLIERS[projection](conn, TABLES, fresh)
            last: dict[int, int] = {}
            for e in fresh:
                p = partition[e.stream_id]
                last[p] = max(last.get(p, 0), e.position)
            advanced.extend({"projection": projection, "partition": p, "position": pos} for p, pos in last.items())
        await self._store_checkpoints(conn, advanced)

    async def _store_checkpoints(self, conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        if conn.dialect.name == "postgresql":
            # One statement over arrays instead of an executemany: a batch advances every projection
            # in every partition it touched (dozens of rows), and per row SQLAlchemy's executemany
            # cost ~10 µs of CPU against ~2 here. The rows are unique per key (built from dicts).
            columns = {"p": [r["projection"] for r in rows], "n": [r["partition"] for r in rows]}
            params = {**columns, "pos": [r["position"] for r in rows], "at": now}
            await pg_driver.execute(conn, _PG_STORE_CHECKPOINTS, params)
            return
        await conn.execute(_SQLITE_STORE_CHECKPOINTS, [{**r, "updated_at": now} for r in rows])
