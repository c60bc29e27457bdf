"""Leader election for the relay: exactly one relay publishes at a time.

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on a dedicated connection. The
  lock lives exactly as long as that session: a killed relay's connection is closed by its kernel,
  the server ends the session and the lock is free at once. The holder pings its session every
  `PING_INTERVAL`; a failed ping means the lock may already be someone else's, and the relay stops
  publishing. The session also sets `idle_session_timeout`, so that a relay whose host vanished
  without closing its TCP connection (no FIN, no RST) loses the lock after that timeout instead of
  after the server's TCP keepalive (two hours by default).
- SQLite: an exclusive `fcntl.flock` on a file beside the database file. The kernel drops it when
  the holder's process dies, however it dies; it cannot be lost while the process lives. SQLite
  serves one machine, so a file lock is enough.

The ping's timeout is `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11, a `wait_for` whose
inner call completes at the moment the task is cancelled returns the result and drops the cancel,
and this loop then pinged on forever, so a relay's stop waited forever for its lock watch (seen in
a test run, 2026-12-02). The other loops that sleep on an event with a timeout use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO, Protocol

import psycopg
from sqlalchemy.engine import make_url

from shared.logging import get_logger
from shared.store.engine import with_liveness

log = get_logger(__name__)

# A lost session is noticed within one interval plus PING_TIMEOUT (publishing stops then).
PING_INTERVAL = 0.5
PING_TIMEOUT = 2.0
# Far above PING_INTERVAL: only a holder that stopped talking altogether reaches it.
IDLE_SESSION_TIMEOUT_MS = 10_000


class LeaderLock(Protocol):
    """One candidate's handle on the relay lock."""

    async def try_acquire(self) -> bool:
        """Take the lock when free; True when this candidate holds it (now or already)."""
        ...

    async def wait_lost(self) -> None:
        """Return when the lock held here is lost (or may be lost); never returns on a safe lock."""
        ...

    async def release(self) -> None:
        """Give the lock up (idempotent); a standby may take it at its next try."""
        ...


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for the relay `name` (stable across processes and versions)."""
    digest = hashlib.sha256(f"ledgerline.relay:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def leader_lock(database_url: str, name: str) -> LeaderLock:
    """The lock that fits the database of `database_url` (a SQLAlchemy URL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the relay lock needs a SQLite database file, not an in-memory database")
        return FileLock(Path(f"{url.database}.{name}.lock"))
    conninfo = with_liveness(url.set(drivername="postgresql").render_as_string(hide_password=False))
    return PgAdvisoryLock(conninfo, lock_key(name))


class PgAdvisoryLock:
    def __init__(self, conninfo: str, key: int) -> None:
        self._conninfo = conninfo
        self._key = key
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def try_acquire(self) -> bool:
        if self._conn is not None and not self._conn.closed:
            return True
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5, application_name="ledgerline-relay"
        )
        try:
            await conn.execute(f"SET idle_session_timeout = {IDLE_SESSION_TIMEOUT_MS}")
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))).fetchone()
        except BaseException:
            await conn.close()
            raise
        if row is None or row[0] is not True:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def wait_lost(self) -> None:
        conn = self._conn
        if conn is None:
            return
        while True:
            await asyncio.sleep(PING_INTERVAL)
            try:
                async with asyncio.timeout(PING_TIMEOUT):  # not wait_for: see the module docstring
                    await conn.execute("SELECT 1")
            except (psycopg.Error, OSError, TimeoutError) as e:
                log.error("relay_lock_session_lost", error=repr(e))
                await self._drop()
                return

    async def release(self) -> None:
        try:
            if self._conn is not None and not self._conn.closed:
                with contextlib.suppress(psycopg.Error, OSError):
                    await self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        finally:  # also when cancelled while unlocking: the session (and its lock) must not outlive us
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    async def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        lock_file = self.path.open("a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return False
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self._file = lock_file
        return True

    async def wait_lost(self) -> None:
        await asyncio.Event().wait()  # held until released or the process ends

    async def release(self) -> None:
        lock_file, self._file = self._file, None
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()
