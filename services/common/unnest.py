"""PostgreSQL: a batch of rows written by one statement over parallel arrays (unnest), not an executemany.

psycopg runs an executemany as one execution per row in its pipeline; per row, its Python work and
SQLAlchemy's were most of the read-model workers' CPU (decision 0028). Here the rows arrive as one
array per column, so the cost per row is building the lists: a few microseconds.

The arrays' element types are the table's columns' own PostgreSQL types; JSON goes as text and is
cast (psycopg would send a list of dicts as one JSON value), so JSON values are serialised here with
orjson, as the engine's json_serializer does for a plain insert. Datetimes must be aware, as
UtcDateTime asks. The statements are built once per (table, columns, tail) and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator, TypeEngine

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _pg_type(table: Table, column: str) -> TypeEngine[Any]:
    type_ = table.c[column].type.dialect_impl(_PG)
    if isinstance(type_, TypeDecorator):
        type_ = type_.load_dialect_impl(_PG)
    return type_


@lru_cache(maxsize=256)
def _layout(table: Table, columns: tuple[str, ...]) -> tuple[str, tuple[bool, ...]]:
    """The unnest(...) of `columns` (binds :a0, :a1, …) and which of them are JSON."""
    casts: list[str] = []
    json: list[bool] = []
    for i, name in enumerate(columns):
        type_ = _pg_type(table, name)
        sql_type = type_.compile(dialect=_PG)
        is_json = isinstance(type_, JSON)
        casts.append(f"CAST(CAST(:a{i} AS TEXT[]) AS {sql_type}[])" if is_json else f"CAST(:a{i} AS {sql_type}[])")
        json.append(is_json)
    return f"unnest({', '.join(casts)})", tuple(json)


@lru_cache(maxsize=256)
def _insert_sql(table: Table, columns: tuple[str, ...], tail: str) -> TextClause:
    source, _ = _layout(table, columns)
    return text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {source} AS k {tail}")


def arrays(table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """One list per column (binds a0, a1, …) of `rows`, JSON columns as JSON text."""
    _, json = _layout(table, columns)
    out: dict[str, list[Any]] = {}
    for i, name in enumerate(columns):
        values = [r[name] for r in rows]
        if json[i]:
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        out[f"a{i}"] = values
    return out


async def insert_rows(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], tail: str = "ON CONFLICT DO NOTHING"
) -> None:
    """INSERT `rows` (all with the keys of the first) in one statement, followed by `tail` (an ON
    CONFLICT clause; DO NOTHING also skips a key repeated within the rows)."""
    if not rows:
        return
    columns = tuple(rows[0])
    await conn.execute(_insert_sql(table, columns, tail), arrays(table, columns, rows))


@lru_cache(maxsize=256)
def _update_sql(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> TextClause:
    source, _ = _layout(table, columns)
    sets = ", ".join(f"{c} = k.{c}" for c in columns if c not in keys)
    match = " AND ".join(f"t.{c} = k.{c}" for c in keys)
    return text(f"UPDATE {table.name} AS t SET {sets} FROM {source} AS k({', '.join(columns)}) WHERE {match}")


async def update_rows(
    conn: AsyncConnection, table: Table, keys: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE the rows of `table` matched on `keys` to the other values of `rows` (all with the keys
    of the first; at most one row per key: PostgreSQL updates a row once per statement)."""
    if not rows:
        return
    columns = tuple(rows[0])
    await conn.execute(_update_sql(table, columns, keys), arrays(table, columns, rows))
