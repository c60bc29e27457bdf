"""Expected versions: a conflict names stream, expected and actual, and stores nothing of that append,
also when the writer batched it into one transaction with other callers' successful appends."""

from __future__ import annotations

import asyncio

import pytest
from helpers.store_support import message, migrated_store, stream_of

from shared.store.port import ANY, NO_STREAM, WrongExpectedVersion
from shared.store.sql import SqlEventStore


async def all_events(store: SqlEventStore) -> list[tuple[int, str, int, str]]:
    return [(e.position, e.stream_id, e.stream_version, e.payload["text"]) for e in await store.read_all(0, 10_000)]


async def test_a_stale_expected_version_raises_with_stream_expected_and_actual(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        stream = stream_of("a")
        await store.append(stream, [message("a", 1), message("a", 2)], expected_version=NO_STREAM)
        before = await all_events(store)

        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append(stream, [message("a", 3, "stale 1"), message("a", 4, "stale 2")], expected_version=1)

        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (stream, 1, 2)
        assert await all_events(store) == before
        assert (await store.head()).position == 2


async def test_no_stream_conflicts_with_an_existing_stream_and_any_version_appends(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        stream = stream_of("b")
        await store.append(stream, [message("b", 1)], expected_version=NO_STREAM)
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append(stream, [message("b", 2)], expected_version=NO_STREAM)
        assert (caught.value.expected, caught.value.actual) == (NO_STREAM, 1)
        with pytest.raises(WrongExpectedVersion) as ahead:
            await store.append(stream_of("new"), [message("new", 1)], expected_version=3)
        assert (ahead.value.stream_id, ahead.value.expected, ahead.value.actual) == (stream_of("new"), 3, 0)

        result = await store.append(stream, [message("b", 2)], expected_version=ANY)
        assert (result.first_version, result.last_version, result.first_position) == (2, 2, 2)
        assert [v for _, _, v, _ in await all_events(store)] == [1, 2]


async def test_a_conflict_batched_with_successful_appends_stores_only_theirs(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        hot, other = stream_of("hot"), stream_of("other")
        await store.append(hot, [message("hot", 1, "first")], expected_version=NO_STREAM)

        # Submitted in one loop turn, so they reach the writer thread as one list: one batch, one transaction;
        # their order within it is not fixed (an append may first await its personal-data key).
        outcomes = await asyncio.gather(
            store.append(hot, [message("hot", 2, "ok 1"), message("hot", 3, "ok 2")], expected_version=1),
            store.append(hot, [message("hot", 2, "lost 1"), message("hot", 3, "lost 2")], expected_version=1),
            store.append(other, [message("other", 1, "other")], expected_version=NO_STREAM),
            store.append(hot, [message("hot", 4, "after")], expected_version=3),
            return_exceptions=True,
        )

        first, conflict, third, fourth = outcomes
        assert isinstance(conflict, WrongExpectedVersion)
        assert (conflict.stream_id, conflict.expected, conflict.actual) == (hot, 1, 3)
        assert not isinstance(first, BaseException) and (first.first_position, first.last_position) == (2, 3)
        assert not isinstance(third, BaseException) and not isinstance(fourth, BaseException)
        assert fourth.first_version == 4
        assert {third.first_position, fourth.first_position} == {4, 5}
        stored = await store.read_all(0, 100)
        # The hot stream's three appends (the conflicting one among them) went into one transaction; the
        # other stream's may come a batch later when it first had to create its personal-data key.
        hot_batch = {e.recorded_at for e in stored[1:] if e.stream_id == hot}
        assert len(hot_batch) == 1, "the conflicting append was not batched with the successful ones"
        rows = await all_events(store)
        assert rows[:3] == [(1, hot, 1, "first"), (2, hot, 2, "ok 1"), (3, hot, 3, "ok 2")]
        assert sorted(rows[3:]) == sorted(
            [(third.first_position, other, 1, "other"), (fourth.first_position, hot, 4, "after")]
        )
        assert [e.stream_version for e in await store.read_stream(hot)] == [1, 2, 3, 4]
