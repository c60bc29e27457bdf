"""HTTP request metrics for the gateway: a pure ASGI middleware.

Not Starlette's BaseHTTPMiddleware: it wraps every response in a stream and a task, which costs
on the hot path. This one only watches the `http.response.start` message for the status.

`route` is the matched route's path template (/v1/conversations/{conversation_id}/messages), read from
the route FastAPI matched (see route_template); never the raw path, whose ids would make one series per
conversation. A request no route matched is counted as "unmatched".
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import MetricsRegistry

UNMATCHED = "unmatched"
# Anything else (a client may send any token as a method) is folded into "other": bounded cardinality.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """The two metric families, created once per registry (a registry refuses a second registration)."""

    def __init__(self, metrics: MetricsRegistry) -> None:
        self.requests: Counter = metrics.counter(
            "http_requests", "HTTP requests answered by the gateway", ["method", "route", "status"]
        )
        self.seconds: Histogram = metrics.histogram(
            "http_request_seconds", "Time to answer an HTTP request, to the start of the response", ["method", "route"]
        )
        # Children by label values: .labels() takes a lock and builds a key on every call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        hkey = (method, route)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = self.seconds.labels(method, route)
        histogram.observe(seconds)


def route_template(scope: Scope) -> str:
    """The full path template of the matched route. FastAPI (0.165, pinned) resolves routes of included
    routers lazily: `scope["route"].path` then lacks the outer prefixes (/v1), and the full template is on
    the effective route context it keeps in the scope. tests/unit/test_http_metrics.py checks both."""
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        path = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
        if isinstance(path, str) and path:
            return path
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpMetricsMiddleware:
    """Counts and times every HTTP request; WebSocket and lifespan scopes pass straight through."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any response is answered 500 by the server
        elapsed: float | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            method = scope.get("method", "")
            self.metrics.observe(
                method if method in KNOWN_METHODS else "other",
                route_template(scope),
                status,
                elapsed if elapsed is not None else time.perf_counter() - started,
            )
