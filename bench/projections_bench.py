"""Projections benchmark: the CPU the projections worker spends per chat message, by batch size.

The chat benchmark's 2,000 messages/s is shared by the gateway and the projections worker on the same
2 cores, so what the worker spends per message is taken from the gateway. This measures the worker's
write path alone, without the broker: 64 direct conversations, then `--events` MessageSent events
(each with its sender's implied read receipt, as in the chat benchmark) read back from the store and
applied by the real Projector (chat, audit, search, directory, support read models) in batches of
1, 16 and 64 events, each batch size on a fresh database. It prints the process CPU and wall time
per event, and events/s. The loop is uvloop, as in the services.

    .venv/bin/python -m bench.projections_bench [--events 6000] [--db postgres|sqlite|both]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from services.projections.projector import Projector
from shared.events.conversation import ConversationStarted, MessageSent
from shared.events.envelope import NewEvent, RecordedEvent
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
CONVERSATIONS = 64
BATCHES = (1, 16, 64)
TEXT = "Договор поставки по тендеру согласован, contract attached. " * 3


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _seed(url: str, events: int) -> list[RecordedEvent]:
    """The conversations and the messages appended through the store, then read back as the worker
    gets them (decoded, personal fields opened)."""
    store = await SqlEventStore.open(url)
    try:
        for c in range(CONVERSATIONS):
            started = ConversationStarted(
                conversation_id=f"bench-{c}", kind="direct", members=(f"u{c}a", f"u{c}b"), created_by=f"u{c}a"
            )
            await store.append(f"conversation-bench-{c}", [NewEvent(started, actor=f"u{c}a")])

        async def sender(c: int) -> None:
            for seq in range(1, events // CONVERSATIONS + 1):
                user = f"u{c}{'ab'[seq % 2]}"
                message_id = str(uuid.uuid4())
                sent = MessageSent(
                    conversation_id=f"bench-{c}",
                    message_id=message_id,
                    seq=seq,
                    sender_id=user,
                    client_msg_id=message_id,
                    text=TEXT,
                )
                await store.append(f"conversation-bench-{c}", [NewEvent(sent, actor=user)])

        await asyncio.gather(*(sender(c) for c in range(CONVERSATIONS)))
        recorded: list[RecordedEvent] = []
        while page := await store.read_all(recorded[-1].position if recorded else 0, 1000):
            recorded.extend(page)
        return recorded
    finally:
        await store.close()


async def _apply(url: str, recorded: list[RecordedEvent], batch: int) -> dict[str, float]:
    engine = create_engine(url, pool_size=2)
    projector = Projector(engine)
    try:
        setup = [e for e in recorded if e.type != "MessageSent"]
        await projector.apply(setup)
        messages = [e for e in recorded if e.type == "MessageSent"]
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(0, len(messages), batch):
            await projector.apply(messages[i : i + batch])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await engine.dispose()
    n = len(messages)
    return {"cpu_us_per_event": cpu / n * 1e6, "wall_us_per_event": wall / n * 1e6, "events_per_s": n / wall}


async def _on_postgres(events: int, batch: int) -> dict[str, float]:
    name = f"ledgerline_projbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_URL.format(name=name)
        await asyncio.to_thread(migrate, url)
        return await _apply(url, await _seed(url, events), batch)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _on_sqlite(events: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(migrate, url)
        return await _apply(url, await _seed(url, events), batch)


async def run(events: int = 6000, databases: tuple[str, ...] = ("postgres", "sqlite")) -> dict[str, Any]:
    result: dict[str, Any] = {"events": events}
    for db in databases:
        result[db] = {}
        for batch in BATCHES:
            progress(f"projections bench: {db}, {events:,} messages in batches of {batch}")
            figures = await (_on_postgres if db == "postgres" else _on_sqlite)(events, batch)
            result[db][f"batch_{batch}"] = {k: round(v) for k, v in figures.items()}
            progress(
                f"  {figures['cpu_us_per_event']:,.0f} µs CPU per message, {figures['events_per_s']:,.0f} messages/s"
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both")
    args = parser.parse_args()
    databases = ("postgres", "sqlite") if args.db == "both" else (args.db,)
    try:  # as the services run (services/common/lifecycle.py)
        import uvloop

        result = uvloop.run(run(args.events, databases))
    except ImportError:
        result = asyncio.run(run(args.events, databases))
    print(f"\n{'database':10} {'batch':>6} {'CPU µs/msg':>11} {'wall µs/msg':>12} {'msgs/s':>8}")
    for db in databases:
        for batch in BATCHES:
            r = result[db][f"batch_{batch}"]
            print(
                f"{db:10} {batch:>6} {r['cpu_us_per_event']:>11,} {r['wall_us_per_event']:>12,} {r['events_per_s']:>8,}"
            )


if __name__ == "__main__":
    main()
