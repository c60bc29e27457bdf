"""The read-model workers' statements on the psycopg driver (services/common/pg_driver.py), on the
real PostgreSQL: queued writes keep their order with SQLAlchemy's statements and the driver's
reads, are committed with the transaction, and are dropped, not leaked into the next transaction,
when it rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import pg_driver
from shared.store.engine import create_engine


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)  # one connection: the next transaction reuses it
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n integer PRIMARY KEY, label text NOT NULL)"))
    try:
        yield engine
    finally:
        await engine.dispose()


async def rows(engine: AsyncEngine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        return [(r.n, r.label) for r in await conn.execute(text("SELECT n, label FROM t ORDER BY n"))]


async def test_queued_writes_keep_their_order_with_everything_else_and_commit(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await pg_driver.execute(conn, "INSERT INTO t VALUES (:n, :label)", {"n": 1, "label": "driver"})
        await pg_driver.execute(conn, "UPDATE t SET label = label || '+queued' WHERE n = :n", {"n": 1})
        # A SQLAlchemy statement sees what was queued before it...
        seen = (await conn.execute(text("SELECT label FROM t WHERE n = 1"))).scalar_one()
        assert seen == "driver+queued"
        await conn.execute(text("INSERT INTO t VALUES (2, 'sqlalchemy')"))
        await pg_driver.execute(conn, "UPDATE t SET label = label || '+after' WHERE n = 2")
        # ...and so does a read on the driver.
        assert await pg_driver.fetch(conn, "SELECT n, label FROM t WHERE n = :n", {"n": 2}) == [(2, "sqlalchemy+after")]
        await pg_driver.execute(conn, "INSERT INTO t VALUES (4, 'queued before two reads')")
        counted, labelled = await pg_driver.fetch_many(
            conn, [("SELECT count(*) FROM t", None), ("SELECT label FROM t WHERE n = :n", {"n": 4})]
        )
        assert (counted, labelled) == ([(3,)], [("queued before two reads",)])
        await pg_driver.execute(conn, "INSERT INTO t VALUES (3, 'last, sent with the commit')")
    assert await rows(engine) == [
        (1, "driver+queued"),
        (2, "sqlalchemy+after"),
        (3, "last, sent with the commit"),
        (4, "queued before two reads"),
    ]


async def test_a_rolled_back_transaction_leaves_nothing_queued_for_the_next(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await pg_driver.execute(conn, "INSERT INTO t VALUES (1, 'rolled back')")
            raise RuntimeError("the batch failed")
    async with engine.begin() as conn:  # the same pooled connection
        await pg_driver.execute(conn, "INSERT INTO t VALUES (2, 'kept')")
    assert await rows(engine) == [(2, "kept")]


async def test_a_failing_queued_write_fails_the_commit_and_keeps_nothing(engine: AsyncEngine) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        async with engine.begin() as conn:
            await pg_driver.execute(conn, "INSERT INTO t VALUES (1, 'first')")
            await pg_driver.execute(conn, "INSERT INTO t VALUES (1, 'the same key')")
    assert await rows(engine) == []
    async with engine.begin() as conn:  # the connection is usable again
        await pg_driver.execute(conn, "INSERT INTO t VALUES (1, 'again')")
    assert await rows(engine) == [(1, "again")]


def test_binds_are_converted_once_and_a_literal_percent_is_refused() -> None:
    assert pg_driver.psycopg_sql("SELECT CAST(:a AS int[]), NULL::t WHERE x = :b") == (
        "SELECT CAST(%(a)s AS int[]), NULL::t WHERE x = %(b)s"
    )
    with pytest.raises(ValueError, match="literal %"):
        pg_driver.psycopg_sql("SELECT 1 WHERE name LIKE 'a%'")
