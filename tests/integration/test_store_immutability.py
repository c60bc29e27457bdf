"""Immutability: the database itself rejects UPDATE, DELETE (and on PostgreSQL TRUNCATE) of events,
even for the superuser the tests connect as; only disabling the triggers gets around it."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from helpers.store_support import message, migrated_store, stream_of
from sqlalchemy.engine import make_url

from shared.store.sql import SqlEventStore

STATEMENTS = {
    "UPDATE": "UPDATE events SET actor = 'mallory' WHERE position = 1",
    "DELETE": "DELETE FROM events WHERE position = 1",
    "DELETE all": "DELETE FROM events",
    "TRUNCATE": "TRUNCATE events",
}


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def stored_events(store: SqlEventStore) -> list[tuple[int, str]]:
    return [(e.position, e.actor) for e in await store.read_all()]


@pytest.mark.parametrize("statement", ["UPDATE", "DELETE", "DELETE all", "TRUNCATE"])
async def test_postgresql_rejects_changing_or_removing_events(pg_url: str, statement: str) -> None:
    async with migrated_store(pg_url) as store:
        await store.append(stream_of("i"), [message("i", 1), message("i", 2)])
        before = await stored_events(store)
        with psycopg.connect(libpq(pg_url)) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(STATEMENTS[statement])
        assert "append-only" in str(caught.value)
        assert await stored_events(store) == before


@pytest.mark.parametrize("statement", ["UPDATE", "DELETE", "DELETE all"])
async def test_sqlite_rejects_changing_or_removing_events(sqlite_url: str, statement: str) -> None:
    async with migrated_store(sqlite_url) as store:
        await store.append(stream_of("i"), [message("i", 1), message("i", 2)])
        before = await stored_events(store)
        conn = sqlite3.connect(str(make_url(sqlite_url).database))
        try:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(STATEMENTS[statement])
            conn.rollback()
        finally:
            conn.close()
        assert await stored_events(store) == before
