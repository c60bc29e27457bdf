"""`ledgerline projections`: the projections worker process, configured by LEDGERLINE_* variables."""

from __future__ import annotations

import argparse
import asyncio

from services.common.lifecycle import run_service
from services.common.worker_service import serve_worker_parts
from services.projections.handlers import KIND
from services.projections.lag_metrics import projections_parts
from shared.config import Settings


def main(args: argparse.Namespace) -> int:
    return run_service(KIND, serve)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    await serve_worker_parts(KIND, projections_parts, settings, stop)
