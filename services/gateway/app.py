"""The gateway's FastAPI application: create_app(settings) wires the HTTP edge.

Today it serves the operational endpoints (/healthz, /readyz, /metrics) and the problem+json error
handlers; the /v1 routers, the WebSocket endpoint and the relay are added here as they land.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.broker import connect_configured_broker
from services.common.database import DatabaseProbe, open_engine
from services.common.health import Readiness, healthz, metrics_endpoint, readyz_endpoint
from services.common.health_server import service_metrics
from services.common.problems import PROBLEM_JSON, install_problem_handlers
from shared.config import Settings
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)


def create_app(
    settings: Settings, *, readiness: Readiness | None = None, metrics: MetricsRegistry | None = None
) -> FastAPI:
    """The gateway app. Its lifespan opens the database probe and the broker and closes them."""
    readiness = readiness or Readiness()
    metrics = metrics or service_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_engine(settings.resolved_database_url)
        readiness.add("database", DatabaseProbe(engine))
        broker = await connect_configured_broker(settings, "gateway")
        if broker is not None:
            readiness.add("broker", broker.healthy)
        app.state.broker = broker
        try:
            yield
        finally:
            readiness.mark_stopping()
            if broker is not None:
                await broker.close()
            await engine.dispose()

    app = FastAPI(
        title="Ledgerline gateway",
        lifespan=lifespan,
        responses={"default": {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}},
    )
    app.state.settings = settings
    app.state.readiness = readiness
    app.state.metrics = metrics
    install_problem_handlers(app)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz_endpoint(readiness), methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", metrics_endpoint(metrics), methods=["GET"], include_in_schema=False)
    return app
