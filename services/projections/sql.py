"""The few dialect differences the projections need: upsert and two-argument max; and statements
built once. (PostgreSQL's statements of every batch run on the driver: services/common/pg_driver.py.)

Building a SQLAlchemy statement, and the cache key SQLAlchemy computes for each new one, cost more
than running it on SQLite: the statements of every batch are built once per table (decision 0028)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Table, func, text
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from services.common import json_rows


def insert(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """INSERT with ON CONFLICT support (both dialects spell it the same way in SQLAlchemy)."""
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


def greatest(conn: AsyncConnection, a: Any, b: Any) -> ColumnElement[Any]:
    """GREATEST(a, b) on PostgreSQL; SQLite's scalar max(a, b) is the same for non-NULL values."""
    if conn.dialect.name == "postgresql":
        return func.greatest(a, b)
    return func.max(a, b)


def insert_ignore(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """INSERT … ON CONFLICT DO NOTHING into `table`, built once per dialect and table."""
    return _insert_ignore(conn.dialect.name, table)


async def insert_new(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` (all with the same keys), leaving alone those whose key is already there: on
    PostgreSQL one statement on the driver with the rows as JSON (services/common/json_rows.py), on
    SQLite an executemany."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        await json_rows.insert_rows(conn, table, rows)
    else:
        await conn.execute(insert_ignore(conn, table), rows)


@lru_cache(maxsize=256)
def _insert_ignore(dialect: str, table: Table) -> PgInsert | SqliteInsert:
    return (pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)).on_conflict_do_nothing()


@lru_cache(maxsize=256)
def cached_text(statement: str) -> TextClause:
    """text(statement), parsed once per distinct statement."""
    return text(statement)
