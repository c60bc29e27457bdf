"""Group commit for the read-model handlers: the batches of concurrent partition loops, applied
together in one transaction.

Why: a worker consumes each partition it owns (16 by default) in a loop of its own, and each batch
was a transaction of its own. On SQLite every one of them takes the database's single write lock,
and a writer that finds it taken sleeps in SQLite's busy handler (1, 2, 5, … up to 100 ms between
tries) however soon the lock is free: at 100 msg/s the realtime hop took ~0.65 s with two thirds of
the CPU idle (docs/realtime.md). On PostgreSQL each batch was a commit and a pooled connection of
its own, and its statements (the read models write one executemany per kind of change) ran once
per batch of one or two events. Here the items that arrive while a transaction runs go into the
next one together, and the caller's `apply(conn, items)` handles them in one pass, so a process
holds at most `concurrency` write transactions at once and writes once per group.

`apply` returns one result per item, in order. It may run twice for an item: when a grouped
transaction fails, each of its items is applied again alone, so that one bad item fails only its
own caller. So `apply` does nothing outside the transaction that cannot be done again (callers act
on their results after `run` returns).

On SQLite the transaction runs start to end on the loop's thread, on a blocking connection
(shared/store/engine.py `write_transaction`): through aiosqlite each statement was a hop through the
busy event loop while the transaction held the database's one write lock, and the appends and the
other workers waited (decision 0026). `apply` is the same coroutine; it gets a `_BlockingConnection`
whose `execute` never suspends, so it runs to its end in one step. It must await nothing but the
connection (`_run_to_end` says so if it does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.store.engine import blocking_sqlite_engine, write_transaction

Item = TypeVar("Item")
Result = TypeVar("Result")
T = TypeVar("T")
Apply = Callable[[AsyncConnection, list[Item]], Awaitable[list[Result]]]
Prologue = Callable[[AsyncConnection], Awaitable[None]]

MAX_UNITS = 32
"""Units per transaction at most: bounds how long one transaction holds the write lock."""


@dataclass(slots=True)
class _Unit:
    item: Any
    future: asyncio.Future[Any]


class TransactionGroup(Generic[Item, Result]):
    def __init__(
        self,
        engine: AsyncEngine,
        apply: Apply[Item, Result],
        *,
        prologue: Prologue | None = None,
        concurrency: int | None = None,
        max_units: int = MAX_UNITS,
    ) -> None:
        """`prologue` runs first in every transaction (a lock every unit needs). `concurrency`:
        transactions at once, by default 1. On SQLite there is one writer at a time anyway. On
        PostgreSQL two at once (one committing while the next runs) halved the batches, and a
        transaction's statements cost the worker ~5 ms of CPU whatever its size: at 1,500 messages/s
        the projections worker spent ~22% more CPU per message with two than with one, the read
        models caught up no sooner, and the gateway had less CPU left (bench/wrk_send.py, 2026-12-03)."""
        self._engine = engine
        # SQLite: the file whose blocking engine runs the transactions (see the module docstring). An
        # in-memory database is one connection's own, so it stays on the async path.
        on_file = engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
        self._sqlite_url = engine.url.render_as_string(hide_password=False) if on_file else None
        self._blocking: Engine | None = None  # that engine, found at the first transaction (the file exists)
        self._apply = apply
        self._prologue = prologue
        self._concurrency = concurrency or 1
        self._max_units = max_units
        self._pending: deque[_Unit] = deque()
        self._drainers: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references

    async def run(self, item: Item) -> Result:
        """Apply `item` in a transaction shared with whatever else arrives meanwhile; its result once
        committed. A caller cancelled while its item is applied leaves it to commit (or not)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append(_Unit(item, future))
        if len(self._drainers) < self._concurrency:
            self._drainers.add(asyncio.create_task(self._drain(), name="transaction-group"))
        return await future

    async def _drain(self) -> None:
        units: list[_Unit] = []
        try:
            while self._pending:
                units = []
                while self._pending and len(units) < self._max_units:
                    unit = self._pending.popleft()
                    if not unit.future.done():  # its caller gave up before it started
                        units.append(unit)
                if units:
                    await self._run(units)
        except BaseException:
            for unit in (*units, *self._pending):
                unit.future.cancel()
            self._pending.clear()
            raise
        finally:
            # At once, not in a done callback: a unit queued after the last check of `_pending`
            # must find room to start a drainer of its own.
            task = asyncio.current_task()
            if task is not None:
                self._drainers.discard(task)

    async def _run(self, units: list[_Unit]) -> None:
        try:
            results = await self._transaction(units)
        except Exception as err:
            if len(units) == 1:
                _settle(units[0], error=err)
                return
            for unit in units:  # again one by one: only the item that fails fails its caller
                try:
                    (result,) = await self._transaction([unit])
                except Exception as alone:
                    _settle(unit, error=alone)
                else:
                    _settle(unit, result=result)
            return
        for unit, result in zip(units, results, strict=True):
            _settle(unit, result=result)

    async def _transaction(self, units: list[_Unit]) -> list[Result]:
        if self._sqlite_url is not None:
            if self._blocking is None:
                self._blocking = blocking_sqlite_engine(self._sqlite_url)
            return await write_transaction(
                self._blocking, lambda conn: _run_to_end(self._in_transaction(_as_async(conn), units))
            )
        async with self._engine.begin() as conn:
            return await self._in_transaction(conn, units)

    async def _in_transaction(self, conn: AsyncConnection, units: list[_Unit]) -> list[Result]:
        if self._prologue is not None:
            await self._prologue(conn)
        results = await self._apply(conn, [unit.item for unit in units])
        if len(results) != len(units):
            raise RuntimeError(f"apply returned {len(results)} results for {len(units)} items")
        return results


class _BlockingConnection:
    """AsyncConnection's `execute` and `dialect` over a blocking Connection: awaiting it never suspends."""

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None, *, execution_options: Any = None) -> Any:
        return self.sync_connection.execute(statement, parameters, execution_options=execution_options)


def _as_async(conn: Connection) -> AsyncConnection:
    return cast(AsyncConnection, _BlockingConnection(conn))


def _run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, run in one step."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("a transaction's apply awaited something other than its connection")


def _settle(unit: _Unit, *, result: Any = None, error: BaseException | None = None) -> None:
    if unit.future.done():  # cancelled meanwhile: nobody waits for it
        return
    if error is not None:
        unit.future.set_exception(error)
    else:
        unit.future.set_result(result)
