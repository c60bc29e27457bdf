"""/readyz follows the database and the broker: 503 naming the dependency once it goes away, 200 again
once it is back, without a restart. For the gateway and for a worker (projections, /readyz on its
worker port), as real processes on the machine's PostgreSQL and NATS, each reached through a TCP proxy
that the test cuts (open connections dropped, new ones refused) or freezes (connections open, silent:
a network partition) and restores. While frozen, /readyz must still answer, within the probe timeout
of the Kubernetes manifests: a probe that hangs tells the orchestrator nothing and piles up."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import yaml
from conftest import NATS_URL, PG_HOST, PG_PORT, create_pg_database, drop_pg_database, require_server, unique_suffix
from helpers.service_procs import (
    ServiceProcess,
    drop_namespace,
    gateway_env,
    service_env,
    wait_status,
    worker_env,
)
from helpers.tcp_proxy import TcpProxy

from shared.store.migrate import migrate

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# An orchestrator probes every few seconds; the probe's own checks time out after 2 s (CHECK_TIMEOUT),
# and the NATS client retries every 2 s: well within this bound on a loaded machine.
DOWN_TIMEOUT = 20.0
BACK_TIMEOUT = 30.0
SECRET = "ops-readiness-secret-0123456789abcdef"


def probe_timeout() -> float:
    """timeoutSeconds of the gateway's readinessProbe in deploy/kubernetes/gateway.yaml."""
    for doc in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "gateway.yaml").read_text()):
        if doc and doc["kind"] == "Deployment":
            return float(doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["timeoutSeconds"])
    raise AssertionError("no gateway Deployment")


@dataclass
class Links:
    database: TcpProxy
    broker: TcpProxy
    database_url: str
    broker_url: str
    namespace: str


@pytest_asyncio.fixture
async def links() -> AsyncIterator[Links]:
    require_server("NATS", "127.0.0.1", 4222)
    name, direct_url = create_pg_database()
    migrate(direct_url)  # by the test, not through the proxy: the services then find the schema ready
    namespace = f"ops-{unique_suffix()}"
    nats_host, _, nats_port = NATS_URL.removeprefix("nats://").partition(":")
    async with TcpProxy(PG_HOST, PG_PORT) as db, TcpProxy(nats_host, int(nats_port)) as nats:
        database_url = direct_url.replace(f"@{PG_HOST}:{PG_PORT}/", f"@{db.address}/")
        try:
            yield Links(db, nats, database_url, f"nats://{nats.address}", namespace)
        finally:
            await db.close()
            await nats.close()
            drop_pg_database(name)
            await drop_namespace(NATS_URL, namespace)


async def cut_and_restore(http: httpx.AsyncClient, service: ServiceProcess, proxy: TcpProxy, check: str) -> None:
    await proxy.cut()
    down = await wait_status(http, service, 503, DOWN_TIMEOUT)
    assert check in down["down"], down
    assert down["checks"][check] != "ok"
    await proxy.restore()
    up = await wait_status(http, service, 200, BACK_TIMEOUT)
    assert up["status"] == "ready"
    assert set(up["checks"].values()) == {"ok"}, up


async def freeze_and_restore(http: httpx.AsyncClient, service: ServiceProcess, proxy: TcpProxy, check: str) -> None:
    """Every probe during the partition gets an answer within the probe timeout, 503 once the check
    has noticed (the first probe after the freeze was the one that used to hang)."""
    proxy.freeze()
    timeout = probe_timeout()
    answers = []
    deadline = time.monotonic() + DOWN_TIMEOUT
    while len([r for r in answers if r.status_code == 503]) < 3:
        assert time.monotonic() < deadline, [r.text for r in answers]
        try:
            answers.append(await http.get(f"{service.url}/readyz", timeout=timeout))
        except httpx.TimeoutException:
            raise AssertionError(f"/readyz gave no answer within the probe timeout ({timeout} s)") from None
    down = answers[-1].json()
    assert check in down["down"], down
    assert down["checks"][check].startswith("no answer within"), down
    await proxy.restore()
    await wait_status(http, service, 200, BACK_TIMEOUT)


@pytest.mark.parametrize("command", ["gateway", "projections"])
async def test_readyz_turns_unready_while_a_dependency_is_away_and_ready_when_it_returns(
    links: Links, tmp_path: Path, command: str
) -> None:
    base = service_env(links.database_url, links.broker_url, links.namespace, tmp_path / "data")
    env = gateway_env(base, SECRET) if command == "gateway" else worker_env(base)
    service = ServiceProcess(command, env, tmp_path).start()
    try:
        async with httpx.AsyncClient() as http:
            await service.ready(http)
            await cut_and_restore(http, service, links.database, "database")
            await cut_and_restore(http, service, links.broker, "broker")
            await freeze_and_restore(http, service, links.database, "database")
            await freeze_and_restore(http, service, links.broker, "broker")
            # Both at once, as when the network between the service and its servers fails.
            await links.database.cut()
            await links.broker.cut()
            down = await wait_status(http, service, 503, DOWN_TIMEOUT)
            assert {"database", "broker"} <= set(down["down"]), down
            await links.database.restore()
            await links.broker.restore()
            await wait_status(http, service, 200, BACK_TIMEOUT)
            assert service.alive(), service.tail()
    finally:
        service.stop()
