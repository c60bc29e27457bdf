"""Async SQLAlchemy engines for PostgreSQL (psycopg 3) and SQLite (aiosqlite), set up the same way.

- JSON goes through orjson both ways. (The event store's own append and reads run on the drivers
  directly: shared/store/batch_io.py and reads.py, decision 0004.)
- SQLite runs in WAL mode with synchronous=FULL (a 2xx means the event is on disk), a busy timeout for
  the second process, and explicit BEGIN handling: pysqlite's own implicit transactions would let a
  read-then-write transaction race another process. Writers ask for `BEGIN IMMEDIATE` with the
  execution option `sqlite_begin="IMMEDIATE"`. That BEGIN polls for the write lock every few
  milliseconds (`begin_immediate`) instead of leaving the wait to SQLite's busy handler.
  A new connection's set-up polls the same way while it is refused (`configure_sqlite_connection`).
- The read-model workers' SQLite write transactions run on a blocking engine of their own
  (`blocking_sqlite_engine`, `write_transaction`), start to end without a turn of the loop, so that
  the one write lock is held only while SQLite works (decision 0026).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
import sqlalchemy
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.util import await_only

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer in another process holds the lock for one batch: milliseconds
BUSY_POLL_FIRST, BUSY_POLL_MAX = 0.0005, 0.004  # seconds between tries of BEGIN IMMEDIATE

# libpq settings on every PostgreSQL connection the services open (the engines, the store's writer,
# its LISTEN connection, the relay's lock). Without them a connection whose server went silent (a
# network partition, a host gone without a reset) hangs for as long as the kernel keeps trying:
# ~15 minutes with data unacknowledged, hours when idle. With them a dead peer is noticed within
# ~30 s with data in flight (tcp_user_timeout) and ~60 s when idle (keepalives), and the caller gets
# StoreUnavailable (a 503) instead of a request that never ends. A setting in the database URL
# (`?keepalives_idle=10`) wins over these (docs/operations.md).
LIBPQ_LIVENESS: dict[str, int] = {
    "connect_timeout": 10,  # seconds to establish a connection
    "keepalives": 1,
    "keepalives_idle": 30,  # seconds idle before the first probe
    "keepalives_interval": 10,  # seconds between probes
    "keepalives_count": 3,  # unanswered probes before the connection is dropped
    "tcp_user_timeout": 30_000,  # milliseconds sent data may stay unacknowledged
}


def with_liveness(conninfo: str) -> str:
    """`conninfo` (a libpq URL or key=value string) plus the LIBPQ_LIVENESS settings it lacks."""
    given = conninfo_to_dict(conninfo)
    return make_conninfo(conninfo, **{k: v for k, v in LIBPQ_LIVENESS.items() if k not in given})


SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON")
"""Every connection the services open on SQLite (with a busy timeout of its own choosing)."""


def configure_sqlite_connection(
    execute: Callable[[str], object], busy_timeout_ms: int, sleep: Callable[[float], object] | None
) -> None:
    """The busy timeout and SQLITE_PRAGMAS on a new connection, tried again every 0.5-4 ms (for up to
    the busy timeout, with `sleep`) while SQLite answers "database is locked".

    A new connection can be refused that way where no busy handler waits: while the last connection
    of another process closes the database (it locks the shared memory to checkpoint and remove the
    WAL) or the first one after it sets the shared memory up (sqlite.org/wal.html, "Sometimes Queries
    Return SQLITE_BUSY In WAL Mode"). That moment lasts milliseconds; a CI run once failed a read on
    it. With `sleep` None the first refusal is raised as WriteLockBusy, for a caller that waits itself
    (`write_transaction`)."""
    delays = busy_poll_delays()
    while True:
        try:
            execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            for pragma in SQLITE_PRAGMAS:
                execute(f"PRAGMA {pragma}")
            return
        except sqlite3.OperationalError as err:
            if not _is_busy(err):
                raise
            if sleep is None:
                raise WriteLockBusy from err
            delay = next(delays, None)
            if delay is None:
                raise
        sleep(delay)


def busy_poll_delays() -> Iterator[float]:
    """The pauses between tries of BEGIN IMMEDIATE (0.5 ms doubling up to 4 ms), until the busy timeout
    has passed since the first pause was asked for; then the iterator ends and the caller gives up."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = BUSY_POLL_FIRST
    while time.monotonic() < deadline:
        yield delay
        delay = min(delay * 2, BUSY_POLL_MAX)


def begin_immediate(execute: Callable[[str], object], sleep: Callable[[float], object]) -> None:
    """BEGIN IMMEDIATE, tried again every 0.5–4 ms while another connection holds the write lock, for
    up to the busy timeout.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, … up to 100 ms between tries, however
    soon the lock is free; with a dozen writers (the gateway's appender, each worker's transactions)
    most of a transaction's latency was that sleep, the CPU mostly idle (docs/decisions/0017). A
    failed BEGIN IMMEDIATE costs microseconds and has done nothing, so polling is safe.
    """
    execute("PRAGMA busy_timeout=0")
    try:
        delays = busy_poll_delays()
        while True:
            try:
                execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                delay = next(delays, None)
                if not _is_busy(err) or delay is None:
                    raise
            sleep(delay)
    finally:
        execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_BUSY if code is not None else "database is locked" in str(err)


def _dumps_str(value: Any) -> str:
    return orjson.dumps(value).decode()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 8, max_overflow: int | None = None, echo: bool = False) -> AsyncEngine:
    """An AsyncEngine for `url` (postgresql+psycopg://… or sqlite+aiosqlite://…). Connections above
    `pool_size` (at most `max_overflow`, default as many again) are closed when returned."""
    if is_sqlite(url):
        engine = create_async_engine(
            url, json_serializer=_dumps_str, json_deserializer=orjson.loads, echo=echo, pool_size=pool_size
        )
        _configure_sqlite(engine)
        return engine
    query = make_url(url).query
    return create_async_engine(
        url,
        connect_args={k: v for k, v in LIBPQ_LIVENESS.items() if k not in query},
        json_serializer=orjson.dumps,
        json_deserializer=orjson.loads,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=True,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from pysqlite; `_on_begin` issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            configure_sqlite_connection(
                cursor.execute, SQLITE_BUSY_TIMEOUT_MS, lambda seconds: await_only(asyncio.sleep(seconds))
            )
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode != "IMMEDIATE":
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:  # on the driver: a failed try must not go through SQLAlchemy's error handling
            begin_immediate(cursor.execute, lambda seconds: await_only(asyncio.sleep(seconds)))
        finally:
            cursor.close()


# --- SQLite write transactions run start to end on the loop's thread --------------------------------


class WriteLockBusy(Exception):
    """Another connection holds SQLite's write lock (one try of BEGIN IMMEDIATE did not get it)."""


_BLOCKING_ENGINES: OrderedDict[tuple[str, int, int], Engine] = OrderedDict()
BLOCKING_ENGINES_MAX = 8  # database files per process (tests open many; a service one)


def blocking_sqlite_engine(url: str) -> Engine:
    """A blocking engine (pysqlite, one connection) on the SQLite file of `url`, shared per process and
    file, for `write_transaction`. Keyed by the file's inode too: a file replaced under the same
    path (tests do) gets a fresh connection rather than one still open on the old file."""
    parsed = make_url(url)
    info = os.stat(parsed.database or "")
    key = (parsed.database or "", info.st_dev, info.st_ino)
    engine = _BLOCKING_ENGINES.get(key)
    if engine is not None:
        _BLOCKING_ENGINES.move_to_end(key)
        return engine
    engine = sqlalchemy.create_engine(
        parsed.set(drivername="sqlite"),
        json_serializer=_dumps_str,
        json_deserializer=orjson.loads,
        poolclass=StaticPool,  # transactions never overlap: each runs to its end without a turn of the loop
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:  # busy: `write_transaction` polls, giving the loop back
            configure_sqlite_connection(cursor.execute, 0, None)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if _is_busy(err):
                raise WriteLockBusy from err
            raise
        finally:
            cursor.close()

    _BLOCKING_ENGINES[key] = engine
    while len(_BLOCKING_ENGINES) > BLOCKING_ENGINES_MAX:
        _, old = _BLOCKING_ENGINES.popitem(last=False)
        old.dispose()  # closes its connection; a holder that still uses it opens a new one
    return engine


async def write_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work` in one SQLite write transaction, run start to end on this (the loop's) thread: the lock is
    held only while SQLite works. Waiting for the lock gives the loop back (BEGIN IMMEDIATE tried every
    0.5-4 ms, as `begin_immediate` does, for up to the busy timeout).

    Why: through aiosqlite every statement of a transaction is a hop to its thread and back through
    the event loop, and a busy loop made each hop wait. A projections transaction of ~10 statements
    held the write lock ~9 ms on average, a third of the time at 2,500 msg/s, and every append waited
    for it (decision 0026)."""
    delays = busy_poll_delays()
    while True:
        try:
            with engine.begin() as conn:
                return work(conn)
        except WriteLockBusy as busy:
            delay = next(delays, None)
            if delay is None:
                raise busy.__cause__ or busy from None
        await asyncio.sleep(delay)
