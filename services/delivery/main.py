"""`ledgerline delivery`: the delivery worker process, configured by LEDGERLINE_* variables.

The ephemeral path (publishing frames, hearing presence heartbeats: services/delivery/service.py)
uses the worker service's own broker connection (WorkerContext.broker); it starts before the worker
consumes and stops after the worker has stopped, before that connection closes.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.lifecycle import run_service
from services.common.worker_service import WorkerContext, serve_worker_parts
from services.delivery.fanout import CONVERSATION_TYPES
from services.delivery.handlers import KIND, build_handler
from services.delivery.service import DeliveryRealtime
from shared.broker.consume import Handler
from shared.config import Settings


def main(args: argparse.Namespace) -> int:
    return run_service(KIND, serve)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    await serve_worker_parts(KIND, delivery_parts, settings, stop, CONVERSATION_TYPES)


@asynccontextmanager
async def delivery_parts(context: WorkerContext) -> AsyncIterator[Handler]:
    realtime = DeliveryRealtime.from_settings(context.settings, context.broker)
    await realtime.start()
    try:
        yield build_handler(context, realtime)
    finally:
        await realtime.close()
