"""wait_for_events wakes a reader when another process appends: LISTEN/NOTIFY on PostgreSQL (shown by
the reader never having to poll), the cheap head poll on SQLite."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from helpers.store_support import Workload, message, migrated_store, stream_of
from sqlalchemy.engine import make_url

from shared.store import sql
from shared.store.append import NOTIFY_CHANNEL
from shared.store.port import Head
from shared.store.sql import SqlEventStore

WAIT_SECONDS = 60.0  # a hang detector only: the test asserts what comes back, not how fast


def listening(pg_url: str) -> bool:
    """Whether some session of this database has issued LISTEN on the store's channel."""
    conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {NOTIFY_CHANNEL}",),
        ).fetchone()
    return row is not None and row[0] > 0


async def wait_until_listening(pg_url: str) -> None:
    while not await asyncio.to_thread(listening, pg_url):  # noqa: ASYNC110  (another session's state: nothing to await)
        await asyncio.sleep(0.02)


def count_polls(store: SqlEventStore) -> list[int]:
    """Counts the store's head reads (the fallback poll of wait_for_events)."""
    polls: list[int] = []
    original = store.head

    async def head() -> Head:
        polls.append(1)
        return await original()

    store.head = head  # type: ignore[method-assign]
    return polls


async def test_wait_for_events_wakes_on_notify_from_another_process(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the fallback poll pushed beyond the wait, only a notification can wake the reader early.
    monkeypatch.setattr(sql, "PG_FALLBACK_POLL_SECONDS", WAIT_SECONDS * 2)
    async with migrated_store(pg_url) as store:
        await store.append(stream_of("w"), [message("w", 1)])
        polls = count_polls(store)
        waiting = asyncio.create_task(store.wait_for_events(1, WAIT_SECONDS))
        await wait_until_listening(pg_url)
        workload = await Workload.start("append-one", pg_url, ["tickets"], "--stream", "w", "--writers", "1")
        workload.go()
        [output] = await workload.results()

        new_head = output["answers"][0]["last_position"]
        assert new_head == 2
        assert await waiting == new_head
        assert polls == [], "the reader was woken by its poll, not by NOTIFY"


async def test_wait_for_events_sees_another_processs_append(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        await store.append(stream_of("w"), [message("w", 1)])
        head = (await store.head()).position
        waiting = asyncio.create_task(store.wait_for_events(head, WAIT_SECONDS))
        workload = await Workload.start("append-one", database_url, ["tickets"], "--stream", "w", "--writers", "1")
        workload.go()
        [output] = await workload.results()
        assert await waiting == output["answers"][0]["last_position"] == head + 1


async def test_wait_for_events_returns_the_head_when_nothing_comes(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        await store.append(stream_of("w"), [message("w", 1), message("w", 2)])
        assert await store.wait_for_events(2, 0.1) == 2
        assert await store.wait_for_events(0, 0.1) == 2
