"""The support desk's stack for HTTP and WebSocket tests: one real uvicorn gateway (with its relay),
the projections worker and the tickets worker (in this process, or in a child process that a test
kills), on a real database and NATS in a namespace of the test's own.

People are described once (roles, segment, lines) and every request carries a token with their
claims, as the host system would issue it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from chat_support import FAST, PARTITIONS, SECRET, token
from conftest import NATS_URL, pg_database, require_server, unique_suffix
from helpers.processes import Child
from realtime_support import Client, _serve

from services.common.worker_service import WorkerContext
from services.embedded.ports import free_port
from services.gateway.app import create_app
from services.projections.handlers import KIND as PROJECTIONS
from services.projections.handlers import projections_handler
from services.tickets.handlers import KIND as TICKETS
from services.tickets.handlers import TYPES as TICKET_TYPES
from services.tickets.main import TicketsService
from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import Worker
from shared.config import Settings, load_settings
from shared.events.envelope import RecordedEvent
from shared.metrics import MetricsRegistry
from shared.store.engine import create_engine
from shared.store.migrate import migrate

# SLA targets of most tests: long enough that no clock breaches while a test runs.
CALM_SLA = {"calendar": "24/7", "warning_lead_seconds": 0, "targets": {"default": {"first_response": 3600}}}


def fast_sla(first_response: int = 2, warning: int = 0) -> dict[str, Any]:
    return {
        "calendar": "24/7",
        "warning_lead_seconds": warning,
        "targets": {"default": {"first_response": first_response}},
    }


@dataclass
class Desk:
    http: httpx.AsyncClient
    port: int
    app: Any
    settings: Settings
    database_url: str
    broker_url: str
    namespace: str
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    tickets_metrics: MetricsRegistry = field(default_factory=MetricsRegistry)
    """The in-process tickets worker's metrics (its /metrics in production)."""

    def claims(self, user: str) -> dict[str, Any]:
        return self.people.get(user, {"roles": ["user"], "segment": "customers"})

    def token(self, user: str) -> str:
        return token(user, **self.claims(user))

    async def call(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def post(self, path: str, user: str, body: dict[str, Any]) -> httpx.Response:
        return await self.call("POST", path, user, json=body)

    def person(self, user: str, roles: list[str], segment: str | None = None, lines: list[int] = ()) -> None:  # type: ignore[assignment]
        claims: dict[str, Any] = {"roles": roles, "lines": list(lines)}
        if segment is not None:
            claims["segment"] = segment
        self.people[user] = claims

    async def agent(self, user: str, segment: str | None, lines: list[int], *, available: bool = True) -> None:
        """An agent known to the desk (their first request records their claims), available or not."""
        self.person(user, ["agent"], segment, lines)
        r = await self.post("/v1/support/availability", user, {"available": available})
        assert r.status_code == 200, r.text

    def customer(self, user: str, segment: str = "customers") -> None:
        self.person(user, ["user"], segment)

    async def support_conversation(self, user: str) -> str:
        r = await self.post("/v1/support/conversation", user, {})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["conversation_id"])

    async def say(self, user: str, conversation_id: str, text: str) -> dict[str, Any]:
        body = {"client_msg_id": uuid.uuid4().hex, "text": text}
        r = await self.post(f"/v1/conversations/{conversation_id}/messages", user, body)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    async def events(self, *types: str) -> list[RecordedEvent]:
        store = self.app.state.store
        found: list[RecordedEvent] = []
        after = 0
        while batch := await store.read_all(after_position=after, limit=1000):
            found.extend(e for e in batch if not types or e.type in types)
            after = batch[-1].position
        return found

    async def ticket_events(self, ticket_id: str) -> list[RecordedEvent]:
        records: list[RecordedEvent] = await self.app.state.store.read_stream(f"ticket-{ticket_id}")
        return records

    async def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll the async `check` until it answers something truthy; that answer."""
        deadline = time.monotonic() + timeout
        while True:
            found = await check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.05)

    async def ticket_of(self, conversation_id: str) -> str:
        """The id of the (latest) ticket opened from this support conversation, once it exists."""

        async def opened() -> str | None:
            found = [e for e in await self.events("TicketOpened") if e.payload["conversation_id"] == conversation_id]
            return str(found[-1].payload["ticket_id"]) if found else None

        result: str = await self.wait_for(f"a ticket from conversation {conversation_id}", opened)
        return result

    async def assignee(self, ticket_id: str) -> str:
        """The ticket's agent on its current line, once it has one (escalation clears the assignee)."""

        async def assigned() -> str | None:
            current = None
            for e in await self.ticket_events(ticket_id):
                if e.type == "TicketAssigned":
                    current = str(e.payload["agent_id"])
                elif e.type in ("TicketEscalated", "TicketUnassigned"):
                    current = None
            return current

        result: str = await self.wait_for(f"ticket {ticket_id} assigned", assigned)
        return result

    async def first_assignee(self, ticket_id: str) -> str:
        """The agent the ticket was first assigned to: unlike `assignee`, still answerable after a
        short SLA has already escalated the ticket by the time a loaded machine polls."""

        async def assigned() -> str | None:
            for e in await self.ticket_events(ticket_id):
                if e.type == "TicketAssigned":
                    return str(e.payload["agent_id"])
            return None

        result: str = await self.wait_for(f"ticket {ticket_id} first assigned", assigned)
        return result

    async def joined(self, agent: str, conversation_id: str) -> None:
        """Until the agent sees the support conversation (they joined it on assignment)."""

        async def sees() -> bool:
            return (await self.call("GET", f"/v1/conversations/{conversation_id}", agent)).status_code == 200

        await self.wait_for(f"{agent} in conversation {conversation_id}", sees)

    @asynccontextmanager
    async def socket(self, user: str) -> AsyncIterator[Client]:
        url = f"ws://127.0.0.1:{self.port}/v1/ws?access_token={self.token(user)}"
        async with websockets.connect(url, open_timeout=10) as ws:
            yield Client(ws)

    async def connect(self, service: str) -> ConsumingBroker:
        return await connect_broker(
            self.broker_url, namespace=self.namespace, partitions=PARTITIONS, source=f"ledgerline/{service}"
        )

    @asynccontextmanager
    async def tickets_worker(self) -> AsyncIterator[TicketsService]:
        """The tickets worker in this process (handler, timer loop, presence)."""
        broker = await self.connect(TICKETS)
        engine = create_engine(self.database_url).execution_options(sqlite_begin="IMMEDIATE")
        metrics = self.tickets_metrics = MetricsRegistry()
        service = TicketsService(self.settings, broker)
        handler = service.handler(WorkerContext(self.settings, engine, metrics))
        try:
            async with Worker(TICKETS, TICKET_TYPES, handler, broker, engine, metrics=metrics, options=FAST):
                yield service
        finally:
            await service.close()
            await broker.close()
            await engine.dispose()

    def tickets_process(self, log_dir: Path, name: str = "tickets") -> Child:
        assert self.settings.sla_policy_file is not None
        args = ["--broker", self.broker_url, "--namespace", self.namespace, "--db", self.database_url]
        args += ["--sla", str(self.settings.sla_policy_file), "--partitions", str(PARTITIONS)]
        return Child(name, "tickets_worker.py", args, log_dir)


