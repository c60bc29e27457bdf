"""Idempotent append: the same event ids appended again are stored once and answer as the first time,
sequentially, concurrently in one process (one batch), and from two processes at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from helpers.store_support import Workload, message, migrated_store, stream_of

from shared.events.ids import deterministic_id
from shared.store.port import ANY, NO_STREAM, AppendResult, EventIdConflict
from shared.store.sql import SqlEventStore

IDEMPOTENT_EVENTS = 200


async def count(store: SqlEventStore) -> int:
    return (await store.head()).position


async def test_a_repeated_append_is_stored_once_and_answers_the_same(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        events = [message("r", 1), message("r", 2)]
        first = await store.append(stream_of("r"), events, expected_version=NO_STREAM)
        await store.append(stream_of("other"), [message("other", 1)])

        # The stream moved on meanwhile: a retry still answers as the first time, whatever it expected.
        again = await store.append(stream_of("r"), events, expected_version=NO_STREAM)
        any_version = await store.append(stream_of("r"), events, expected_version=ANY)

        assert again == any_version == first
        assert (first.first_version, first.last_version, first.first_position, first.last_position) == (1, 2, 1, 2)
        assert await count(store) == 3


async def test_concurrent_repeats_in_one_batch_are_stored_once(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        events = [message("c", 1), message("c", 2)]
        answers = await asyncio.gather(*(store.append(stream_of("c"), events, NO_STREAM) for _ in range(10)))
        assert len(set(answers)) == 1
        assert (answers[0].first_position, answers[0].last_position) == (1, 2)
        assert await count(store) == 2


async def test_two_processes_appending_the_same_ids_at_once_store_each_once(database_url: str) -> None:
    seed = uuid.uuid4().hex
    async with migrated_store(database_url) as store:
        workload = await Workload.start(
            "idempotent", database_url, ["gateway", "tickets"],
            "--writers", "4", "--appends", str(IDEMPOTENT_EVENTS), "--seed", seed,
        )  # fmt: skip
        workload.go()
        outputs = await workload.results()

        assert await count(store) == IDEMPOTENT_EVENTS
        first_answer: dict[str, dict[str, object]] = {}
        for output in outputs:
            for a in output["answers"]:
                assert first_answer.setdefault(a["tag"], a) == a, f"event {a['tag']} answered differently"
        assert len(first_answer) == IDEMPOTENT_EVENTS
        assert sorted(a["first_position"] for a in first_answer.values()) == list(range(1, IDEMPOTENT_EVENTS + 1))

        # And once more from this process, sequentially: the same answers.
        for i in (0, IDEMPOTENT_EVENTS - 1):
            event_id = deterministic_id("store-test", seed, str(i))
            again = await store.append(stream_of(f"idem-{i}"), [message(f"idem-{i}", 1, "retry", event_id)], NO_STREAM)
            expected = first_answer[str(i)]
            assert again == AppendResult(
                stream_id=str(expected["stream_id"]),
                first_version=1,
                last_version=1,
                first_position=int(str(expected["first_position"])),
                last_position=int(str(expected["last_position"])),
                event_ids=(event_id,),
            )
        assert await count(store) == IDEMPOTENT_EVENTS


async def test_reusing_some_of_the_ids_raises_event_id_conflict_and_stores_nothing(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        stored = message("p", 1)
        await store.append(stream_of("p"), [stored], NO_STREAM)

        fresh = message("p", 2)
        with pytest.raises(EventIdConflict) as partly:
            await store.append(stream_of("p"), [stored, fresh], ANY)
        assert partly.value.stream_id == stream_of("p")
        assert partly.value.event_ids == (stored.event_id,)

        with pytest.raises(EventIdConflict):  # the same id in another stream is not a repeat either
            await store.append(stream_of("elsewhere"), [stored], ANY)
        with pytest.raises(EventIdConflict):  # nor twice within one append
            await store.append(stream_of("p"), [fresh, fresh], ANY)

        assert await count(store) == 1
        assert [e.event_id for e in await store.read_all()] == [stored.event_id]
