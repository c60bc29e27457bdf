"""Partition leases on SQLite and PostgreSQL: fair shares, exclusive ownership, expiry, release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.broker.errors import UnsupportedBrokerUrl
from shared.broker.factory import connect_broker
from shared.broker.leases import PartitionLeases, fair_share
from shared.store.tables import metadata


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    e = create_async_engine(database_url)
    async with e.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield e
    await e.dispose()


@pytest.mark.parametrize("instances", [1, 2, 3, 5, 16, 20])
def test_fair_shares_add_up_to_every_partition(instances: int) -> None:
    live = sorted(f"i{n:02d}" for n in range(instances))
    shares = [fair_share(16, live, me) for me in live]
    assert sum(shares) == 16
    assert max(shares) - min(shares) <= 1


async def test_racing_instances_never_own_the_same_partition(engine: AsyncEngine) -> None:
    leases = [PartitionLeases(engine, "projections", f"i{n}", 16, ttl=5.0) for n in range(3)]
    for lease in leases:
        await lease.setup()
    taken = await asyncio.gather(*(lease.acquire(16) for lease in leases))
    assert sum(len(t) for t in taken) == 16
    assert len(frozenset().union(*taken)) == 16


async def test_an_expired_lease_is_taken_over_and_the_old_owner_loses_it(engine: AsyncEngine) -> None:
    old = PartitionLeases(engine, "tickets", "old", 4, ttl=0.3)
    new = PartitionLeases(engine, "tickets", "new", 4, ttl=5.0)
    await old.setup()
    assert await old.acquire(4) == frozenset(range(4))
    assert await new.acquire(4) == frozenset()
    await asyncio.sleep(0.4)
    assert await new.acquire(4) == frozenset(range(4))
    assert (await old.tick(frozenset(range(4)))).held == frozenset()


async def test_released_partitions_are_free_and_a_leaver_is_not_counted(engine: AsyncEngine) -> None:
    a = PartitionLeases(engine, "delivery", "a", 4, ttl=5.0)
    b = PartitionLeases(engine, "delivery", "b", 4, ttl=5.0)
    await a.setup()
    await a.tick(frozenset())
    assert (await b.tick(frozenset())).share == 2
    await a.acquire(4)
    await a.release(frozenset({2, 3}))
    assert await b.acquire(4) == frozenset({2, 3})
    await a.leave()
    tick = await b.tick(frozenset({2, 3}))
    assert (tick.share, tick.live_instances, tick.held) == (4, 1, frozenset({2, 3}))


async def test_an_unknown_broker_scheme_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedBrokerUrl, match="nats://"):
        await connect_broker("kafka://127.0.0.1:9092")
