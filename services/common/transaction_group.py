"""Group commit for the read-model handlers: the units of work of concurrent partition loops, run one
after the other in one transaction.

Why: a worker consumes each partition it owns (16 by default) in a loop of its own, and each batch
was a transaction of its own. On SQLite every one of them takes the database's single write lock,
and a writer that finds it taken sleeps in SQLite's busy handler (1, 2, 5, … up to 100 ms between
tries) however soon the lock is free: at 100 msg/s the realtime hop took ~0.65 s with two thirds of
the CPU idle (docs/realtime.md). On PostgreSQL each batch was a commit and a pooled connection of
its own. Here the units that arrive while a transaction runs go into the next one together, so a
process holds at most `concurrency` write transactions at once and commits once per group.

A unit is `async def work(conn) -> T`. It may run twice: when a grouped transaction fails, each of
its units runs again alone, so that one bad unit fails only its own caller. So a unit does nothing
outside the transaction that cannot be done again (its caller acts on the result after it returns).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]
Prologue = Callable[[AsyncConnection], Awaitable[None]]

MAX_UNITS = 32
"""Units per transaction at most: bounds how long one transaction holds the write lock."""


@dataclass(slots=True)
class _Unit:
    work: Work[Any]
    future: asyncio.Future[Any]


class TransactionGroup:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        prologue: Prologue | None = None,
        concurrency: int | None = None,
        max_units: int = MAX_UNITS,
    ) -> None:
        """`prologue` runs first in every transaction (a lock every unit needs). `concurrency`:
        transactions at once; by default 1 on SQLite (one writer at a time anyway) and 2 on
        PostgreSQL (one is being committed while the next one runs)."""
        self._engine = engine
        self._prologue = prologue
        self._concurrency = concurrency or (1 if engine.dialect.name == "sqlite" else 2)
        self._max_units = max_units
        self._pending: deque[_Unit] = deque()
        self._drainers: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references

    async def run(self, work: Work[T]) -> T:
        """Run `work` in a transaction shared with whatever else arrives meanwhile; its result once
        committed. A caller cancelled while its unit runs leaves the unit to commit (or not)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Unit(work, future))
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
            for unit in units:  # again one by one: only the unit that fails fails its caller
                try:
                    (result,) = await self._transaction([unit])
                except Exception as alone:
                    _settle(unit, error=alone)
                else:
                    _settle(unit, result=result)
            return
        for unit, result in zip(units, results, strict=True):
            _settle(unit, result=result)

    async def _transaction(self, units: list[_Unit]) -> list[Any]:
        async with self._engine.begin() as conn:
            if self._prologue is not None:
                await self._prologue(conn)
            return [await unit.work(conn) for unit in units]


def _settle(unit: _Unit, *, result: Any = None, error: BaseException | None = None) -> None:
    if unit.future.done():  # cancelled meanwhile: nobody waits for it
        return
    if error is not None:
        unit.future.set_exception(error)
    else:
        unit.future.set_result(result)
