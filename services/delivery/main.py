"""`ledgerline delivery`: the delivery worker process, configured by LEDGERLINE_* variables.

Beside the worker service's own broker connection (durable consumers), delivery holds one for the
ephemeral path: publishing frames and hearing presence heartbeats (services/delivery/service.py).
"""

from __future__ import annotations

import argparse
import asyncio

from services.common.broker import connect_configured_broker
from services.common.lifecycle import run_service
from services.common.worker_service import WorkerContext, serve_worker
from services.delivery.handlers import KIND, build_handler
from services.delivery.service import DeliveryRealtime
from shared.broker.consume import Handler
from shared.config import Settings


def main(args: argparse.Namespace) -> int:
    return run_service(KIND, serve)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    broker = await connect_configured_broker(settings, KIND)
    realtime = DeliveryRealtime.from_settings(settings, broker)
    await realtime.start()

    def factory(context: WorkerContext) -> Handler:
        return build_handler(context, realtime)

    try:
        await serve_worker(KIND, factory, settings, stop)
    finally:
        await realtime.close()
        if broker is not None:
            await broker.close()
