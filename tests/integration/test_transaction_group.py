"""The read-model handlers' group commit (services/common/transaction_group.py), on SQLite and PostgreSQL:
items that arrive together are applied in one pass and commit in fewer transactions than there are
items, every caller gets its own result, one failing item fails only its own caller, and a caller
that gives up before its item started leaves nothing behind. The items here are units of work run
in turn (`in_turn`); the projector and the delivery fan-out pass event batches. On SQLite a transaction
runs start to end without a turn of the loop, and an `apply` that awaits anything but its connection
is refused."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.transaction_group import TransactionGroup
from shared.store.engine import blocking_sqlite_engine, create_engine

meta = MetaData()
rows = Table("tg_rows", meta, Column("id", Integer, primary_key=True), Column("who", String(20), nullable=False))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    e = create_engine(database_url, pool_size=4).execution_options(sqlite_begin="IMMEDIATE")
    async with e.begin() as conn:
        await conn.run_sync(meta.create_all)
    yield e
    await e.dispose()


Work = Callable[[AsyncConnection], Awaitable[int]]
passes: list[int] = []  # the size of each apply call


async def in_turn(conn: AsyncConnection, works: list[Work]) -> list[int]:
    passes.append(len(works))
    return [await work(conn) for work in works]


def count_commits(engine: AsyncEngine) -> list[int]:
    commits = [0]

    def on_commit(_conn: object) -> None:
        commits[0] += 1

    event.listen(engine.sync_engine, "commit", on_commit)
    if engine.dialect.name == "sqlite":  # where the group's transactions run there
        event.listen(blocking_sqlite_engine(sqlite_url(engine)), "commit", on_commit)
    return commits


def sqlite_url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


def writer(i: int, who: str, *, fail: bool = False) -> Work:
    async def work(conn: AsyncConnection) -> int:
        await conn.execute(insert(rows).values(id=i, who=who))
        # A unit that takes a while, as a real batch does: the others queue up. On SQLite it may not
        # await (its transaction runs in one step), so it takes its while on the thread.
        if conn.dialect.name == "sqlite":
            time.sleep(0.01)  # noqa: ASYNC251 (the point: a blocking unit)
        else:
            await asyncio.sleep(0.01)
        if fail:
            raise ValueError(f"unit {i} cannot be applied")
        return i * 10

    return work


async def stored(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as conn:
        return {r.id: r.who for r in await conn.execute(select(rows))}


async def test_concurrent_units_commit_together_and_each_caller_gets_its_result(engine: AsyncEngine) -> None:
    group = TransactionGroup(engine, in_turn)
    commits = count_commits(engine)
    passes.clear()
    results = await asyncio.gather(*(group.run(writer(i, f"u{i}")) for i in range(1, 41)))
    assert results == [i * 10 for i in range(1, 41)]
    assert await stored(engine) == {i: f"u{i}" for i in range(1, 41)}
    assert 1 <= commits[0] < 40 / 2, commits[0]  # grouped: far fewer commits than items
    assert sum(passes) == 40 and max(passes) > 1  # several items per apply call


async def test_a_failing_unit_fails_only_its_caller(engine: AsyncEngine) -> None:
    group = TransactionGroup(engine, in_turn)
    outcomes = await asyncio.gather(
        *(group.run(writer(i, f"u{i}", fail=i == 7)) for i in range(1, 13)), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and "unit 7 cannot be applied" in str(failed[0])
    assert [o for o in outcomes if not isinstance(o, BaseException)] == [i * 10 for i in range(1, 13) if i != 7]
    assert await stored(engine) == {i: f"u{i}" for i in range(1, 13) if i != 7}  # the bad unit's row rolled back


async def test_a_caller_that_gives_up_before_its_unit_starts_leaves_nothing(engine: AsyncEngine) -> None:
    group = TransactionGroup(engine, in_turn, concurrency=1)
    # On SQLite the first transaction is kept waiting for the write lock (the one point where it
    # gives the loop back); on PostgreSQL its unit's own pause keeps it open.
    holder = None
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(engine.url.database or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    first = asyncio.create_task(group.run(writer(1, "first")))
    await asyncio.sleep(0.005)  # the first unit's transaction has started (or is waiting for the lock)
    late = asyncio.create_task(group.run(writer(2, "late")))
    await asyncio.sleep(0)
    late.cancel()
    if holder is not None:
        holder.execute("ROLLBACK")
        holder.close()
    assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await late
    await group.run(writer(3, "after"))  # the group still works
    assert await stored(engine) == {1: "first", 3: "after"}


async def test_the_prologue_runs_first_in_every_transaction(engine: AsyncEngine) -> None:
    seen: list[int] = []

    async def prologue(conn: AsyncConnection) -> None:
        seen.append(int((await conn.execute(select(func.count()).select_from(rows))).scalar_one()))

    group = TransactionGroup(engine, in_turn, prologue=prologue, concurrency=1)
    await asyncio.gather(*(group.run(writer(i, "x")) for i in range(1, 6)))
    await group.run(writer(6, "y"))
    assert seen and seen[0] == 0 and seen[-1] == 5  # before the units of its own transaction


async def test_on_sqlite_an_apply_that_awaits_something_else_is_refused_and_leaves_nothing(
    engine: AsyncEngine,
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL transactions run on the event loop and may await anything")

    async def sleepy(conn: AsyncConnection) -> int:
        await conn.execute(insert(rows).values(id=1, who="sleepy"))
        await asyncio.sleep(0.01)
        return 1

    group = TransactionGroup(engine, in_turn)
    with pytest.raises(RuntimeError, match="awaited something other than its connection"):
        await group.run(sleepy)
    assert await stored(engine) == {}
