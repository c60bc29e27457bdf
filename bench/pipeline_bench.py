"""Pipeline benchmark: events/s from append to handled by one worker kind, through the relay, per broker.

    .venv/bin/python bench/pipeline_bench.py [--events 20000] [--nats embedded|URL] [--amqp URL] [--no-uvloop]

For each broker (NATS JetStream with `sync_interval: always`: by default the embedded server of
`ledgerline up`, see bench/broker_bench.py; RabbitMQ quorum queues), in the same run:
- the raw client's publish rate against that server (bench/broker_bench.py: async publish with 256
  in flight / confirmed publish with a window of 256), for the ratio;
- the pipeline: N events of ~1 KB appended through SqlEventStore (SQLite, group commit) while the
  relay (in this process, as in the gateway) publishes them and one worker kind (16 partitions,
  a counting handler, in a child process as in production) handles them. Reported: end-to-end
  events/s (first append to last handled), relay publish/s (from the same start to the last
  event confirmed by the broker), append/s.
Everything it creates has a random suffix and is deleted at the end.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker_bench import EMBEDDED, make_events, nats_server, raw_nats, raw_rabbit, run_loop  # same raw clients
from sqlalchemy.ext.asyncio import create_async_engine

from shared.broker.factory import connect_broker
from shared.broker.relay import Relay, RelayOptions
from shared.broker.runtime import Worker, WorkerOptions
from shared.events.cloudevents import to_cloudevent_bytes
from shared.events.conversation import MessageSent
from shared.events.envelope import NewEvent, RecordedEvent
from shared.logging import configure_logging
from shared.metrics import MetricsRegistry
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore
from shared.store.tables import metadata

KIND = "pipebench"
TEXT = "x" * 500
PER_APPEND = 10  # events per append call (one conversation's burst); appends run 64 at a time
CHILD_LOOP = "uvloop"  # the worker child's event loop ("asyncio" with --no-uvloop)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def worker_options() -> WorkerOptions:
    return WorkerOptions(lease_ttl=10.0, fetch_wait=0.5)


def new_event(conversation: str, seq: int) -> NewEvent:
    sent = MessageSent(
        conversation_id=conversation, message_id=str(uuid.uuid4()), seq=seq, sender_id="u", client_msg_id=f"c{seq}",
        text=TEXT,
    )  # fmt: skip
    return NewEvent(sent, actor="u")


async def append_all(store: SqlEventStore, total: int) -> float:
    """Append `total` events in bursts of PER_APPEND over total/200 conversations; returns events/s."""
    conversations = [str(uuid.uuid4()) for _ in range(max(1, total // 200))]
    next_seq = dict.fromkeys(conversations, 1)
    jobs = [conversations[i % len(conversations)] for i in range(total // PER_APPEND)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    locks = {c: asyncio.Lock() for c in conversations}
    started = time.perf_counter()

    async def appender() -> None:
        while not queue.empty():
            c = queue.get_nowait()
            async with locks[c]:
                first = next_seq[c]
                next_seq[c] = first + PER_APPEND
                await store.append(f"conversation-{c}", [new_event(c, s) for s in range(first, first + PER_APPEND)])

    await asyncio.gather(*(appender() for _ in range(64)))
    return total / (time.perf_counter() - started)


async def worker_child(broker_url: str, namespace: str, db_url: str, total: int) -> None:
    """The worker process: counts events, prints `done <time>` once it has handled `total`."""
    engine = create_async_engine(db_url, connect_args={"timeout": 30})
    broker = await connect_broker(broker_url, namespace=namespace)
    handled = 0
    done = asyncio.Event()

    async def handle(batch: list[RecordedEvent]) -> None:
        nonlocal handled
        handled += len(batch)
        if handled >= total:
            done.set()

    async with Worker(KIND, None, handle, broker, engine, options=worker_options()):
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 600)
        print(f"done {time.time()}", flush=True)
    await broker.close()
    await engine.dispose()


async def pipeline(broker_url: str, total: int, tmp: Path, backlog: bool = False) -> dict[str, float]:
    """backlog=False: append while the relay and the worker run (end to end from the first append).
    backlog=True: append everything first, then start the relay (a drain after an outage: full pages)."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    events_url = f"sqlite+aiosqlite:///{tmp / f'{namespace}-events.db'}"
    worker_url = f"sqlite+aiosqlite:///{tmp / f'{namespace}-worker.db'}"
    await asyncio.to_thread(migrate, events_url)
    engine = create_async_engine(worker_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    broker = await connect_broker(broker_url, namespace=namespace, source="ledgerline/bench")
    store = await SqlEventStore.open(events_url)
    metrics = MetricsRegistry()
    relay = Relay.for_database(store, broker, store.engine, events_url, options=RelayOptions(), metrics=metrics)
    argv = [sys.executable, __file__, "--worker-child", broker_url, namespace, worker_url, str(total), CHILD_LOOP]
    child = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        if (await child.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the worker child did not start")
        if not backlog:
            await relay.start()
        started = time.time()
        append_rate = await append_all(store, total)
        progress(f"  appended {total:,} at {append_rate:,.0f}/s; waiting for the worker")
        if backlog:
            started = time.time()
            await relay.start()
        relay_done = await relay_finished(relay, total)
        line = await asyncio.wait_for(child.stdout.readline(), 600)
        finished = float(line.split()[1])
        await asyncio.wait_for(child.wait(), 30)
        return {
            "end_to_end_per_s": total / (finished - started),
            "relay_publish_per_s": total / (relay_done - started),
            "append_per_s": append_rate,
        }
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await relay.stop()
        await store.close()
        await broker.delete_topology([KIND])  # type: ignore[attr-defined]
        await broker.close()


async def relay_finished(relay: Relay, total: int) -> float:
    """The wall-clock time at which the relay had published and confirmed all `total` events."""
    while relay.position < total:  # noqa: ASYNC110 (the relay offers no event for its position)
        await asyncio.sleep(0.005)
    return time.time()


BROKERS = ("nats", "rabbitmq")


async def run(events: int = 20_000, nats_url: str = EMBEDDED,
              amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/",
              brokers: tuple[str, ...] = BROKERS) -> dict[str, Any]:  # fmt: skip
    if "nats" not in brokers:
        return await _run(events, "", amqp_url, brokers)
    async with nats_server(nats_url) as url:
        return await _run(events, url, amqp_url, brokers)


async def _run(events: int, nats_url: str, amqp_url: str, brokers: tuple[str, ...]) -> dict[str, Any]:
    body = to_cloudevent_bytes(make_events(1)[0], "ledgerline/bench")
    progress(f"pipeline bench: {events:,} events, {len(body)} bytes of CloudEvents each")
    result: dict[str, Any] = {"events": events, "body_bytes": len(body)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, url, raw in (("nats", nats_url, raw_nats), ("rabbitmq", amqp_url, raw_rabbit)):
            if name not in brokers:
                continue
            progress(f"{name}: raw client publish, window 256")
            raw_rate = await raw(url, events, body)
            progress(f"  raw: {raw_rate:,.0f}/s; pipeline append -> relay -> {name} -> worker")
            result[name] = {"raw_publish_per_s": round(raw_rate)}
            for mode, backlog in (("live", False), ("backlog", True)):
                progress(f"  {mode}: " + ("drain a backlog" if backlog else "append while relaying"))
                figures = await pipeline(url, events, Path(tmp), backlog)
                progress(
                    f"  {mode}: end to end {figures['end_to_end_per_s']:,.0f}/s, relay publish "
                    f"{figures['relay_publish_per_s']:,.0f}/s, append {figures['append_per_s']:,.0f}/s"
                )
                figures["end_to_end_ratio_to_raw"] = figures["end_to_end_per_s"] / raw_rate
                result[name][mode] = {
                    k: round(v, 2) if k.endswith("ratio_to_raw") else round(v) for k, v in figures.items()
                }
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-child":
        url, namespace, db_url, total, loop = sys.argv[2:7]
        configure_logging("bench-worker", "warning", "json")  # stderr: stdout carries "ready" / "done"
        run_loop(worker_child(url, namespace, db_url, int(total)), loop == "uvloop")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--nats", default=EMBEDDED, help="a NATS URL, or 'embedded' (durable, the default)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--no-uvloop", action="store_true", help="the default asyncio loop instead of uvloop")
    parser.add_argument("--only", choices=BROKERS, help="run one broker's part only")
    args = parser.parse_args()
    global CHILD_LOOP
    CHILD_LOOP = "asyncio" if args.no_uvloop else "uvloop"
    brokers = (args.only,) if args.only else BROKERS
    result = run_loop(run(args.events, args.nats, args.amqp, brokers), not args.no_uvloop)
    print()
    print(f"{'broker':10} {'mode':8} {'raw pub/s':>10} {'e2e/s':>8} {'ratio':>6} {'relay pub/s':>12} {'append/s':>9}")
    for name in brokers:
        for mode in ("live", "backlog"):
            r, raw = result[name][mode], result[name]["raw_publish_per_s"]
            print(f"{name:10} {mode:8} {raw:>10,} {r['end_to_end_per_s']:>8,} {r['end_to_end_ratio_to_raw']:>6} "
                  f"{r['relay_publish_per_s']:>12,} {r['append_per_s']:>9,}")  # fmt: skip


if __name__ == "__main__":
    main()
