"""Alembic migrations, run programmatically: `ledgerline migrate`, and every service on start.

Several services may start at once and all migrate: on PostgreSQL a session advisory lock makes the
others wait for the first (they then find nothing to do); on SQLite a file lock beside the database
does the same.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url

from shared.logging import get_logger

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x4C44_4752_4D49_4752  # "LDGRMIGR"


def sync_url(database_url: str) -> str:
    """Alembic runs synchronously: the same database through the sync driver."""
    url = make_url(database_url)
    if url.drivername.startswith("sqlite"):
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest). Safe to run concurrently and repeatedly."""
    url = sync_url(database_url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        with _migration_lock(url, engine.connect()) as conn:
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
    finally:
        engine.dispose()
    log.info("migrated", revision=revision)


@contextlib.contextmanager
def _migration_lock(url: str, conn: Connection) -> Iterator[Connection]:
    with conn:
        if url.startswith("sqlite"):
            lock_path = Path(str(make_url(url).database) + ".migrate.lock")
            with open(lock_path, "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                yield conn
            return
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
