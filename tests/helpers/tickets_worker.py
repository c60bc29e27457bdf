"""The tickets worker in a process of its own, for the restart tests: the real runtime with the
tickets handler, timer loop and presence (services/tickets/main.TicketsService), in a broker
namespace. Runs until SIGTERM or until a test kills it with SIGKILL.

    python tests/helpers/tickets_worker.py --broker URL --namespace NS --db URL --sla FILE
    (run with PYTHONPATH=<repo>:<repo>/tests, as tests/helpers/processes.py does)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

# Run as a script, this directory comes first on sys.path, where a helper module named like a
# package would shadow it (tests/helpers/services.py once did): drop it (helpers stay `helpers.*`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from services.common.worker_service import WorkerContext  # noqa: E402  (after the sys.path fix above)
from services.tickets.handlers import KIND, TYPES  # noqa: E402  (after the sys.path fix above)
from services.tickets.main import TicketsService  # noqa: E402  (after the sys.path fix above)
from shared.broker.factory import connect_broker  # noqa: E402  (after the sys.path fix above)
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions  # noqa: E402  (after the sys.path fix above)
from shared.config import load_settings  # noqa: E402  (after the sys.path fix above)
from shared.logging import configure_logging  # noqa: E402  (after the sys.path fix above)
from shared.metrics import MetricsRegistry  # noqa: E402  (after the sys.path fix above)
from shared.store.engine import create_engine  # noqa: E402  (after the sys.path fix above)

# ack_wait 5 s: a killed worker's unacked batch (say, a ticket appended but its timer row not yet
# written) is redelivered to the restarted one within seconds, not the default 30.
OPTIONS = WorkerOptions(
    ack_wait=5.0,
    batch_size=256,
    retry=RetryPolicy(max_deliver=5, backoff_base=0.02, backoff_max=0.2),
    lease_ttl=3.0,
    fetch_wait=0.1,
)


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(
        {},
        data_dir=Path(tempfile.mkdtemp()),
        database_url=args.db,
        broker_url=args.broker,
        jwt_secret="unused-by-the-worker-0123456789abcdef",
        partitions=args.partitions,
        sla_policy_file=Path(args.sla),
    )
    broker = await connect_broker(args.broker, namespace=args.namespace, partitions=args.partitions)
    engine = create_engine(args.db).execution_options(sqlite_begin="IMMEDIATE")
    metrics = MetricsRegistry()
    service = TicketsService(settings, broker)
    handler = service.handler(WorkerContext(settings, engine, metrics))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Worker(KIND, TYPES, handler, broker, engine, metrics=metrics, options=OPTIONS):
        print("worker ready", flush=True)
        await stop.wait()
    await service.close()
    await broker.close()
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--sla", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    configure_logging("tickets-worker", "info", "json")
    asyncio.run(main(parser.parse_args()))