@asynccontextmanager
async def desk_stack(
    database_url: str,
    broker_url: str,
    tmp_path: Path,
    *,
    sla: dict[str, Any] | None = None,
    worker: bool = True,
    settings: dict[str, Any] | None = None,
) -> AsyncIterator[Desk]:
    """Gateway + projections (+ the tickets worker in this process unless `worker=False`);
    `settings`: more settings for every service (say, `support_agent_capacity`)."""
    migrate(database_url)
    policy = tmp_path / "sla.json"
    policy.write_text(json.dumps(sla or CALM_SLA))
    namespace = f"t{unique_suffix()}"
    loaded = load_settings(
        {}, data_dir=tmp_path, database_url=database_url, broker_url=broker_url, jwt_secret=SECRET,
        partitions=PARTITIONS, rate_limit_per_minute=0, sla_policy_file=policy, **(settings or {}),
    )  # fmt: skip

    async def connect(settings: Settings, service: str) -> ConsumingBroker:
        return await connect_broker(
            broker_url, namespace=namespace, partitions=PARTITIONS, source=f"ledgerline/{service}"
        )

    app = create_app(loaded, connect=connect)
    port = free_port()
    server, task = await _serve(app, port)
    brokers: list[ConsumingBroker] = []
    engine = create_engine(database_url).execution_options(sqlite_begin="IMMEDIATE")
    try:
        async with AsyncExitStack() as stack:
            broker = await connect(settings, PROJECTIONS)
            brokers.append(broker)
            metrics = MetricsRegistry()
            handler = projections_handler(engine, PARTITIONS, metrics)
            await stack.enter_async_context(
                Worker(PROJECTIONS, None, handler, broker, engine, metrics=metrics, options=FAST)
            )
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60))
            desk = Desk(http, port, app, loaded, database_url, broker_url, namespace)
            if worker:
                await stack.enter_async_context(desk.tickets_worker())
            yield desk
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        for b in brokers:
            await b.delete_topology((PROJECTIONS, TICKETS))  # type: ignore[attr-defined]
            await b.close()
        await engine.dispose()


@asynccontextmanager
async def desk_on(backend: str, nats_url: str, tmp_path: Path, **kwargs: Any) -> AsyncIterator[Desk]:
    """`sqlite`: a file database and the embedded NATS; `postgres`: a fresh database and the machine's NATS."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"
        async with desk_stack(url, nats_url, tmp_path, **kwargs) as d:
            yield d
        return
    require_server("NATS", "127.0.0.1", 4222)
    with pg_database() as url:
        async with desk_stack(url, NATS_URL, tmp_path, **kwargs) as d:
            yield d
