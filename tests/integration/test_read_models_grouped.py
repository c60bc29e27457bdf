"""Batches of several partitions handed to the projector at the same moment, as the worker's partition
loops do, are applied together (services/common/transaction_group.py): the read models end as if the
batches had come one by one, every partition's checkpoint is its last event, fewer transactions
commit than there were batches, and the same batches again (a redelivery) change nothing. On SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import test_read_models_support as support
from sqlalchemy import event, select
from test_read_models_support import Env, dump

from services.projections import queries
from services.projections.tables import checkpoints
from shared.events.envelope import RecordedEvent
from shared.events.partition import partition_of
from shared.store.engine import blocking_sqlite_engine

env = support.env  # the fixture, shared with the other test_read_models_* modules


async def test_concurrent_partition_batches_are_applied_together_once(env: Env) -> None:
    conversations = [f"g{i}" for i in range(12)]
    for c in conversations:
        await env.start(c, "direct", [f"{c}-a", f"{c}-b"])
        for n in range(1, 6):
            await env.send(c, f"{c}-a", f"{c} message {n}")
        await env.read(c, f"{c}-b", 3)
    by_partition: dict[int, list[RecordedEvent]] = defaultdict(list)
    for e in await env.store.read_all(0, 10_000):
        by_partition[partition_of(e.stream_id)].append(e)
    assert len(by_partition) > 4  # the conversations fall into several partitions

    commits = [0]

    def on_commit(_conn: object) -> None:
        commits[0] += 1

    # On SQLite the projector's transactions run on the file's blocking engine (transaction_group.py).
    engines = [env.engine.sync_engine]
    if env.engine.dialect.name == "sqlite":
        engines.append(blocking_sqlite_engine(env.engine.url.render_as_string(hide_password=False)))
    for engine in engines:
        event.listen(engine, "commit", on_commit)
    try:
        await asyncio.gather(*(env.projector.apply(batch) for batch in by_partition.values()))
    finally:
        for engine in engines:
            event.remove(engine, "commit", on_commit)
    assert 1 <= commits[0] < len(by_partition)

    async with env.engine.connect() as conn:
        for c in conversations:
            page = await queries.messages(conn, f"{c}-b", c)
            assert page is not None and [m.text for m in page] == [f"{c} message {n}" for n in range(1, 6)]
        [summary] = await queries.conversations(conn, "g0-b")
        assert (summary.last_seq, summary.unread_count) == (5, 2)
        stored = {(r.projection, r.partition): r.position for r in await conn.execute(select(checkpoints))}
        for p, batch in by_partition.items():
            assert stored[("chat", p)] == batch[-1].position
        before = await dump(conn)

    await asyncio.gather(*(env.projector.apply(batch) for batch in by_partition.values()))  # redelivered
    async with env.engine.connect() as conn:
        assert await dump(conn) == before


async def test_an_older_batch_redelivered_after_a_newer_one_moves_no_checkpoint_back(env: Env) -> None:
    """Checkpoints only move forward (the upsert keeps the greater position), for every projection of
    every partition a batch touched; the older batch changes no read model either."""
    await env.start("late", "direct", ["late-a", "late-b"])
    for n in range(1, 7):
        await env.send("late", "late-a", f"late message {n}")
    events = await env.store.read_all(0, 10_000)
    older, newer = events[:3], events[3:]
    await env.projector.apply(events)

    async def stored() -> dict[tuple[str, int], int]:
        async with env.engine.connect() as conn:
            return {(r.projection, r.partition): r.position for r in await conn.execute(select(checkpoints))}

    after_all = await stored()
    assert after_all and set(after_all.values()) == {newer[-1].position}
    async with env.engine.connect() as conn:
        before = await dump(conn)
    await env.projector.apply(older)  # a redelivery of what came first
    assert await stored() == after_all
    async with env.engine.connect() as conn:
        assert await dump(conn) == before
