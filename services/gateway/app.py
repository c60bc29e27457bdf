"""The gateway's FastAPI application: create_app(settings) wires the HTTP edge.

Today it serves the operational endpoints (/healthz, /readyz, /metrics) and the problem+json error
handlers, and runs the relay (events table -> broker; leading or standing by) in its lifespan when a
broker is configured; the /v1 routers and the WebSocket endpoint are added here as they land.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from services.common.broker import connect_configured_broker
from services.common.database import DatabaseProbe, open_engine
from services.common.health import Readiness, healthz, metrics_endpoint, readyz_endpoint
from services.common.health_server import service_metrics
from services.common.problems import PROBLEM_JSON, install_problem_handlers
from services.common.relay_service import running_relay
from shared.config import Settings
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.sql import SqlEventStore

log = get_logger(__name__)


def create_app(
    settings: Settings, *, readiness: Readiness | None = None, metrics: MetricsRegistry | None = None
) -> FastAPI:
    """The gateway app. Its lifespan opens the database, the event store and the broker, starts the
    relay, and stops them in the reverse order."""
    readiness = readiness or Readiness()
    metrics = metrics or service_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        engine = open_engine(url, pool_size=4)
        store = SqlEventStore(engine, metrics=metrics)
        readiness.add("database", DatabaseProbe(engine))
        broker = None
        try:
            async with AsyncExitStack() as parts:
                broker = await connect_configured_broker(settings, "gateway")
                app.state.store = store
                app.state.broker = broker
                app.state.relay = None
                if broker is not None:
                    readiness.add("broker", broker.healthy)
                    app.state.relay = await parts.enter_async_context(
                        running_relay(store, broker, engine, url, readiness, metrics)
                    )
                yield
        finally:
            readiness.mark_stopping()
            if broker is not None:
                await broker.close()
            await store.close()
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
