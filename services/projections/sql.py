"""The few dialect differences the projections need: upsert and two-argument max; and the
PostgreSQL-only statements' text, built once."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Table, func, text
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause


def insert(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """INSERT with ON CONFLICT support (both dialects spell it the same way in SQLAlchemy)."""
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


def greatest(conn: AsyncConnection, a: Any, b: Any) -> ColumnElement[Any]:
    """GREATEST(a, b) on PostgreSQL; SQLite's scalar max(a, b) is the same for non-NULL values."""
    if conn.dialect.name == "postgresql":
        return func.greatest(a, b)
    return func.max(a, b)


@lru_cache(maxsize=128)
def cached_text(template: str, **names: object) -> TextClause:
    """`template` with these table names, as a statement built once (text() parses its binds on
    every call; these run in every read-model batch)."""
    return text(template.format(**names))
