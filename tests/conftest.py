"""Shared fixtures: real servers (PostgreSQL, NATS, RabbitMQ) with a fresh database / names per test.

In CI (CI=true) a missing server fails the test with a clear message; on a laptop without the servers
those tests skip with the reason shown, and the SQLite + embedded-NATS tests still run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBIT_URL = os.environ.get("TEST_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Fail in CI, skip elsewhere, when a real server the test needs is not running."""
    if server_reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port} (see ../shared/handbook/SERVICES.md)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def unique_suffix() -> str:
    return uuid.uuid4().hex[:10]


def _admin_connect() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)


def create_pg_database() -> tuple[str, str]:
    """A fresh database `ledgerline_test_<random>`; returns (name, SQLAlchemy URL)."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    name = f"ledgerline_test_{unique_suffix()}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(name: str) -> None:
    with _admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def pg_database() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh database, dropped afterwards (create_pg_database + drop_pg_database)."""
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"
        return
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def nats_url() -> str:
    require_server("NATS", "127.0.0.1", 4222)
    return NATS_URL


@pytest.fixture
def rabbit_url() -> str:
    require_server("RabbitMQ", "127.0.0.1", 5672)
    return RABBIT_URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
