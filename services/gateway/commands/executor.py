"""Running one decision against one conversation stream: lock, state, decide, append, retry.

The concurrency argument. Inside this process, one asyncio.Lock per stream serializes commands, so
a busy group never sees version conflicts among its own senders (blind optimistic retries collapse
there: BASELINES.md). Across processes, the append's `expected_version` is the guard: a conflict
means another process appended; the state is refreshed from the store (reading only the versions
after the cached one) and the decision is taken again. Since `seq` is chosen from a state whose
version the store confirms at commit, message numbers are contiguous and never repeat.

The cached state is trusted without a read (the hot path is one append). A stale cache shows up
either as a version conflict, or as a domain error that a fresher state might not raise (a member
added by another process); such an error is answered only after one refresh.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from services.gateway.commands.cache import KeyedLocks, LruCache
from services.gateway.commands.domain import event_id, stream_id
from services.gateway.commands.state import ConversationState, apply
from services.gateway.errors import Conflict, GatewayError
from shared.events.base import Event
from shared.events.envelope import NewEvent
from shared.store.port import EventStore, WrongExpectedVersion

R = TypeVar("R")
Clock = Callable[[], datetime]
Decide = Callable[[ConversationState], Sequence[Event]]
Answer = Callable[[ConversationState, int], R]

# The design's bound: enough for a few other processes appending at once; beyond it the stream is
# hot across processes and the client is better told (Conflict) than kept waiting.
MAX_ATTEMPTS = 5
# Cached conversations; a group with a few thousand messages costs a few hundred KB.
DEFAULT_CACHE_SIZE = 10_000
# Pause before retrying a cross-process conflict, so two processes stop meeting in lockstep.
RETRY_PAUSE_SECONDS = 0.002


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Entry:
    """A conversation's state and the stream version it was folded to."""

    version: int
    state: ConversationState


class StreamExecutor:
    def __init__(
        self, store: EventStore, clock: Clock, *, cache_size: int = DEFAULT_CACHE_SIZE, max_attempts: int = MAX_ATTEMPTS
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_attempts = max_attempts
        self.cache: LruCache[str, Entry] = LruCache(cache_size)
        self.locks: KeyedLocks[str] = KeyedLocks()
        self.conflicts = 0  # version conflicts met (another process appended first)

    async def execute(
        self, actor: str, conversation_id: str, decide: Decide, answer: Answer[R], *, new: bool = False
    ) -> R:
        """Decide against the current state, append, and answer (under the stream's lock).

        `new`: the stream is known not to exist yet (a fresh group id), so it is not read.
        """
        stream = stream_id(conversation_id)
        async with self.locks.hold(stream):
            entry, fresh = (Entry(0, ConversationState(conversation_id)), True) if new else await self._entry(stream)
            for attempt in range(self._max_attempts):
                try:
                    events = decide(entry.state)
                except GatewayError:
                    if fresh:
                        raise
                    await self._refresh(stream, entry)
                    fresh = True
                    continue
                if not events:
                    return answer(entry.state, 0)
                position = await self._append(stream, entry, actor, events)
                if position is not None:
                    return answer(entry.state, position)
                await asyncio.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * (attempt + 1)))
                fresh = True
        raise Conflict(f"conversation {conversation_id!r} kept changing; retry the request")

    async def current(self, conversation_id: str, answer: Callable[[ConversationState], R]) -> R:
        """Answer from the state brought up to date with the store (one read of what is new)."""
        stream = stream_id(conversation_id)
        async with self.locks.hold(stream):
            entry, fresh = await self._entry(stream)
            if not fresh:
                await self._refresh(stream, entry)
            return answer(entry.state)

    async def _entry(self, stream: str) -> tuple[Entry, bool]:
        cached = self.cache.get(stream)
        if cached is not None:
            return cached, False
        entry = Entry(0, ConversationState(stream.removeprefix("conversation-")))
        await self._refresh(stream, entry)
        return entry, True

    async def _append(self, stream: str, entry: Entry, actor: str, events: Sequence[Event]) -> int | None:
        """Append at the cached version and fold the events in. The last position appended; 0 when
        the store already held these events (an earlier append of the same ids); None after a
        version conflict (the entry is refreshed)."""
        now = self._clock()
        new = [NewEvent(e, actor, event_id(e), occurred_at=now) for e in events]
        try:
            result = await self._store.append(stream, new, expected_version=entry.version)
        except WrongExpectedVersion:
            self.conflicts += 1
            await self._refresh(stream, entry)
            return None
        if result.first_version != entry.version + 1:
            # The store answered an earlier append of the same event ids: fold in what it holds.
            await self._refresh(stream, entry)
            return 0
        self._fold(stream, entry, [(n.event, n.occurred_at, result.first_position + i) for i, n in enumerate(new)])
        entry.version = result.last_version
        return result.last_position

    async def _refresh(self, stream: str, entry: Entry) -> None:
        """Fold the stream's events after the entry's version into it (inclusive bound: version + 1)."""
        try:
            records = await self._store.read_stream(stream, from_version=entry.version + 1)
        except BaseException:
            self.cache.discard(stream)
            raise
        self._fold(stream, entry, [(r.event, r.occurred_at, r.position) for r in records])
        if records:
            entry.version = records[-1].stream_version

    def _fold(self, stream: str, entry: Entry, events: list[tuple[Event, datetime, int]]) -> None:
        try:
            for event, at, position in events:
                apply(entry.state, event, at=at, position=position)
        except BaseException:
            self.cache.discard(stream)  # a half-folded state must not be served again
            raise
        if entry.state.exists:  # an unknown id is not cached: probing ids cannot evict real ones
            self.cache.put(stream, entry)
