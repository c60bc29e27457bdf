"""PostgreSQL: the read-model workers' hot statements sent on the psycopg connection under a
SQLAlchemy one, in its transaction.

Through SQLAlchemy's async layer one statement cost ~240 µs of CPU on the 2-core VM against ~100 µs
on the driver (a greenlet hop, the compiled-statement cache, result processing; decision 0028). A
read-model batch runs about ten statements and most batches are small at a steady load, so that
layer was most of the workers' CPU. The statements here are text written for psycopg (`%(name)s`
binds, converted once from SQLAlchemy's `:name`), prepared by psycopg after a few runs.

The same connection means the same transaction: SQLAlchemy's begin() commits or rolls back what
ran here too. A failure raises psycopg's error, which the worker runtime retries like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection

_DRIVER = "ledgerline.psycopg"  # conn.info lives as long as the DBAPI connection (SQLAlchemy docs)
_BIND = re.compile(r"(?<![:\w]):(\w+)")


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
    """Run `statement` (SQLAlchemy-style binds) on the driver, in `conn`'s transaction."""
    await (await driver(conn)).execute(psycopg_sql(statement), params)


async def fetch(
    conn: AsyncConnection, statement: str, params: Mapping[str, Any] | None = None
) -> Sequence[tuple[Any, ...]]:
    """The rows of `statement` (SQLAlchemy-style binds) as tuples, in `conn`'s transaction."""
    cursor = await (await driver(conn)).execute(psycopg_sql(statement), params)
    return await cursor.fetchall()
