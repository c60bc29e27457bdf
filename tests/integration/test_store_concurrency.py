"""Concurrent appends from two processes (8 writers each, 500 appends per writer) while a reader tails.

Afterwards: versions contiguous per stream, positions 1..N contiguous and unique, every append's
answer points at its own events, the tailing reader saw every event once and in position order, and
the hash chain verifies.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from helpers.store_support import Workload, migrated_store

from shared.events.conversation import MessageSent
from shared.events.envelope import RecordedEvent
from shared.store.engine import create_engine
from shared.store.sql import SqlEventStore
from shared.store.verify import verify_chain

PROCESSES = ["gateway", "tickets"]
WRITERS_PER_PROCESS = 8  # 16 writers in all
APPENDS_PER_WRITER = 500
TOTAL = len(PROCESSES) * WRITERS_PER_PROCESS * APPENDS_PER_WRITER
TAIL_PAGE = 500  # smaller than what arrives meanwhile, so the reader pages while writers write
TAIL_WAIT_SECONDS = 0.5


async def tail(store: SqlEventStore, stop: asyncio.Event) -> list[int]:
    """Follow read_all + wait_for_events until `stop` is set and nothing more is there."""
    seen: list[int] = []
    after = 0
    while True:
        stopping = stop.is_set()  # read once more after the writers finished
        page = await store.read_all(after, TAIL_PAGE)
        seen += [e.position for e in page]
        if page:
            after = page[-1].position
        elif stopping:
            return seen
        else:
            await store.wait_for_events(after, TAIL_WAIT_SECONDS)


async def read_everything(store: SqlEventStore) -> list[RecordedEvent]:
    recorded: list[RecordedEvent] = []
    while page := await store.read_all(recorded[-1].position if recorded else 0, 5000):
        recorded += page
    return recorded


async def run_while_tailing(database_url: str, mode: str, *options: str) -> tuple[list[dict[str, Any]], list[int]]:
    async with migrated_store(database_url) as reader:
        workload = await Workload.start(
            mode, database_url, PROCESSES, "--writers", str(WRITERS_PER_PROCESS),
            "--appends", str(APPENDS_PER_WRITER), *options,
        )  # fmt: skip
        stop = asyncio.Event()
        tailing = asyncio.create_task(tail(reader, stop))
        workload.go()
        try:
            outputs = await workload.results()
        finally:
            stop.set()
            seen = await tailing
    return outputs, seen


async def check_store(database_url: str, outputs: list[dict[str, Any]], seen: list[int]) -> list[RecordedEvent]:
    async with migrated_store(database_url) as store:
        recorded = await read_everything(store)
    positions = [e.position for e in recorded]
    assert positions == list(range(1, TOTAL + 1)), "positions are not contiguous 1..N"
    assert seen == positions, "the tailing reader did not see every event exactly once, in order"

    versions: dict[str, list[int]] = defaultdict(list)
    for e in recorded:
        versions[e.stream_id].append(e.stream_version)
    for stream, stream_versions in versions.items():
        assert stream_versions == list(range(1, len(stream_versions) + 1)), f"{stream}: versions not contiguous"

    by_position = {e.position: e for e in recorded}
    answers = [a for output in outputs for a in output["answers"]]
    assert len(answers) == TOTAL
    for a in answers:
        stored = by_position[a["first_position"]]
        assert (str(stored.event_id), stored.stream_id, stored.stream_version) == (
            a["event_ids"][0], a["stream_id"], a["first_version"],
        )  # fmt: skip
        event = stored.event
        assert isinstance(event, MessageSent) and event.text == a["tag"]
    assert len({e.payload["text"] for e in recorded}) == TOTAL

    engine = create_engine(database_url)
    try:
        verified = await verify_chain(engine)
    finally:
        await engine.dispose()
    assert verified.ok, verified
    assert (verified.checked, verified.head_position, verified.head_hash) == (TOTAL, TOTAL, recorded[-1].hash)
    return recorded


async def test_two_processes_appending_to_one_stream_keep_versions_and_positions_contiguous(
    database_url: str,
) -> None:
    outputs, seen = await run_while_tailing(database_url, "one-stream", "--stream", "hot")
    recorded = await check_store(database_url, outputs, seen)
    assert {e.stream_id for e in recorded} == {"conversation-hot"}
    # The writers did contend: otherwise this test would not be exercising expected versions.
    assert sum(o["conflicts"] for o in outputs) > 0


async def test_two_processes_appending_to_many_streams_keep_versions_and_positions_contiguous(
    database_url: str,
) -> None:
    outputs, seen = await run_while_tailing(database_url, "many-streams", "--streams-per-writer", "25")
    recorded = await check_store(database_url, outputs, seen)
    assert len({e.stream_id for e in recorded}) == len(PROCESSES) * WRITERS_PER_PROCESS * 25
