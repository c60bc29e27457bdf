"""PostgreSQL: a batch of rows written by one statement whose rows arrive as one JSON parameter,
expanded by json_populate_recordset, instead of an executemany.

psycopg runs an executemany as one execution per row in its pipeline; per row, its Python work and
SQLAlchemy's were most of the read-model workers' CPU. Rows as parallel arrays (unnest) cost less,
but psycopg dumps a text array in Python, quoting each element with a regular expression: with the
audit payloads that was half the projections worker's CPU at 64 events per batch. orjson writes the
whole batch in C and PostgreSQL parses it in C (decision 0028).

The JSON fields take the table's own column types (its row type), by column name: datetimes go as
ISO 8601 (orjson writes them so; they must be aware, as UtcDateTime asks), JSON columns as nested
JSON. The statements are built once per (table, columns, tail), cached, and run on the driver
(services/common/pg_driver.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common import pg_driver


def _rows(table: Table) -> str:
    return f"json_populate_recordset(NULL::{table.name}, CAST(:rows AS json))"


@lru_cache(maxsize=256)
def _insert_sql(table: Table, columns: tuple[str, ...], tail: str) -> str:
    names = ", ".join(columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_rows(table)} {tail}"


@lru_cache(maxsize=256)
def _update_sql(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = k.{c}" for c in columns if c not in keys)
    match = " AND ".join(f"t.{c} = k.{c}" for c in keys)
    return f"UPDATE {table.name} AS t SET {sets} FROM {_rows(table)} AS k WHERE {match}"


def _json(rows: Sequence[Mapping[str, Any]]) -> str:
    return orjson.dumps(rows).decode()


async def insert_rows(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], tail: str = "ON CONFLICT DO NOTHING"
) -> None:
    """INSERT `rows` (all with the keys of the first) in one statement, followed by `tail` (an ON
    CONFLICT clause; DO NOTHING also skips a key repeated within the rows)."""
    if rows:
        await pg_driver.execute(conn, _insert_sql(table, tuple(rows[0]), tail), {"rows": _json(rows)})


async def update_rows(
    conn: AsyncConnection, table: Table, keys: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE the rows of `table` matched on `keys` to the other values of `rows` (all with the keys
    of the first; at most one row per key: PostgreSQL updates a row once per statement)."""
    if rows:
        await pg_driver.execute(conn, _update_sql(table, tuple(rows[0]), keys), {"rows": _json(rows)})
