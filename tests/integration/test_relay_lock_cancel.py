"""The relay's lock watch ends when it is cancelled, whenever the cancel lands (PostgreSQL).

A relay's stop cancels its lock watch (`PgAdvisoryLock.wait_lost`, a loop that pings the lock's
session) and waits for it. On Python 3.11 an `asyncio.wait_for` whose inner call completes at the
moment of the cancel returns normally and drops the cancel; the watch then pinged on forever and the
stop never returned (a test run's gateway teardown hung, 2026-12-02). Here the watch pings without
pause and is cancelled at many different moments; every cancel must end it."""

from __future__ import annotations

import asyncio
import random

import pytest

from shared.broker import relay_lock
from shared.broker.relay_lock import leader_lock


async def test_the_lock_watch_ends_on_every_cancel(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_lock, "PING_INTERVAL", 0)  # ping back to back: cancels land inside pings
    lock = leader_lock(pg_url, "cancel-test")
    assert await lock.try_acquire()
    rng = random.Random(7)
    try:
        for attempt in range(300):
            watch = asyncio.create_task(lock.wait_lost())
            await asyncio.sleep(rng.uniform(0, 0.004))
            watch.cancel()
            done, _ = await asyncio.wait({watch}, timeout=5)
            assert done, f"cancel {attempt} did not end the lock watch"
            assert watch.cancelled()
    finally:
        await lock.release()
