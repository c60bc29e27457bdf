"""Every metric named in the Grafana dashboard and the alert rules exists on a running service.

Starts the real `ledgerline gateway` (which runs the relay) and one worker of each kind (projections,
tickets, delivery)
on a temporary SQLite database and the embedded NATS (never the machine's shared server on 4222:
the services create their streams under the production names), scrapes /metrics of each, and
compares names. A panel or an alert on a name no service exposes would show nothing, or never fire.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.embedded.nats_server import EmbeddedNats
from services.embedded.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
READY_TIMEOUT = 60.0
WORKER_KINDS = ("projections", "tickets", "delivery")
# Delivery's notifier metrics exist only with a notifier configured; nothing is sent before traffic.
WORKER_ENV = {
    "delivery": {
        "LEDGERLINE_NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/never-called",
        "LEDGERLINE_NOTIFY_WEBHOOK_SECRET": "metrics-names-webhook-secret",
    }
}
# Series Prometheus makes itself, not scraped from a service.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
NAME = re.compile(r"\b((?:ledgerline|process)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def referenced_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (dashboard panel titles, alert names)."""
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in NAME.findall(target["expr"]):
                    used.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            for name in NAME.findall(rule["expr"]):
                used.setdefault(name, set()).add(f"alerts.yml: {rule['alert']}")
    return used


def exposed_names(exposition: str) -> set[str]:
    """Every series name a scrape can contain, from the `# TYPE` lines (present before any sample)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names.add(family)
            names.update(family + suffix for suffix in SUFFIXES.get(kind, ()))
    return names


class Service:
    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", command],
            env=env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._out.close()


@pytest.fixture
async def nats_url(tmp_path: Path) -> AsyncIterator[str]:
    async with EmbeddedNats(tmp_path / "broker") as server:
        yield server.url


@pytest.fixture
def services(tmp_path: Path, nats_url: str) -> Iterator[dict[str, str]]:
    """The gateway and one worker of each kind, running; name -> base URL of its /metrics."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
    base |= {
        "LEDGERLINE_DATA_DIR": str(tmp_path / "data"),
        "LEDGERLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}",
        "LEDGERLINE_BROKER_URL": nats_url,
        "LEDGERLINE_JWT_SECRET": "metrics-names-test-secret-0123456789",
        "LEDGERLINE_SHUTDOWN_TIMEOUT": "5",
        "LEDGERLINE_LOG_FORMAT": "json",
    }
    gateway_port = free_port()
    urls = {"gateway": f"http://127.0.0.1:{gateway_port}"}
    # The gateway first: all migrate on start, and SQLite is happier without the race; then each worker kind.
    running = [Service("gateway", base | {"LEDGERLINE_GATEWAY_PORT": str(gateway_port)}, tmp_path / "gateway.log")]
    try:
        wait_ready("gateway", urls["gateway"], running[0])
        for kind in WORKER_KINDS:
            port = free_port()
            urls[kind] = f"http://127.0.0.1:{port}"
            env = base | {"LEDGERLINE_WORKER_PORT": str(port)} | WORKER_ENV.get(kind, {})
            running.append(Service(kind, env, tmp_path / f"{kind}.log"))
            wait_ready(kind, urls[kind], running[-1])
        yield urls
    finally:
        for service in reversed(running):
            service.stop()


def wait_ready(name: str, url: str, service: Service) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            pytest.fail(f"{name} exited with {service.proc.returncode}:\n{service.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{name} was not ready within {READY_TIMEOUT} s:\n{service.log.read_text()[-3000:]}")


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{url}/metrics")
    response.raise_for_status()
    return response.text


def test_the_dashboard_and_the_alerts_name_metrics() -> None:
    used = referenced_names()
    assert "ledgerline_worker_dead_lettered_total" in used
    assert "ledgerline_relay_lag_events" in used


async def test_every_metric_in_the_dashboard_and_alerts_is_exposed(services: dict[str, str]) -> None:
    pages = await asyncio.gather(*(scrape(url) for url in services.values()))
    exposed = set().union(*(exposed_names(page) for page in pages)) | PROMETHEUS_OWN
    used = referenced_names()
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing, "named in deploy/ but exposed by no service:\n" + "\n".join(
        f"  {name}: {', '.join(where)}" for name, where in sorted(missing.items())
    )
    # The scrape really came from both kinds of service.
    assert "ledgerline_relay_published_total" in exposed and "ledgerline_worker_events_handled_total" in exposed
