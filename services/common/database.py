"""The database as every service sees it: prepared (migrated) at start, an engine, and a /readyz probe."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import Settings
from shared.logging import get_logger
from shared.store.engine import create_engine
from shared.store.migrate import migrate

log = get_logger(__name__)


def prepare_database(settings: Settings) -> None:
    """Create the default data directory and bring the schema to the newest migration."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.resolved_database_url)


def open_engine(database_url: str, pool_size: int = 2, max_overflow: int | None = None) -> AsyncEngine:
    """An engine set up as the event store sets up its own (SQLite: WAL, busy timeout)."""
    return create_engine(database_url, pool_size=pool_size, max_overflow=max_overflow)


class DatabaseProbe:
    """`SELECT 1`: cheap, and on an engine of its caller's (not the event store's writer)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self) -> bool:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
