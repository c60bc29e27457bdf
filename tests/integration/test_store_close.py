"""Closing the store while appends are queued (a service's stop): what was queued before the close
is written and confirmed, none hangs, the chain stays intact; an append after the close is refused
with StoreUnavailable, and a store opened again appends after the last stored event."""

from __future__ import annotations

import asyncio

import pytest
from helpers.store_support import message, migrated_store, stream_of

from shared.store.port import AppendResult, StoreUnavailable
from shared.store.sql import SqlEventStore
from shared.store.verify import verify_chain

QUEUED = 600  # more than one batch (256 events) behind the one in hand


async def test_close_writes_what_was_queued_and_refuses_what_comes_after(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        # One conversation, so every append's key is cached and they all queue in the same loop turn.
        await store.append(stream_of("warm"), [message("warm", 1)])
        appends = [
            asyncio.create_task(store.append(stream_of(f"s{i}"), [message("warm", i + 2)])) for i in range(QUEUED)
        ]
        await asyncio.sleep(0)
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0)
        with pytest.raises(StoreUnavailable):
            await store.append(stream_of("late"), [message("warm", 99_999)])
        await asyncio.wait_for(closing, timeout=30)
        answers = await asyncio.wait_for(asyncio.gather(*appends, return_exceptions=True), timeout=5)

    refused = [a for a in answers if not isinstance(a, AppendResult)]
    assert not refused, refused[:3]
    store = await SqlEventStore.open(database_url)
    try:
        stored = await store.read_all(0, 10_000)
        assert len(stored) == QUEUED + 1
        assert {e.stream_id for e in stored} == {stream_of("warm")} | {stream_of(f"s{i}") for i in range(QUEUED)}
        assert sorted(a.first_position for a in answers if isinstance(a, AppendResult)) == list(range(2, QUEUED + 2))
        assert (await verify_chain(store.engine)).ok
        after = await store.append(stream_of("later"), [message("warm", 100_000)])
        assert after.first_position == QUEUED + 2
    finally:
        await store.close()
