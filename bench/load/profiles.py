"""The stacks a load run measures, each started by `ledgerline up` (the supervisor and its services as
child processes) in a temporary data directory:

- embedded: SQLite + the embedded NATS that `up` starts;
- pg-nats: a fresh database on the machine's PostgreSQL + the machine's NATS, in a broker namespace
  of the run's own (LEDGERLINE_BROKER_NAMESPACE: the contract's stream names are never touched);
- pg-rabbit: the same on the machine's RabbitMQ.

The database and the namespace are dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.load.resources import children
from services.embedded.ports import free_port
from shared.broker.factory import connect_broker
from shared.config import Settings

PROFILES = ("embedded", "pg-nats", "pg-rabbit")
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}
NATS_URL = os.environ.get("LOAD_NATS_URL", "nats://127.0.0.1:4222")
RABBIT_URL = os.environ.get("LOAD_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
START_TIMEOUT = 180.0  # `up` waits up to 90 s per service on a busy machine
PARTITIONS = int(os.environ.get("LEDGERLINE_PARTITIONS", Settings.model_fields["partitions"].default))
WORKER_KINDS = ("projections", "delivery", "tickets")  # the queues a RabbitMQ namespace holds
SECRET = "load-bench-secret-0123456789abcdef012345"


@dataclass
class Stack:
    profile: str
    url: str
    secret: str
    supervisor: int
    services: dict[str, int]
    data_dir: Path


def _pg_admin(sql: str) -> None:
    with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
        conn.execute(sql)


@asynccontextmanager
async def start(profile: str, tmp: Path) -> AsyncIterator[Stack]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    data_dir = tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
    env |= {
        "LEDGERLINE_JWT_SECRET": SECRET,
        "LEDGERLINE_RATE_LIMIT_PER_MINUTE": "0",
        "LEDGERLINE_LOG_LEVEL": "warning",
    }
    database = namespace = broker_url = None
    if profile != "embedded":
        database = f"ledgerline_load_{uuid.uuid4().hex[:8]}"
        namespace = f"load{uuid.uuid4().hex[:8]}"
        broker_url = NATS_URL if profile == "pg-nats" else RABBIT_URL
        _pg_admin(f'CREATE DATABASE "{database}"')
        env |= {
            "LEDGERLINE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
            "LEDGERLINE_BROKER_URL": broker_url,
            "LEDGERLINE_BROKER_NAMESPACE": namespace,
        }
    port = free_port()
    log = (tmp / "up.log").open("wb")
    up = subprocess.Popen(  # noqa: ASYNC220  # started once; its output is read in a thread
        [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        await _until_up(up, tmp / "up.log")
        services = children(up.pid)
        yield Stack(profile, f"http://127.0.0.1:{port}", SECRET, up.pid, services, data_dir)
    finally:
        if up.poll() is None:
            os.kill(up.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(up.wait, 60)
            except subprocess.TimeoutExpired:
                os.kill(up.pid, signal.SIGKILL)
        log.close()
        if namespace and broker_url:
            with suppress(Exception):  # cleaning up must not hide the run's figures
                broker = await connect_broker(broker_url, namespace=namespace, partitions=PARTITIONS)
                try:
                    await broker.delete_topology(WORKER_KINDS)  # type: ignore[attr-defined]
                finally:
                    await broker.close()
        if database:
            _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _until_up(up: subprocess.Popen[bytes], log: Path) -> None:
    """Read `up`'s standard output until it says it is up (its summary), or fail with its log."""
    assert up.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(up.stdout.readline)
        if not line:
            raise RuntimeError(f"ledgerline up exited ({up.wait()}):\n{log.read_text(errors='replace')[-3000:]}")  # noqa: ASYNC240
        if line.startswith(b"Ledgerline is up."):
            # keep draining its output so that it never blocks on a full pipe
            asyncio.get_running_loop().run_in_executor(None, up.stdout.read)
            return
    raise RuntimeError(f"ledgerline up not up after {START_TIMEOUT} s")
