"""`ledgerline gateway`: the HTTP + WebSocket gateway process, configured by LEDGERLINE_* variables."""

from __future__ import annotations

import argparse
import asyncio

from services.common.lifecycle import HttpStartupFailed, listen, run_service, serve_http
from services.gateway.app import create_app
from shared.config import Settings
from shared.logging import get_logger

log = get_logger(__name__)

# Of the shutdown deadline, what open requests may take; the rest is for closing the broker and database.
REQUEST_GRACE_SHARE = 0.6


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    app = create_app(settings)
    sock = listen(settings.gateway_host, settings.gateway_port, settings.listen_fd)
    log.info("gateway_listening", url=f"http://{settings.gateway_host}:{settings.gateway_port}")
    try:
        await serve_http(
            app,
            sock,
            stop,
            grace=settings.shutdown_timeout * REQUEST_GRACE_SHARE,
            on_stopping=app.state.readiness.mark_stopping,
        )
    except HttpStartupFailed:
        startup_error = getattr(app.state, "startup_error", None)
        if startup_error is not None:
            raise startup_error from None  # a setting to fix (exit 2), not a crash
        raise


def main(args: argparse.Namespace) -> int:
    return run_service("gateway", serve)
