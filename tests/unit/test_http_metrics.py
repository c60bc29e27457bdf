"""The gateway's HTTP metrics middleware on a real FastAPI app: route templates, never raw paths."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI, HTTPException

from services.gateway.http_metrics import HttpMetrics, HttpMetricsMiddleware
from shared.metrics import MetricsRegistry


def app_with_metrics() -> tuple[FastAPI, MetricsRegistry]:
    metrics = MetricsRegistry()
    app = FastAPI()
    # Nested routers with prefixes, as the gateway's /v1 API is built.
    v1, conversations = APIRouter(prefix="/v1"), APIRouter(prefix="/conversations")

    @conversations.get("/{conversation_id}/messages")
    async def messages(conversation_id: str) -> dict[str, str]:
        if conversation_id == "missing":
            raise HTTPException(404)
        return {"id": conversation_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler bug")

    v1.include_router(conversations)
    app.include_router(v1)

    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(metrics))
    return app, metrics


def sample(metrics: MetricsRegistry, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_metric_families_exist_before_any_request() -> None:
    _, metrics = app_with_metrics()
    text = metrics.render()[0].decode()
    assert "# TYPE ledgerline_http_requests_total counter" in text
    assert "# TYPE ledgerline_http_request_seconds histogram" in text


async def test_requests_are_counted_by_route_template_status_and_method() -> None:
    app, metrics = app_with_metrics()
    route = "/v1/conversations/{conversation_id}/messages"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/v1/conversations/a1/messages")).status_code == 200
        assert (await http.get("/v1/conversations/b2/messages")).status_code == 200
        assert (await http.get("/v1/conversations/missing/messages")).status_code == 404
        assert (await http.get("/no/such/path/123")).status_code == 404
    assert sample(metrics, "ledgerline_http_requests_total", method="GET", route=route, status="200") == 2
    assert sample(metrics, "ledgerline_http_requests_total", method="GET", route=route, status="404") == 1
    assert sample(metrics, "ledgerline_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert sample(metrics, "ledgerline_http_request_seconds_count", method="GET", route=route) == 3
    exposition = metrics.render()[0].decode()
    assert "a1" not in exposition and "/no/such/path" not in exposition


async def test_an_unhandled_exception_counts_as_500() -> None:
    app, metrics = app_with_metrics()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/boom")).status_code == 500
    assert sample(metrics, "ledgerline_http_requests_total", method="GET", route="/boom", status="500") == 1
