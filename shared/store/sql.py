"""SqlEventStore: the event store on PostgreSQL or SQLite (one code path; the differences are the
append lock and the wake-up mechanism, both explained where they live)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events.envelope import NewEvent, RecordedEvent
from shared.metrics import MetricsRegistry
from shared.store import reads
from shared.store.append import GroupCommitWriter, prepare
from shared.store.batch_io import BatchIO, PgBatchIO, SqliteBatchIO
from shared.store.engine import create_engine, with_liveness
from shared.store.hashing import GENESIS_HASH
from shared.store.notify import HeadSignal, PgListener
from shared.store.personal import KeyRing
from shared.store.port import ANY, AppendResult, ExpectedVersion, Head, StoreUnavailable
from shared.store.tables import events

SQLITE_POLL_SECONDS = 0.05  # cheap: one indexed max(position) read
PG_FALLBACK_POLL_SECONDS = 1.0  # only matters if a notification was lost


class SqlEventStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch_events: int = 256,
        max_batch_bytes: int = 256 * 1024,
        metrics: MetricsRegistry | None = None,
        own_engine: bool = False,
    ) -> None:
        self.engine = engine
        self._own_engine = own_engine
        self._sqlite = engine.dialect.name == "sqlite"
        # Reads are one SELECT each, consistent by themselves: in autocommit, psycopg sends no BEGIN
        # before it and the pool no ROLLBACK after it, two round trips of three per page.
        self._reader = engine if self._sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        self._signal = HeadSignal()
        self._listener: PgListener | None = None
        self._appended: Counter | None = None
        self._batch_size: Histogram | None = None
        self._append_seconds: Histogram | None = None
        self._batch_paths: Counter | None = None
        if metrics is not None:
            self._appended = metrics.counter("events_appended", "Events appended to the store")
            self._batch_size = metrics.histogram(
                "append_batch_events", "Events per group-commit batch", buckets=(1, 4, 16, 64, 128, 256, 1024)
            )
            self._append_seconds = metrics.histogram("append_batch_seconds", "Duration of one append batch")
            self._batch_paths = metrics.counter(
                "append_batches",
                "Append batches by path: fast (planned from the writer's own view), checked (read under the"
                " lock), fast_refused (a fast attempt rolled back: another process appended, or a repeat)",
                labels=("path",),
            )
        self.keys = KeyRing(engine)  # personal fields sealed per person (shared/store/personal.py)
        self._writer = GroupCommitWriter(
            self._batch_io(), max_events=max_batch_events, max_bytes=max_batch_bytes, on_commit=self._committed
        )

    @classmethod
    async def open(cls, database_url: str, **kwargs: object) -> SqlEventStore:
        """An engine for `database_url` owned (and closed) by the store. Migrations are not run here."""
        return cls(create_engine(database_url), own_engine=True, **kwargs)  # type: ignore[arg-type]

    def _committed(self, head: int, count: int, seconds: float) -> None:
        self._signal.advance(head)
        if self._appended is not None and self._batch_size is not None and self._append_seconds is not None:
            self._appended.inc(count)
            self._batch_size.observe(count)
            self._append_seconds.observe(seconds)

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        payloads = await self.keys.seal(events)
        return await self._writer.submit(prepare(stream_id, events, expected_version, payloads))

    async def read_stream(self, stream_id: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        if self._sqlite:
            return await self._read_raw(reads.SQLITE_STREAM_FROM, (stream_id, from_version, limit or -1))
        return await self._read_raw(reads.PG_STREAM_FROM, (stream_id, from_version, limit))

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        sql = reads.SQLITE_ALL_AFTER if self._sqlite else reads.PG_ALL_AFTER
        return await self._read_raw(sql, (after_position, limit))

    async def _read_raw(self, sql: str, params: tuple[object, ...]) -> list[RecordedEvent]:
        """One query on the driver connection of a pooled SQLAlchemy connection (see reads.py)."""
        try:
            async with self._reader.connect() as conn:
                driver: Any = (await conn.get_raw_connection()).driver_connection
                cursor = await driver.execute(sql, params)
                rows = await cursor.fetchall()
        except (DBAPIError, SQLAlchemyError, OSError, psycopg.Error, sqlite3.Error) as e:
            raise StoreUnavailable(f"the event store could not be read: {e}") from e
        recorded = reads.sqlite_rows_to_recorded(rows) if self._sqlite else reads.pg_rows_to_recorded(rows)
        return await self.keys.open(recorded)

    async def head(self) -> Head:
        try:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(events.c.position, events.c.hash).order_by(events.c.position.desc()).limit(1)
                    )
                ).first()
        except (DBAPIError, SQLAlchemyError, OSError) as e:
            raise StoreUnavailable(f"the event store could not be read: {e}") from e
        if row is None:
            return Head(0, GENESIS_HASH)
        self._signal.advance(row.position)
        return Head(row.position, row.hash)

    async def wait_for_events(self, after_position: int, timeout: float) -> int:
        if not self._sqlite and self._listener is None:
            self._listener = PgListener(self._libpq_url(), self._signal)
            self._listener.start()
        loop_deadline = asyncio.get_running_loop().time() + timeout
        poll = SQLITE_POLL_SECONDS if self._sqlite else PG_FALLBACK_POLL_SECONDS
        while True:
            if self._signal.known_head > after_position:
                return self._signal.known_head
            remaining = loop_deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return self._signal.known_head
            if await self._signal.wait_beyond(after_position, min(poll, remaining)):
                return self._signal.known_head
            await self.head()  # the poll: advances the signal when another process appended

    def _batch_io(self) -> BatchIO:
        if self._sqlite:
            database = self.engine.url.database
            if not database or database == ":memory:":
                raise ValueError("the event store needs a SQLite file, not an in-memory database")
            return SqliteBatchIO(database)
        return PgBatchIO(self._libpq_url(), on_path=self._count_path)

    def _count_path(self, path: str) -> None:  # on the writer's thread: prometheus-client is thread-safe
        if self._batch_paths is not None:
            self._batch_paths.labels(path).inc()

    def _libpq_url(self) -> str:
        url = self.engine.url.set(drivername="postgresql")
        return with_liveness(url.render_as_string(hide_password=False))

    async def close(self) -> None:
        await self._writer.close()
        if self._listener is not None:
            await self._listener.close()
        if self._own_engine:
            await self.engine.dispose()
