"""The small HTTP server of a worker (delivery, projections, tickets): /healthz, /readyz, /metrics.

The gateway serves the same three endpoints in its own app (services.gateway.app).
"""

from __future__ import annotations

from prometheus_client import ProcessCollector
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from services.common.health import Readiness, healthz, metrics_endpoint, readyz_endpoint
from services.common.problems import http_exception_handler, unhandled_exception_handler
from shared.metrics import MetricsRegistry


def service_metrics() -> MetricsRegistry:
    """A fresh registry with the process's own figures (CPU, memory, open files, start time)."""
    metrics = MetricsRegistry()
    ProcessCollector(registry=metrics.registry)
    return metrics


def create_health_app(readiness: Readiness, metrics: MetricsRegistry) -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz_endpoint(readiness)),
            Route("/metrics", metrics_endpoint(metrics)),
        ],
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: unhandled_exception_handler,
        },
    )
