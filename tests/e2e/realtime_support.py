"""The realtime stack for WebSocket tests: two real uvicorn gateways on two ports sharing one database
(SQLite unless given) and one broker (the embedded NATS, or the machine's RabbitMQ; in a namespace of the
test's own), plus the projections and delivery workers on the real worker runtime, all in the test's
event loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from chat_support import FAST, PARTITIONS, SECRET, token
from conftest import RABBIT_URL, pg_database, require_server, unique_suffix

from services.delivery.fanout import CONVERSATION_TYPES
from services.delivery.handlers import KIND as DELIVERY
from services.delivery.handlers import delivery_handler
from services.delivery.notifiers.dispatch import DispatchPolicy
from services.delivery.notifiers.port import Notifier
from services.delivery.service import DeliveryRealtime
from services.embedded.ports import free_port
from services.gateway.app import create_app
from services.projections.handlers import KIND as PROJECTIONS
from services.projections.handlers import projections_handler
from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import Worker
from shared.config import Settings, load_settings
from shared.metrics import MetricsRegistry
from shared.store.engine import create_engine
from shared.store.migrate import migrate


@dataclass
class Client:
    ws: websockets.ClientConnection

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, type_: str | None = None, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next frame of `type_` matching `match` (others are skipped: presence, receipts …)."""
        async with asyncio.timeout(timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if (type_ is None or frame["type"] == type_) and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    async def quiet(self, type_: str, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Every frame of `type_` that arrives within `seconds`."""
        got: list[dict[str, Any]] = []
        with_timeout = asyncio.timeout(seconds)
        try:
            async with with_timeout:
                while True:
                    frame = json.loads(await self.ws.recv())
                    if frame["type"] == type_:
                        got.append(frame)
        except TimeoutError:
            return got


@dataclass
class RealtimeStack:
    ports: list[int]
    http: httpx.AsyncClient
    settings: Settings
    apps: list[Any]
    servers: list[uvicorn.Server]
    database_url: str = ""
    namespace: str = ""

    def url(self, gateway: int, user: str | None = None) -> str:
        query = f"?access_token={token(user)}" if user else ""
        return f"ws://127.0.0.1:{self.ports[gateway]}/v1/ws{query}"

    @asynccontextmanager
    async def connect(self, gateway: int, user: str, **options: Any) -> AsyncIterator[Client]:
        async with websockets.connect(self.url(gateway, user), open_timeout=10, **options) as ws:
            yield Client(ws)

    async def call(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token(user)}"}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def conversation(self, creator: str, kind: str, members: list[str]) -> str:
        r = await self.call("POST", "/v1/conversations", creator, json={"kind": kind, "members": members})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["conversation_id"])

    async def send(self, user: str, conversation_id: str, text: str) -> dict[str, Any]:
        body = {"client_msg_id": uuid.uuid4().hex, "text": text}
        r = await self.call("POST", f"/v1/conversations/{conversation_id}/messages", user, json=body)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task


@asynccontextmanager
async def realtime_stack(
    tmp_path: Path,
    broker_url: str,
    *,
    gateways: int = 2,
    notifier: Notifier | None = None,
    policy: DispatchPolicy | None = None,
    database_url: str | None = None,
    workers: tuple[str, ...] = (PROJECTIONS, DELIVERY),
) -> AsyncIterator[RealtimeStack]:
    """`broker_url`: NATS or RabbitMQ (its names in a namespace of the stack's own, deleted at the end).
    `database_url` defaults to a SQLite file in tmp_path (the conftest `database_url` fixture gives
    both databases). `workers`: the worker kinds to run (a test of what reaches sockets without the
    delivery worker leaves it out)."""
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"
    migrate(url)
    namespace = f"t{unique_suffix()}"
    settings = load_settings(
        {}, data_dir=tmp_path, database_url=url, broker_url=broker_url, jwt_secret=SECRET, partitions=PARTITIONS,
        rate_limit_per_minute=0,
    )  # fmt: skip

    async def connect(settings: Settings, service: str) -> ConsumingBroker:
        source = f"ledgerline/{service}"
        return await connect_broker(broker_url, namespace=namespace, partitions=PARTITIONS, source=source)

    brokers: list[ConsumingBroker] = []
    engine = create_engine(url).execution_options(sqlite_begin="IMMEDIATE")
    async with AsyncExitStack() as stack:
        servers, tasks, apps, ports = [], [], [], []
        for _ in range(gateways):
            app = create_app(settings, connect=connect)
            port = free_port()
            server, task = await _serve(app, port)
            servers.append(server)
            tasks.append(task)
            apps.append(app)
            ports.append(port)
        for kind in workers:
            broker = await connect(settings, kind)
            brokers.append(broker)
            metrics = MetricsRegistry()
            if kind == PROJECTIONS:
                handler = projections_handler(engine, PARTITIONS, metrics)
            else:
                realtime = DeliveryRealtime(broker, notifier, policy)
                await realtime.start()
                stack.push_async_callback(realtime.close)
                handler = delivery_handler(realtime, engine, PARTITIONS, metrics)
            types = None if kind == PROJECTIONS else CONVERSATION_TYPES  # as `ledgerline delivery` consumes
            await stack.enter_async_context(Worker(kind, types, handler, broker, engine, metrics=metrics, options=FAST))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30))
        try:
            yield RealtimeStack(ports, http, settings, apps, servers, url, namespace)
        finally:
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
    for broker in brokers:
        await broker.delete_topology(workers)  # type: ignore[attr-defined]
        await broker.close()
    await engine.dispose()


BACKENDS = ["embedded-nats+sqlite", "rabbitmq+postgres"]
"""Test ids of `realtime_on`: the default pair, and the machine's RabbitMQ with a fresh PostgreSQL database."""


@asynccontextmanager
async def realtime_on(backend: str, embedded_nats: str, tmp_path: Path, **options: Any) -> AsyncIterator[RealtimeStack]:
    """`realtime_stack` on one of BACKENDS (the servers of `rabbitmq+postgres` skip, or fail in CI, when
    they are not running)."""
    if backend == "embedded-nats+sqlite":
        async with realtime_stack(tmp_path, embedded_nats, **options) as s:
            yield s
        return
    assert backend == "rabbitmq+postgres", backend
    require_server("RabbitMQ", "127.0.0.1", 5672)
    with pg_database() as url:
        async with realtime_stack(tmp_path, RABBIT_URL, database_url=url, **options) as s:
            yield s
