"""Audit benchmark on PostgreSQL: verify and export speed, and replay of a big conversation.

    .venv/bin/python -m bench.audit_bench [--events 100000]

In a fresh `ledgerline_bench_<random>` database (dropped afterwards): one conversation of `events`
MessageSent (~200-byte texts) with a Read watermark every 100 messages, appended in batches of 1,000;
the audit read model filled by the projector. Then:
- verify: `verify_chain` over the whole store, events/s;
- export: JSON Lines and CSV of every event from the audit read model, events/s (bytes discarded);
- replay: the conversation folded from the event store (read_stream + services.audit.replay), seconds.
Goal (issue #7): verify and export >= 50,000 events/s. Absolute figures drift on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.audit.export import export
from services.audit.queries import EventFilter
from services.audit.replay import replay, to_json
from services.projections.projector import Projector
from shared.events.conversation import ConversationStarted, MessageSent, Read
from shared.events.envelope import NewEvent
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore
from shared.store.verify import verify_chain

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
CONV = "bench-audit"
TEXT = "Audit benchmark message: who agreed what, and when. " * 4
BATCH = 1000
GOAL = 50_000


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def script(n: int) -> list[NewEvent]:
    out = [
        NewEvent(ConversationStarted(conversation_id=CONV, kind="group", members=("a", "b", "c"), created_by="a"), "a")
    ]
    for seq in range(1, n + 1):
        sender = "abc"[seq % 3]
        out.append(
            NewEvent(
                MessageSent(
                    conversation_id=CONV,
                    message_id=str(uuid.uuid4()),
                    seq=seq,
                    sender_id=sender,
                    client_msg_id=f"c{seq}",
                    text=TEXT,
                ),
                sender,
            )
        )
        if seq % 100 == 0:
            out.append(NewEvent(Read(conversation_id=CONV, user_id="b", up_to_seq=seq), "b"))
    return out


async def fill(url: str, n: int) -> int:
    store = await SqlEventStore.open(url, max_batch_events=BATCH, max_batch_bytes=4 * 1024 * 1024)
    engine = create_engine(url, pool_size=2)
    try:
        events = script(n)
        for i in range(0, len(events), BATCH):
            await store.append(f"conversation-{CONV}", events[i : i + BATCH])
        progress(f"appended {len(events):,} events")
        projector, after = Projector(engine, projections=("audit",)), 0
        while page := await store.read_all(after, 5000):
            await projector.apply(page)
            after = page[-1].position
        progress("audit read model filled")
        return len(events)
    finally:
        await store.close()
        await engine.dispose()


async def measure(url: str, count: int, messages: int) -> dict[str, Any]:
    engine = create_engine(url, pool_size=2)
    store = await SqlEventStore.open(url)
    try:
        started = time.perf_counter()
        result = await verify_chain(engine)
        verify_s = time.perf_counter() - started
        assert result.ok and result.checked == count, result
        exports: dict[str, float] = {}
        for fmt in ("jsonl", "csv"):
            started, size = time.perf_counter(), 0
            async with engine.connect() as conn:
                async for chunk in export(conn, EventFilter(), fmt):
                    size += len(chunk)
            exports[fmt] = time.perf_counter() - started
            progress(f"export {fmt}: {size / 1e6:.0f} MB in {exports[fmt]:.1f} s")
        started = time.perf_counter()
        state = to_json(replay(CONV, await store.read_stream(f"conversation-{CONV}")))
        replay_s = time.perf_counter() - started
        assert len(state["messages"]) == messages, len(state["messages"])
        return {
            "events": count,
            "verify_per_s": round(count / verify_s),
            "export_jsonl_per_s": round(count / exports["jsonl"]),
            "export_csv_per_s": round(count / exports["csv"]),
            "replay_messages": len(state["messages"]),
            "replay_seconds": round(replay_s, 2),
            "goal_per_s": GOAL,
        }
    finally:
        await store.close()
        await engine.dispose()


async def run(events: int = 100_000) -> dict[str, Any]:
    name = f"ledgerline_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.format(name=name)
    try:
        migrate(url)
        count = await fill(url, events)
        return await measure(url, count, events)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="messages in the conversation")
    args = parser.parse_args()
    for key, value in asyncio.run(run(args.events)).items():
        print(f"{key:<22} {value:>12,}" if isinstance(value, int) else f"{key:<22} {value:>12}")


if __name__ == "__main__":
    main()
