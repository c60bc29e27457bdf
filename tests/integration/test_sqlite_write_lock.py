"""SQLite's write lock as the services take it (shared/store/engine.py, `begin_immediate`): a writer
that finds the lock held by another connection polls for it instead of failing or sleeping in
SQLite's busy handler, gets it once it is free, and leaves the connection's busy timeout as it was.
A new connection refused with "database is locked" while it is set up tries again too."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.store.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    blocking_sqlite_engine,
    configure_sqlite_connection,
    create_engine,
    write_transaction,
)


async def test_a_writer_waits_for_a_lock_held_elsewhere_and_then_writes(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (who TEXT)")
    engine = create_engine(f"sqlite+aiosqlite:///{path}").execution_options(sqlite_begin="IMMEDIATE")
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        holder.execute("INSERT INTO t VALUES ('holder')")

        async def write() -> int:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES ('engine')"))
                return int((await conn.execute(text("PRAGMA busy_timeout"))).scalar_one())

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writer.done()  # still waiting for the lock, not failed with "database is locked"
        holder.execute("COMMIT")
        busy_timeout = await asyncio.wait_for(writer, 10)
        assert busy_timeout == SQLITE_BUSY_TIMEOUT_MS  # restored once BEGIN succeeded
        assert [r[0] for r in holder.execute("SELECT who FROM t ORDER BY rowid")] == ["holder", "engine"]
    finally:
        holder.close()
        await engine.dispose()


def exclusive_holder(path: Path) -> sqlite3.Connection:
    """A connection in exclusive locking mode holding the database: every other connection's set-up is
    refused with "database is locked" until `release`."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (who TEXT)")
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES ('holder')")  # takes the lock and keeps it
    return holder


def release(holder: sqlite3.Connection) -> None:
    holder.execute("PRAGMA locking_mode=NORMAL")
    holder.execute("SELECT count(*) FROM t").fetchone()  # the next access drops the exclusive lock


def test_a_connection_refused_while_it_is_set_up_tries_again(tmp_path: Path) -> None:
    path = tmp_path / "setup.db"
    holder = exclusive_holder(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("SELECT count(*) FROM t")  # what a set-up without tries again meets
        threading.Timer(0.3, release, (holder,)).start()
        started = time.monotonic()
        configure_sqlite_connection(conn.execute, 0, time.sleep)  # no busy handler: only the tries
        assert time.monotonic() - started >= 0.25  # it waited for the holder, then went on
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert [r[0] for r in conn.execute("SELECT who FROM t")] == ["holder"]
    finally:
        conn.close()
        holder.close()


async def test_a_worker_write_waits_for_a_database_held_at_connect_time(tmp_path: Path) -> None:
    path = tmp_path / "worker.db"
    holder = exclusive_holder(path)
    engine = blocking_sqlite_engine(f"sqlite:///{path}")
    try:

        def work(conn: Connection) -> int:
            conn.execute(text("INSERT INTO t VALUES ('worker')"))
            return 1

        writer = asyncio.create_task(write_transaction(engine, work))
        await asyncio.sleep(0.3)
        assert not writer.done()  # its connection's set-up is refused: it waits, the loop runs on
        release(holder)
        assert await asyncio.wait_for(writer, 10) == 1
        assert [r[0] for r in holder.execute("SELECT who FROM t ORDER BY rowid")] == ["holder", "worker"]
    finally:
        holder.close()
        engine.dispose()
