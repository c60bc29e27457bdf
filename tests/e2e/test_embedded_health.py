"""/healthz, /readyz, /metrics and problem+json errors, on the gateway app and a worker's health app."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from services.common.health import Readiness
from services.common.health_server import create_health_app, service_metrics
from services.gateway.app import create_app
from shared.config import load_settings


async def ok() -> bool:
    return True


async def refuses() -> bool:
    raise ConnectionRefusedError("connection refused")


def gateway(tmp_path: Path, readiness: Readiness | None = None) -> FastAPI:
    return create_app(
        load_settings({}, data_dir=tmp_path, jwt_secret="health-test-secret-0123456789abcdef"), readiness=readiness
    )


def client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_gateway_is_ready_when_its_database_answers(tmp_path: Path) -> None:
    app = gateway(tmp_path)
    # The lifespan opens the real SQLite file; no broker URL is set, so no broker is checked.
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readyz_answers_503_naming_what_is_down(tmp_path: Path) -> None:
    readiness = Readiness()
    readiness.add("database", ok)
    readiness.add("broker", refuses)
    async with client(gateway(tmp_path, readiness)) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 503 and body["down"] == ["broker"]
    assert body["checks"] == {"database": "ok", "broker": "ConnectionRefusedError: connection refused"}
    assert "broker" in body["detail"]


async def test_a_stopping_service_is_not_ready() -> None:
    readiness = Readiness()
    readiness.add("database", ok)
    readiness.mark_stopping()
    async with client(create_health_app(readiness, service_metrics())) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["service"]


async def test_worker_health_app_serves_the_three_endpoints() -> None:
    readiness = Readiness()
    readiness.add("database", ok)
    metrics = service_metrics()
    metrics.counter("probe", "a test counter").inc()
    async with client(create_health_app(readiness, metrics)) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).json()["checks"] == {"database": "ok"}
        text = (await http.get("/metrics")).text
        missing = await http.get("/nope")
    assert "ledgerline_probe_total 1.0" in text
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


class Body(BaseModel):
    text: str


async def test_gateway_errors_are_problem_json_without_internals(tmp_path: Path) -> None:
    app = gateway(tmp_path)

    @app.post("/echo")
    async def echo(body: Body) -> Body:
        return body

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    async with client(app) as http:
        missing = await http.get("/v1/nothing-here")
        invalid = await http.post("/echo", json={"text": 5})
        failed = await http.get("/boom")
    assert missing.status_code == 404
    assert missing.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
    }
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert invalid.json()["errors"][0]["loc"] == ["body", "text"]
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert "secret" not in failed.text and "Traceback" not in failed.text
