"""The real handler contract, as a test handler: each event becomes a row of `handled` (unique on
event id), and the stream's checkpoint (last applied stream version) moves in the same transaction;
a redelivered event is skipped by the checkpoint. `handled.seq` (autoincrement) keeps the order in
which rows were applied, so a test can check stream order and gaps afterwards.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.processes import Child, wait_until
from shared.events.envelope import RecordedEvent

metadata = MetaData()
handled = Table(
    "handled",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("stream_id", String(200), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("position", Integer, nullable=False),
)
stream_checkpoints = Table(
    "handled_checkpoints",
    metadata,
    Column("stream_id", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
)


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def recording_handler(engine: AsyncEngine, pause: float = 0.0) -> Callable[[list[RecordedEvent]], Awaitable[None]]:
    """`pause` seconds inside the transaction, before the commit: a kill then lands mid-batch."""
    writer = engine.execution_options(sqlite_begin="IMMEDIATE")

    async def handle(batch: list[RecordedEvent]) -> None:
        async with writer.begin() as conn:
            streams = {e.stream_id for e in batch}
            rows = await conn.execute(select(stream_checkpoints).where(stream_checkpoints.c.stream_id.in_(streams)))
            done = {r.stream_id: r.version for r in rows}
            fresh = {s for s in streams if s not in done}
            for e in batch:
                if e.stream_version <= done.get(e.stream_id, 0):
                    continue  # applied before: the checkpoint covers it
                await conn.execute(
                    handled.insert().values(
                        event_id=e.event_id, stream_id=e.stream_id, stream_version=e.stream_version, position=e.position
                    )
                )
                done[e.stream_id] = e.stream_version
            for s, v in done.items():
                if s in fresh:
                    await conn.execute(stream_checkpoints.insert().values(stream_id=s, version=v))
                elif s in streams:
                    await conn.execute(
                        stream_checkpoints.update().where(stream_checkpoints.c.stream_id == s).values(version=v)
                    )
            if pause:
                await asyncio.sleep(pause)

    return handle


async def handled_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(handled))).scalar_one())


async def applied_versions(engine: AsyncEngine) -> dict[str, list[int]]:
    """Stream id -> stream versions in the order they were applied."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(handled.c.stream_id, handled.c.stream_version).order_by(handled.c.seq))
        out: dict[str, list[int]] = defaultdict(list)
        for stream_id, version in rows:
            out[stream_id].append(version)
        return dict(out)


async def wait_for_count(engine: AsyncEngine, expected: int, within: float, what: str = "handled rows") -> int:
    deadline = asyncio.get_running_loop().time() + within
    while (count := await handled_count(engine)) < expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {expected} {what}; got {count}")
        await asyncio.sleep(0.1)
    return count


def assert_exactly_once_in_order(applied: dict[str, list[int]], per_stream: dict[str, int]) -> None:
    """Every stream applied as 1..n exactly, in that order: no gap, no double, no reordering."""
    assert set(applied) == set(per_stream), "streams missing or unexpected"
    for stream, n in per_stream.items():
        assert applied[stream] == list(range(1, n + 1)), f"{stream}: {applied[stream][:20]}…"


async def wait_handled(
    engine: AsyncEngine, count: int, within: float, children: Sequence[Child] = (), interval: float = 0.05
) -> None:
    """Poll the handled rows until there are `count`; fail after `within` seconds, showing the children's
    output. The one waiting loop of the crash tests."""
    latest = 0

    async def poll() -> None:
        nonlocal latest
        while True:
            latest = await handled_count(engine)
            await asyncio.sleep(interval)

    poller = asyncio.create_task(poll())
    try:
        await wait_until(lambda: latest >= count, within, f"{count} handled rows", children)
    finally:
        poller.cancel()
