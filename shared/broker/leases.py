"""Partition leases in the database: how N instances of one worker kind split P partitions.

Every tick (a quarter of the TTL) an instance, in one transaction: refreshes its row in
`worker_instances`; renews the leases it holds; counts the live instances (seen within the TTL).
Its fair share is P // n, plus one for the first P % n instances in id order, so the shares add up
to P. An instance above its share releases its highest partitions (after stopping their consumers);
one below it takes free or expired leases. Joining and leaving converge within two ticks; a dead
instance's partitions are taken over once its leases expire (one TTL).

Safety: a partition is consumed only while its lease is held. Expiry times come from each
instance's clock, so clocks must agree (NTP) to well within the safety margin, and the runtime
stops consuming a partition a margin *before* its lease would expire when renewals fail.
RabbitMQ's single-active-consumer and JetStream's one-batch `max_ack_pending` are second fences.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.broker.tables import partition_leases, worker_instances


def fair_share(partitions: int, live: list[str], me: str) -> int:
    """How many partitions `me` should hold when `live` (sorted, including `me`) share `partitions`."""
    if me not in live:
        live = sorted([*live, me])
    base, extra = divmod(partitions, len(live))
    return base + (1 if live.index(me) < extra else 0)


@dataclass(frozen=True, slots=True)
class TickResult:
    held: frozenset[int]
    """Leases this instance holds after the tick (renewed)."""
    share: int
    live_instances: int


class PartitionLeases:
    def __init__(self, engine: AsyncEngine, kind: str, instance_id: str, partitions: int, ttl: float) -> None:
        self._engine = engine
        self.kind = kind
        self.instance_id = instance_id
        self._partitions = partitions
        self._ttl = timedelta(seconds=ttl)

    async def setup(self) -> None:
        """Create the lease rows of this kind that do not exist yet (free, expired)."""
        async with self._engine.begin() as conn:
            existing = set(
                (
                    await conn.execute(select(partition_leases.c.partition).where(partition_leases.c.kind == self.kind))
                ).scalars()
            )
        missing = [p for p in range(self._partitions) if p not in existing]
        epoch_start = datetime(1970, 1, 1, tzinfo=UTC)
        for p in missing:
            row = {"kind": self.kind, "partition": p, "owner": None, "expires_at": epoch_start, "epoch": 0}
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(partition_leases).values(row))
            except IntegrityError:
                pass  # another instance created it first

    async def tick(self, held: frozenset[int]) -> TickResult:
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            await self._heartbeat(conn, now)
            live = await self._live_instances(conn, now)
            if held:
                await conn.execute(
                    update(partition_leases)
                    .where(self._mine(), partition_leases.c.partition.in_(held))
                    .values(expires_at=now + self._ttl)
                )
            renewed = frozenset(
                (
                    await conn.execute(
                        select(partition_leases.c.partition).where(self._mine(), partition_leases.c.expires_at > now)
                    )
                ).scalars()
            )
        return TickResult(renewed, fair_share(self._partitions, live, self.instance_id), len(live))

    async def acquire(self, count: int) -> frozenset[int]:
        """Take up to `count` free or expired partitions; returns those taken."""
        now = datetime.now(UTC)
        free = partition_leases.c.owner.is_(None) | (partition_leases.c.expires_at < now)
        taken: set[int] = set()
        async with self._engine.begin() as conn:
            candidates = (
                await conn.execute(
                    select(partition_leases.c.partition)
                    .where(partition_leases.c.kind == self.kind, free)
                    .order_by(partition_leases.c.partition)
                )
            ).scalars()
            for p in list(candidates):
                if len(taken) >= count:
                    break
                # The WHERE is re-checked under the row lock, so of two racing instances one wins.
                result = await conn.execute(
                    update(partition_leases)
                    .where(partition_leases.c.kind == self.kind, partition_leases.c.partition == p, free)
                    .values(owner=self.instance_id, expires_at=now + self._ttl, epoch=partition_leases.c.epoch + 1)
                )
                if result.rowcount == 1:
                    taken.add(p)
        return frozenset(taken)

    async def release(self, partitions: frozenset[int]) -> None:
        if not partitions:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                update(partition_leases)
                .where(self._mine(), partition_leases.c.partition.in_(partitions))
                .values(owner=None, expires_at=datetime.now(UTC))
            )

    async def leave(self) -> None:
        """Release every lease and remove this instance, so the others take over at their next tick."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(partition_leases).where(self._mine()).values(owner=None, expires_at=datetime.now(UTC))
            )
            await conn.execute(delete(worker_instances).where(self._me()))

    def _mine(self) -> ColumnElement[bool]:
        return and_(partition_leases.c.kind == self.kind, partition_leases.c.owner == self.instance_id)

    def _me(self) -> ColumnElement[bool]:
        return and_(worker_instances.c.kind == self.kind, worker_instances.c.instance_id == self.instance_id)

    async def _heartbeat(self, conn: AsyncConnection, now: datetime) -> None:
        result = await conn.execute(update(worker_instances).where(self._me()).values(last_seen=now))
        if result.rowcount == 0:
            await conn.execute(
                insert(worker_instances).values(
                    kind=self.kind, instance_id=self.instance_id, started_at=now, last_seen=now
                )
            )

    async def _live_instances(self, conn: AsyncConnection, now: datetime) -> list[str]:
        # Rows of instances gone for long (killed without `leave`) are removed by whoever sees them.
        await conn.execute(
            delete(worker_instances).where(
                worker_instances.c.kind == self.kind, worker_instances.c.last_seen < now - 4 * self._ttl
            )
        )
        rows = await conn.execute(
            select(worker_instances.c.instance_id)
            .where(worker_instances.c.kind == self.kind, worker_instances.c.last_seen >= now - self._ttl)
            .order_by(worker_instances.c.instance_id)
        )
        return list(rows.scalars())
