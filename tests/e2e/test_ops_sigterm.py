"""SIGTERM under load, on real processes (the machine's NATS in a namespace of the test's).

On PostgreSQL and on one SQLite file shared by the processes.

Gateway: senders post messages concurrently over HTTP; the gateway gets SIGTERM mid-load. It stops
within LEDGERLINE_SHUTDOWN_TIMEOUT (exit 0: past the deadline the service exits 1); every request
answered 2xx is in the event store exactly once; a request cut by the stop either failed visibly
(an error or a non-2xx answer) or is stored, never twice; after a restart, resending the failed ones
with the same client_msg_id stores each exactly once.

Worker: the projections worker gets SIGTERM while messages flow, is restarted, and the read model
ends up with every message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import pytest_asyncio
from chat_support import token
from conftest import NATS_URL, create_pg_database, drop_pg_database, require_server, unique_suffix
from helpers.service_procs import ServiceProcess, drop_namespace, gateway_env, service_env, wait_status, worker_env
from helpers.tcp_proxy import TcpProxy

from shared.store.migrate import migrate

pytestmark = pytest.mark.slow

SECRET = "ops-sigterm-secret-0123456789abcdef"
SHUTDOWN_TIMEOUT = 5.0
# Hang guard only: the service's own deadline is checked by its exit code (1 when it passed).
EXIT_GUARD = SHUTDOWN_TIMEOUT + 15.0
SENDERS = 8
PER_SENDER_MAX = 150
LOAD_BEFORE_STOP = 60  # messages acknowledged before the SIGTERM
FLOW_TIMEOUT = 60.0


@dataclass
class Db:
    url: str

    def _rows(self, sql: str) -> list[tuple[object, ...]]:
        if self.url.startswith("sqlite"):
            path = self.url.partition(":///")[2]
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as lite:
                return lite.execute(sql).fetchall()
        with psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            return conn.execute(sql).fetchall()

    def message_events(self) -> Counter[str]:
        """client_msg_id -> how many MessageSent events carry it."""
        rows = self._rows("SELECT payload FROM events WHERE type = 'MessageSent'")
        return Counter(_json(payload)["client_msg_id"] for (payload,) in rows)

    def read_model(self) -> tuple[list[str], set[str]]:
        """The message ids of the read model's rows (duplicates kept) and of the MessageSent events."""
        rows = [str(r[0]) for r in self._rows("SELECT message_id FROM rm_messages")]
        events = self._rows("SELECT payload FROM events WHERE type = 'MessageSent'")
        return rows, {_json(payload)["message_id"] for (payload,) in events}


def _json(value: object) -> dict[str, str]:
    result: dict[str, str] = json.loads(value) if isinstance(value, str) else value  # type: ignore[assignment]
    return result


@dataclass
class Stack:
    db: Db
    base_env: dict[str, str]
    tmp: Path
    services: list[ServiceProcess] = field(default_factory=list)

    def service(self, command: str, name: str | None = None, env: dict[str, str] | None = None) -> ServiceProcess:
        if env is None:
            env = gateway_env(self.base_env, SECRET) if command == "gateway" else worker_env(self.base_env)
        s = ServiceProcess(command, env, self.tmp, name=name)
        self.services.append(s)
        return s.start()


@pytest_asyncio.fixture(params=["postgres", "sqlite"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """PostgreSQL, or one SQLite file shared by the processes (as `ledgerline up` runs them)."""
    require_server("NATS", "127.0.0.1", 4222)
    name = None
    if request.param == "postgres":
        name, url = create_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"
    migrate(url)
    namespace = f"ops-{unique_suffix()}"
    base = service_env(url, NATS_URL, namespace, tmp_path / "data", shutdown_timeout=SHUTDOWN_TIMEOUT)
    s = Stack(Db(url), base, tmp_path)
    try:
        yield s
    finally:
        for service in s.services:
            service.stop()
        if name is not None:
            drop_pg_database(name)
        await drop_namespace(NATS_URL, namespace)


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, secret=SECRET)}"}


async def conversations(http: httpx.AsyncClient, gateway: ServiceProcess, count: int) -> list[str]:
    ids = []
    for i in range(count):
        r = await http.post(
            f"{gateway.url}/v1/conversations", headers=auth(f"sender{i}"), json={"kind": "direct", "members": ["ops"]}
        )
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["conversation_id"])
    return ids


@dataclass
class Outcomes:
    acked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


async def send(http: httpx.AsyncClient, url: str, user: str, cid: str, client_msg_id: str) -> bool:
    """True when the gateway answered 2xx; False when the request failed visibly."""
    try:
        r = await http.post(
            f"{url}/v1/conversations/{cid}/messages",
            headers=auth(user),
            json={"client_msg_id": client_msg_id, "text": f"load {client_msg_id}"},
        )
    except httpx.TransportError:
        return False
    return 200 <= r.status_code < 300


async def sender(
    http: httpx.AsyncClient, url: str, user: str, cid: str, out: Outcomes, stop: asyncio.Event, sent: dict[str, str]
) -> None:
    """Sends until its first failure (the gateway stopping), `stop`, or PER_SENDER_MAX messages."""
    for _ in range(PER_SENDER_MAX):
        if stop.is_set():
            return
        client_msg_id = uuid.uuid4().hex
        sent[client_msg_id] = cid
        if await send(http, url, user, cid, client_msg_id):
            out.acked.append(client_msg_id)
        else:
            out.failed.append(client_msg_id)
            return


