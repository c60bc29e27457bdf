"""A worker process for the crash tests: the real runtime (`Worker`) with the real handler contract
(tests/helpers/flow_handler.py: rows unique on event id, per-stream checkpoint in the same
transaction). Runs until SIGTERM or until a test kills it with SIGKILL.

    python tests/helpers/crash_worker.py --broker URL --namespace NS --db URL [--pause 0.03]
    (run with PYTHONPATH=<repo>:<repo>/tests, as tests/helpers/processes.py does)
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from sqlalchemy.ext.asyncio import create_async_engine

from helpers.flow_handler import create_tables, recording_handler
from shared.broker.factory import connect_broker
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.logging import configure_logging
from shared.store.tables import metadata

KIND = "crashtest"


def options(batch: int, ack_wait: float, lease_ttl: float) -> WorkerOptions:
    retry = RetryPolicy(max_deliver=20, backoff_base=0.05, backoff_max=0.5)
    return WorkerOptions(batch_size=batch, retry=retry, ack_wait=ack_wait, lease_ttl=lease_ttl, fetch_wait=0.2)


async def main(args: argparse.Namespace) -> None:
    engine = create_async_engine(args.db, connect_args={"timeout": 30})
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)  # the runtime's lease tables
    await create_tables(engine)
    broker = await connect_broker(args.broker, namespace=args.namespace)
    handler = recording_handler(engine, pause=args.pause)
    worker = Worker(KIND, None, handler, broker, engine, options=options(args.batch, args.ack_wait, args.lease_ttl))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("worker ready", flush=True)
        await stop.wait()
    await broker.close()
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ack-wait", type=float, default=2.0)
    parser.add_argument("--lease-ttl", type=float, default=3.0)  # see test_crash_worker: 1 s churned under load
    configure_logging("crash-worker", "info", "json")
    asyncio.run(main(parser.parse_args()))
