"""The few dialect differences the projections need: upsert and two-argument max. (PostgreSQL's
statements of every batch run on the driver: services/common/pg_driver.py.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, func
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """INSERT with ON CONFLICT support (both dialects spell it the same way in SQLAlchemy)."""
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


def greatest(conn: AsyncConnection, a: Any, b: Any) -> ColumnElement[Any]:
    """GREATEST(a, b) on PostgreSQL; SQLite's scalar max(a, b) is the same for non-NULL values."""
    if conn.dialect.name == "postgresql":
        return func.greatest(a, b)
    return func.max(a, b)
