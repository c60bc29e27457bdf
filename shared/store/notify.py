"""Waking readers when events are appended.

PostgreSQL: the writer sends NOTIFY in its transaction (delivered on commit); one LISTEN connection
per process turns that into an in-process signal. SQLite has no notifications: readers poll the head
cheaply. In both cases an append made by this same process wakes its readers at once, and a slow
poll remains as the fallback should a notification be lost (a dropped LISTEN connection).
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg

from shared.logging import get_logger
from shared.store.append import NOTIFY_CHANNEL

log = get_logger(__name__)

LISTEN_RETRY_SECONDS = 1.0


class HeadSignal:
    """The highest head position this process knows of, and a way to wait for it to move."""

    def __init__(self) -> None:
        self.known_head = 0
        self._changed = asyncio.Event()

    def advance(self, position: int) -> None:
        if position > self.known_head:
            self.known_head = position
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """True once known_head > position; False when the timeout passes first."""
        if self.known_head > position:
            return True
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (Python 3.11)
                await changed.wait()
        return self.known_head > position


class PgListener:
    """Keeps a LISTEN connection open and feeds notifications into a HeadSignal."""

    def __init__(self, conninfo: str, signal: HeadSignal) -> None:
        self._conninfo = conninfo
        self._signal = signal
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-store-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    async for note in conn.notifies():
                        self._signal.advance(int(note.payload))
            except (psycopg.Error, OSError, ValueError) as e:
                log.warning("event_store_listen_lost", error=str(e))
                await asyncio.sleep(LISTEN_RETRY_SECONDS)
