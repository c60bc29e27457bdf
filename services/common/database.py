"""The database as every service sees it: prepared (migrated) at start, an engine, and a /readyz probe."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.config import Settings
from shared.logging import get_logger

log = get_logger(__name__)

MIGRATE_MODULE = "shared.store.migrate"
ENGINE_MODULE = "shared.store.engine"


def prepare_database(settings: Settings) -> None:
    """Create the default data directory and bring the schema to the newest migration."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate = load_migrate()
    if migrate is None:
        log.warning("migrations_not_installed", module=MIGRATE_MODULE)
        return
    migrate(settings.resolved_database_url)


def load_migrate() -> Callable[[str], None] | None:
    """shared.store.migrate.migrate, or None in a checkout that does not have it."""
    module = _optional_module(MIGRATE_MODULE)
    return None if module is None else cast(Callable[[str], None], module.migrate)


def open_engine(database_url: str, pool_size: int = 2) -> AsyncEngine:
    """An engine set up as the event store sets up its own (SQLite: WAL, busy timeout), falling back
    to SQLAlchemy's defaults in a checkout without shared.store.engine."""
    module = _optional_module(ENGINE_MODULE)
    if module is None:
        return create_async_engine(database_url, pool_size=pool_size, max_overflow=0)
    return cast(AsyncEngine, module.create_engine(database_url, pool_size=pool_size))


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise  # the module exists but something it imports does not: a real error
        return None


class DatabaseProbe:
    """`SELECT 1`: cheap, and on an engine of its caller's (not the event store's writer)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self) -> bool:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
