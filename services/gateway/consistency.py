"""Read-your-writes (docs/chat-design.md): a user's read waits until the read models have applied
that user's own last writes.

After a write, the route records (user, projection, partition of the stream written, position).
A later read by that user waits, bounded by `timeout` (2 s), until the projection's checkpoint in
each such partition is at or beyond the position, polling `queries.checkpoint` every few
milliseconds; then it answers what the read model has (late, not wrong). Other users never wait.

Per gateway process: a user whose write went to another gateway instance is not waited for here
(docs/chat-api.md). Checkpoints only grow, so the highest one seen is remembered per (projection,
partition) and a wait already covered by it costs no query at all.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections import queries
from shared.events.partition import partition_of
from shared.logging import get_logger

log = get_logger(__name__)

CHAT, DIRECTORY = "chat", "directory"
WAIT_TIMEOUT = 2.0
# The worker commits a batch every few ms under load; polling faster only loads the database.
POLL_SECONDS = 0.005
# Users whose pending writes are remembered; the oldest are forgotten beyond it (they only lose the wait).
MAX_USERS = 100_000

Key = tuple[str, int]  # (projection, partition)


class ReadYourWrites:
    def __init__(
        self, engine: AsyncEngine, partitions: int, *, timeout: float = WAIT_TIMEOUT, poll: float = POLL_SECONDS
    ) -> None:
        self._engine = engine
        self._partitions = partitions
        self._timeout = timeout
        self._poll = poll
        self._pending: dict[str, dict[Key, int]] = {}
        self._seen: dict[Key, int] = {}

    def wrote(self, user_id: str, projection: str, stream_id: str, position: int) -> None:
        """Remember that `user_id` wrote `stream_id` up to `position` (0: nothing was written)."""
        if position <= 0:
            return
        key = (projection, partition_of(stream_id, self._partitions))
        if self._seen.get(key, 0) >= position:
            return
        pending = self._pending.pop(user_id, {})  # re-inserted: the dict's order is recency
        pending[key] = max(pending.get(key, 0), position)
        self._pending[user_id] = pending
        if len(self._pending) > MAX_USERS:
            del self._pending[next(iter(self._pending))]

    async def wait(self, user_id: str) -> None:
        """Return once the user's writes are visible, or after the timeout (logged)."""
        pending = self._pending.get(user_id)
        if not pending:
            return
        deadline = time.monotonic() + self._timeout
        for key, position in list(pending.items()):
            if not await self._reached(key, position, deadline):
                log.warning("read_your_writes_timeout", user=user_id, projection=key[0], partition=key[1])
                break
            if pending.get(key) == position:  # a newer write of the same user may have raised it
                del pending[key]
        if not pending:
            self._pending.pop(user_id, None)

    async def _reached(self, key: Key, position: int, deadline: float) -> bool:
        while self._seen.get(key, 0) < position:
            if time.monotonic() >= deadline:
                return False
            self._seen[key] = max(self._seen.get(key, 0), await self._checkpoint(key))
            if self._seen[key] < position:
                await asyncio.sleep(self._poll)
        return True

    async def _checkpoint(self, key: Key) -> int:
        async with self._engine.connect() as conn:
            return await queries.checkpoint(conn, *key)
