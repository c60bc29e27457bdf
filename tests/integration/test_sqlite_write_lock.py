"""SQLite's write lock as the services take it (shared/store/engine.py, `begin_immediate`): a writer
that finds the lock held by another connection polls for it instead of failing or sleeping in
SQLite's busy handler, gets it once it is free, and leaves the connection's busy timeout as it was."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text

from shared.store.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine


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
