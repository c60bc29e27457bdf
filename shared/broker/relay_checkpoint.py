"""The relay's durable cursor, a row of the `checkpoints` table (shared.store.tables).

`position` is the last position published *and confirmed by the broker*, inclusive: the relay
resumes with `read_all(after_position=position)`. It only moves forward: a relay that lost its lock
and writes late cannot take the cursor back (`WHERE position < new`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.store.tables import checkpoints

NOTE = "relay: last position published and confirmed, inclusive"


@dataclass(frozen=True, slots=True)
class RelayCheckpoint:
    engine: AsyncEngine
    name: str = "relay"

    async def load(self) -> int:
        """The last published position (0 when the relay never ran); creates the row when missing."""
        async with self.engine.connect() as conn:
            position = (
                await conn.execute(select(checkpoints.c.position).where(checkpoints.c.name == self.name))
            ).scalar_one_or_none()
        if position is not None:
            return int(position)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(checkpoints).values(name=self.name, position=0, updated_at=datetime.now(UTC), note=NOTE)
                )
        except IntegrityError:
            return await self.load()  # another relay created it first
        return 0

    async def save(self, position: int) -> None:
        # SQLite: take the write lock at BEGIN (waits out another writer) rather than upgrade later.
        async with self.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            await conn.execute(
                update(checkpoints)
                .where(checkpoints.c.name == self.name, checkpoints.c.position < position)
                .values(position=position, updated_at=datetime.now(UTC))
            )
