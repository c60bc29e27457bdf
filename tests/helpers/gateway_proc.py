"""A gateway process for the realtime tests: the real app (HTTP, WebSocket, relay) under uvicorn, on a
broker namespace of the test's own, with a short presence heartbeat and TTL so that a SIGKILL shows
within seconds. Prints `listening <port>` once it accepts connections.

    python tests/helpers/gateway_proc.py --db URL --broker URL --namespace NS --port N --secret S
        [--partitions 4] [--heartbeat 0.5] [--ttl 2]
    (run with PYTHONPATH=<repo>:<repo>/tests, as tests/helpers/processes.py does)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

from services.common.lifecycle import listen, serve_http
from services.gateway.app import create_app
from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.config import Settings, load_settings
from shared.logging import configure_logging


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(
        {},
        data_dir=Path(tempfile.mkdtemp(prefix="gateway-proc-")),
        database_url=args.db,
        broker_url=args.broker,
        jwt_secret=args.secret,
        partitions=args.partitions,
        rate_limit_per_minute=0,
        presence_heartbeat_seconds=args.heartbeat,
        presence_ttl_seconds=args.ttl,
    )

    async def connect(settings: Settings, service: str) -> ConsumingBroker:
        return await connect_broker(
            args.broker, namespace=args.namespace, partitions=args.partitions, source=f"ledgerline/{service}"
        )

    app = create_app(settings, connect=connect)
    sock = listen("127.0.0.1", args.port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    serving = asyncio.create_task(serve_http(app, sock, stop, grace=1))
    while not hasattr(app.state, "realtime"):  # the lifespan has run: the broker and realtime are up
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    print(f"listening {args.port}", flush=True)
    await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--ttl", type=float, default=2.0)
    configure_logging("gateway-proc", "info", "json")
    asyncio.run(main(parser.parse_args()))
