"""The chat stack in one process for HTTP tests: the gateway app (with its relay) through
httpx.ASGITransport and its lifespan, plus the projections worker on the real worker runtime, on a
real database and a real NATS (embedded, or the machine's with a namespace of the test's own so
production names on the shared server are never touched)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from conftest import NATS_URL, pg_database, require_server, unique_suffix

from services.embedded.nats_server import EmbeddedNats
from services.gateway.app import create_app
from services.projections.handlers import KIND, projections_handler
from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.config import Settings, load_settings
from shared.metrics import MetricsRegistry
from shared.store.engine import create_engine
from shared.store.migrate import migrate

SECRET = "chat-api-test-secret-0123456789abcdef"
PARTITIONS = 4
FILE_LIMIT = 64 * 1024  # small, so that an oversize upload is cheap to send
FAST = WorkerOptions(
    batch_size=256,
    retry=RetryPolicy(max_deliver=5, backoff_base=0.02, backoff_max=0.2),
    lease_ttl=3.0,
    fetch_wait=0.1,
)


def token(user: str, name: str | None = None, *, ttl: int = 3600, secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": user, "name": name or user.title(), "roles": ["user"], "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def auth(user: str, name: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, name)}"}


@dataclass
class ChatStack:
    http: httpx.AsyncClient
    app: Any
    settings: Settings
    names: dict[str, str] = field(default_factory=dict)
    """The name each user's tokens carry (a token with another name would change the directory)."""

    def headers(self, user: str, name: str | None = None) -> dict[str, str]:
        if name is not None:
            self.names[user] = name
        return auth(user, self.names.get(user))

    async def head(self) -> int:
        return (await self.app.state.store.head()).position

    async def call(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers(user), **kwargs)

    async def conversation(self, creator: str, kind: str, members: list[str], **fields: Any) -> str:
        r = await self.call("POST", "/v1/conversations", creator, json={"kind": kind, "members": members, **fields})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["conversation_id"])

    async def send(self, user: str, conversation_id: str, text: str, **fields: Any) -> dict[str, Any]:
        body = {"client_msg_id": fields.pop("client_msg_id", uuid.uuid4().hex), "text": text, **fields}
        r = await self.call("POST", f"/v1/conversations/{conversation_id}/messages", user, json=body)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result


@asynccontextmanager
async def chat_stack(database_url: str, broker_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[ChatStack]:
    """The gateway and a projections worker on `database_url` and `broker_url`, in a namespace of their
    own (deleted at the end)."""
    migrate(database_url)
    namespace = f"t{unique_suffix()}"
    settings = load_settings(
        {},
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=broker_url,
        jwt_secret=SECRET,
        partitions=PARTITIONS,
        **({"rate_limit_per_minute": 0, "max_file_size": FILE_LIMIT} | overrides),
    )

    async def connect(settings: Settings, service: str) -> ConsumingBroker:
        source = f"ledgerline/{service}"
        return await connect_broker(broker_url, namespace=namespace, partitions=PARTITIONS, source=source)

    app = create_app(settings, connect=connect)
    broker = await connect(settings, "projections")
    engine = create_engine(database_url).execution_options(sqlite_begin="IMMEDIATE")
    metrics = MetricsRegistry()
    handler = projections_handler(engine, PARTITIONS, metrics)
    worker = Worker(KIND, None, handler, broker, engine, metrics=metrics, options=FAST)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            app.router.lifespan_context(app),
            worker,
            httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as http,
        ):
            yield ChatStack(http, app, settings)
    finally:
        await broker.delete_topology((KIND,))  # type: ignore[attr-defined]
        await broker.close()
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedded_nats(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One embedded NATS server per test module (each test still gets its own namespace)."""
    async with EmbeddedNats(tmp_path_factory.mktemp("nats")) as nats:
        yield nats.url


@asynccontextmanager
async def stack_on(backend: str, nats_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[ChatStack]:
    """`sqlite`: a file database and the embedded NATS; `postgres`: a fresh database on the machine's
    PostgreSQL and the machine's NATS (skipped, or failed in CI, when they are not running)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"
        async with chat_stack(url, nats_url, tmp_path, **overrides) as s:
            yield s
        return
    require_server("NATS", "127.0.0.1", 4222)
    with pg_database() as url:
        async with chat_stack(url, NATS_URL, tmp_path, **overrides) as s:
            yield s


@pytest_asyncio.fixture(params=["sqlite", "postgres"], loop_scope="module")
async def stack(request: pytest.FixtureRequest, embedded_nats: str, tmp_path: Path) -> AsyncIterator[ChatStack]:
    async with stack_on(request.param, embedded_nats, tmp_path) as s:
        yield s
