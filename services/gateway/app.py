"""The gateway's FastAPI application: create_app(settings) wires the HTTP edge.

It serves the chat API (/v1, services/gateway/routes/, docs/chat-api.md), the operational endpoints
(/healthz, /readyz, /metrics) and the problem+json error handlers, and runs the relay (events table
-> broker; leading or standing by) in its lifespan when a broker is configured.

The token verifier is built here, not in the lifespan, so that a gateway without a JWT secret or key
stops at start with the ConfigError naming the setting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.broker import connect_configured_broker
from services.common.database import DatabaseProbe, open_engine
from services.common.health import Readiness, healthz, metrics_endpoint, readyz_endpoint
from services.common.health_server import service_metrics
from services.common.problems import PROBLEM_JSON, install_problem_handlers
from services.common.relay_service import running_relay
from services.gateway.audit_metrics import AuditChainMetrics
from services.gateway.auth import TokenVerifier
from services.gateway.commands.directory import DirectoryService
from services.gateway.commands.service import ConversationService
from services.gateway.commands.tickets import TicketService
from services.gateway.consistency import ReadYourWrites
from services.gateway.context import Gateway
from services.gateway.files.store import FileStore
from services.gateway.http_metrics import HttpMetrics, HttpMetricsMiddleware
from services.gateway.limits import BodyLimit
from services.gateway.nul_guard import NulGuard
from services.gateway.problems import install_gateway_problems
from services.gateway.ratelimit import RateLimiter
from services.gateway.routes import add_v1_routes
from services.gateway.ws import ws_router
from shared.broker.port import ConsumingBroker
from shared.config import Settings
from shared.errors import ConfigError
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.sql import SqlEventStore

log = get_logger(__name__)

BrokerConnector = Callable[[Settings, str], Awaitable[ConsumingBroker | None]]
# The read side's own connections: list and read queries must not queue behind the store's writer.
READ_POOL_SIZE = 8


def create_app(
    settings: Settings,
    *,
    readiness: Readiness | None = None,
    metrics: MetricsRegistry | None = None,
    connect: BrokerConnector = connect_configured_broker,
) -> FastAPI:
    """The gateway app. Its lifespan opens the database, the event store and the broker, starts the
    relay, and stops them in the reverse order. `connect` lets tests use a namespaced broker."""
    readiness = readiness or Readiness()
    metrics = metrics or service_metrics()
    verifier = TokenVerifier.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        engine = open_engine(url, pool_size=4)
        store = SqlEventStore(engine, metrics=metrics)
        read_engine = open_engine(url, pool_size=READ_POOL_SIZE)
        readiness.add("database", DatabaseProbe(engine))
        app.state.gateway = _gateway(settings, store, read_engine)
        broker = None
        try:
            async with AsyncExitStack() as parts:
                try:
                    broker = await connect(settings, "gateway")
                except ConfigError as err:
                    app.state.startup_error = err  # uvicorn only logs a failed start-up; main() re-raises this
                    raise
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
            await read_engine.dispose()
            await engine.dispose()

    app = FastAPI(
        title="Ledgerline gateway",
        lifespan=lifespan,
        # Our metrics are Prometheus (/metrics). FastAPI's native OpenTelemetry hooks, on by default,
        # looked the providers up on every request (~5 % of a send's CPU) to find none configured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        responses={"default": {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}},
    )
    app.state.settings = settings
    app.state.readiness = readiness
    app.state.metrics = metrics
    app.state.token_verifier = verifier
    app.state.audit_chain = AuditChainMetrics(metrics)
    install_problem_handlers(app)
    install_gateway_problems(app)
    app.add_middleware(NulGuard)  # inside BodyLimit (added after it: outermost), which bounds what it reads
    app.add_middleware(BodyLimit)
    # Added last so it is outermost: it also counts what BodyLimit rejects.
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(metrics))
    add_v1_routes(app.router)
    app.include_router(ws_router())  # GET /v1/ws, realtime (docs/realtime.md)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz_endpoint(readiness), methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", metrics_endpoint(metrics), methods=["GET"], include_in_schema=False)
    return app


def _gateway(settings: Settings, store: SqlEventStore, read_engine: AsyncEngine) -> Gateway:
    conversations = ConversationService(store, max_text_length=settings.max_text_length)
    return Gateway(
        settings=settings,
        conversations=conversations,
        directory=DirectoryService(store),
        engine=read_engine,
        consistency=ReadYourWrites(read_engine, settings.partitions),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        files=FileStore(settings.resolved_files_dir),
        tickets=TicketService(store, conversations),
    )
