"""PostgreSQL: the read-model workers' hot statements sent on the psycopg connection under a
SQLAlchemy one, in its transaction.

Through SQLAlchemy's async layer one statement cost ~240 µs of CPU on the 2-core VM against ~100 µs
on the driver (a greenlet hop, the compiled-statement cache, result processing; decision 0028). A
read-model batch runs about ten statements and most batches are small at a steady load, so that
layer was most of the workers' CPU. The statements here are text written for psycopg (`%(name)s`
binds, converted once from SQLAlchemy's `:name`), prepared by psycopg after a few runs.

The same connection means the same transaction: SQLAlchemy's begin() commits or rolls back what
ran here too. A failure raises psycopg's error, which the worker runtime retries like any other.

Writes wait to go together: `execute` queues the statement on the connection, and the queue is sent
in one pipeline (one round trip, one wake-up of the loop) when something needs the database in
order: a `fetch` (sent in the same pipeline), any statement SQLAlchemy sends on that connection (an
engine event, on the engines that queue), or the commit (another; the COMMIT goes in the pipeline).
So a batch's writes keep their order with everything else it runs, and a rollback drops what was
queued. A steady batch of the projections worker is two round trips: the BEGIN, its lock and its
checkpoints; then its writes and the COMMIT. Per statement, a pipeline of ten cost ~40 µs of CPU
against ~100 one by one.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

_DRIVER = "ledgerline.psycopg"  # conn.info lives as long as the DBAPI connection (SQLAlchemy docs)
_PENDING = "ledgerline.pending"  # the statements `execute` queued on it
_BIND = re.compile(r"(?<![:\w]):(\w+)")
_WATCHED: weakref.WeakSet[Engine] = weakref.WeakSet()


def _watch(engine: Engine) -> None:
    """The engine events that send the queue (below), on the engines that queue only: with any
    listener SQLAlchemy dispatches events for every statement, which the gateway need not pay."""
    if engine in _WATCHED:
        return
    event.listen(engine, "before_cursor_execute", _before_sqlalchemy_statement)
    event.listen(engine, "commit", _before_commit)
    event.listen(engine, "rollback", _on_rollback)
    if not event.contains(engine.pool, "checkin", _on_checkin):  # option engines share a pool
        event.listen(engine.pool, "checkin", _on_checkin)
    _WATCHED.add(engine)


async def driver(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under `conn`, looked up once per pooled connection."""
    found: psycopg.AsyncConnection[Any] | None = conn.info.get(_DRIVER)
    if found is None:
        found = (await conn.get_raw_connection()).driver_connection
        if not isinstance(found, psycopg.AsyncConnection):
            raise TypeError(f"not a psycopg connection: {found!r}")
        conn.info[_DRIVER] = found
    return found


@lru_cache(maxsize=256)
def psycopg_sql(statement: str) -> str:
    """`statement` with SQLAlchemy-style `:name` binds as psycopg's `%(name)s` (a `::type` cast is
    left alone). Statements with a literal % are refused rather than misread."""
    if "%" in statement:
        raise ValueError(f"a literal % in a statement for the driver: {statement[:80]}")
    return _BIND.sub(r"%(\1)s", statement)


async def execute(conn: AsyncConnection, statement: str, params: Mapping[str, Any] | None = None) -> None:
    """Queue `statement` (SQLAlchemy-style binds) to run on the driver, in `conn`'s transaction, before
    whatever next needs that connection (see above)."""
    await driver(conn)  # found now, while a greenlet hop is allowed
    _watch(conn.sync_engine)  # before anything is queued on this engine's connection
    pending: list[tuple[str, Mapping[str, Any] | None]] = conn.info.setdefault(_PENDING, [])
    pending.append((psycopg_sql(statement), params))


async def fetch(
    conn: AsyncConnection, statement: str, params: Mapping[str, Any] | None = None
) -> Sequence[tuple[Any, ...]]:
    """The rows of `statement` (SQLAlchemy-style binds) as tuples, in `conn`'s transaction, after
    what was queued (in the same round trip)."""
    (rows,) = await fetch_many(conn, [(statement, params)])
    return rows


async def fetch_many(
    conn: AsyncConnection, statements: Sequence[tuple[str, Mapping[str, Any] | None]]
) -> list[Sequence[tuple[Any, ...]]]:
    """The rows of each of `statements`, after what was queued, all in one round trip."""
    found = await driver(conn)
    cursors = await _flush(found, conn.info, [(psycopg_sql(s), p) for s, p in statements])
    return [await cursor.fetchall() for cursor in cursors]


async def _flush(
    found: psycopg.AsyncConnection[Any],
    info: dict[Any, Any],
    reads: Sequence[tuple[str, Mapping[str, Any] | None]] = (),
) -> list[psycopg.AsyncCursor[Any]]:
    """Send what was queued, then `reads`, in one pipeline; the cursors of `reads` (results fetched)."""
    statements = info.pop(_PENDING, [])
    if not statements and len(reads) <= 1:
        return [await found.execute(*read) for read in reads]
    cursors: list[psycopg.AsyncCursor[Any]] = []
    async with found.pipeline():
        for statement, params in statements:
            await found.execute(statement, params)
        for statement, params in reads:
            cursors.append(await found.execute(statement, params))
    return cursors


def _before_sqlalchemy_statement(conn: Connection, *_: object) -> None:
    if conn.info.get(_PENDING):
        await_only(_flush(conn.info[_DRIVER], conn.info))


def _before_commit(conn: Connection) -> None:
    # The COMMIT goes in the same round trip; SQLAlchemy's commit that follows finds the transaction
    # ended and sends nothing (psycopg commits only in a transaction).
    if conn.info.get(_PENDING):
        await_only(_flush(conn.info[_DRIVER], conn.info, [("COMMIT", None)]))


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


def _on_checkin(_dbapi_connection: object, record: ConnectionPoolEntry | None) -> None:
    if record is not None:  # nothing queued outlives its transaction, whatever ended it
        record.info.pop(_PENDING, None)