async def eventually(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.2)


def stopped_in_time(service: ServiceProcess) -> None:
    code = service.wait(EXIT_GUARD)
    events = [r["event"] for r in service.records()]
    assert code == 0, f"exit {code}\n{service.tail()}"
    assert "service_stopped" in events and "service_stop_deadline_passed" not in events, service.tail()


async def test_sigterm_to_the_gateway_under_load_loses_and_doubles_nothing(stack: Stack) -> None:
    gateway = stack.service("gateway")
    gateway_settings = gateway._env
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=SENDERS)) as http:
        await gateway.ready(http)
        cids = await conversations(http, gateway, SENDERS)
        out, stop, sent = Outcomes(), asyncio.Event(), {}
        tasks = [
            asyncio.create_task(sender(http, gateway.url, f"sender{i}", cid, out, stop, sent))
            for i, cid in enumerate(cids)
        ]
        await eventually(lambda: len(out.acked) >= LOAD_BEFORE_STOP or all(t.done() for t in tasks), 60, "load")
        assert not out.failed, "requests failed before the SIGTERM"
        gateway.terminate()
        await asyncio.gather(*tasks)
        stopped_in_time(gateway)

    stored = stack.db.message_events()
    assert len(out.acked) >= LOAD_BEFORE_STOP
    assert out.failed, "the SIGTERM came after the senders were done: no request was in flight"
    doubled = {m: n for m, n in stored.items() if n != 1}
    assert not doubled, f"stored more than once: {doubled}"
    assert set(out.acked) <= set(stored), "acknowledged but not stored: " + str(set(out.acked) - set(stored))
    assert set(stored) <= set(sent), "stored but never sent"

    # The same gateway again (same port and settings); the senders retry what failed, same client_msg_id.
    restarted = stack.service("gateway", name="gateway-restarted", env=gateway_settings)
    async with httpx.AsyncClient(timeout=30) as http:
        await restarted.ready(http)
        for client_msg_id in out.failed:
            user = f"sender{cids.index(sent[client_msg_id])}"
            assert await send(http, restarted.url, user, sent[client_msg_id], client_msg_id)
    stored = stack.db.message_events()
    assert set(stored) == set(out.acked) | set(out.failed)
    assert set(stored.values()) == {1}, {m: n for m, n in stored.items() if n != 1}


async def test_sigterm_to_the_projections_worker_under_flow_keeps_every_message_once(stack: Stack) -> None:
    gateway = stack.service("gateway")
    worker = stack.service("projections")
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=SENDERS)) as http:
        await gateway.ready(http)
        await worker.ready(http)
        cids = await conversations(http, gateway, SENDERS)
        out, stop, sent = Outcomes(), asyncio.Event(), {}
        tasks = [
            asyncio.create_task(sender(http, gateway.url, f"sender{i}", cid, out, stop, sent))
            for i, cid in enumerate(cids)
        ]
        await eventually(lambda: len(stack.db.read_model()[0]) >= LOAD_BEFORE_STOP, FLOW_TIMEOUT, "projection")
        worker.terminate()
        await asyncio.to_thread(stopped_in_time, worker)
        # Messages keep coming while no projections worker runs.
        before = len(out.acked)
        await eventually(lambda: len(out.acked) >= before + 20 or all(t.done() for t in tasks), 60, "more load")
        restarted = stack.service("projections", name="projections-restarted", env=worker._env)
        await wait_status(http, restarted, 200, 60)
        stop.set()
        await asyncio.gather(*tasks)
    assert not out.failed, "the gateway failed requests while only the worker was restarted"
    acked = {str(m) for m in out.acked}
    assert len(acked) > before

    def caught_up() -> bool:
        rows, events = stack.db.read_model()
        return len(rows) >= len(events) == len(acked)

    await eventually(caught_up, FLOW_TIMEOUT, "the restarted worker to catch up")
    rows, events = stack.db.read_model()
    assert sorted(rows) == sorted(events), "the read model differs from the events"
    assert len(rows) == len(set(rows)) == len(acked)
    failed = [r for s in (worker, restarted) for r in s.records() if r.get("level") == "error"]
    assert not failed, failed[:3]


@pytest.mark.parametrize("command", ["gateway", "projections"])
async def test_sigterm_while_waiting_for_the_broker_at_start_stops_in_time(stack: Stack, command: str) -> None:
    """A service started before its broker is reachable waits for it (unready); an orchestrator that
    gives up on it sends SIGTERM, and the service must stop within its deadline then too."""
    async with TcpProxy("127.0.0.1", 4222) as unreachable:
        await unreachable.cut()  # nothing listens: connections are refused
        env = stack.base_env | {"LEDGERLINE_BROKER_URL": f"nats://{unreachable.address}"}
        env = gateway_env(env, SECRET) if command == "gateway" else worker_env(env)
        service = stack.service(command, env=env)
        async with httpx.AsyncClient() as http:
            if command == "projections":  # its health server answers while it waits
                body = await wait_status(http, service, 503, 60)
                assert body["checks"]["worker"] != "ok"
            else:
                await eventually(lambda: "nats: encountered error" in service.log.read_text(), 60, "a connect attempt")
        service.terminate()
        await asyncio.to_thread(stopped_in_time, service)
    # Only the connect attempts are errors: the stop itself is an orderly one.
    errors = [r for r in service.records() if r["level"] == "error" and r["event"] != "nats: encountered error"]
    assert not errors, errors
