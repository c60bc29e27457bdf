"""Running decisions against a conversation stream: one at a time per stream, appended in batches.

The concurrency argument. Inside this process, commands for one stream are queued and decided by one
drainer task, in order: that is the per-stream lock (blind optimistic retries collapse on a busy
group: BASELINES.md). The drainer decides every queued command against the state, each seeing the
events of the ones before it, and appends all their events in one `append` at the cached version:
all or nothing. A busy group therefore costs one store round trip per batch, not per message.

Across processes, the append's `expected_version` is the guard. A conflict means another process
appended: the batch's effects are undone in the cached state, the state is refreshed from the store
(reading only the versions after the cached one) and the whole batch is decided again. Since `seq`
is chosen from a state whose version the store confirms at commit, numbers are contiguous and unique.

The cached state is trusted without a read (the hot path is one append per batch). A stale cache
shows up as a version conflict, or as a domain error that a fresher state might not raise (a member
added by another process): such an error is answered only after one refresh.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from services.gateway.commands.cache import LruCache
from services.gateway.commands.domain import event_id, stream_id
from services.gateway.commands.state import ConversationState, Undo, apply, stored_at
from services.gateway.errors import Conflict, GatewayError
from shared.events.base import Event
from shared.events.envelope import NewEvent
from shared.logging import get_logger
from shared.store.port import EventIdConflict, EventStore, WrongExpectedVersion

log = get_logger(__name__)

R = TypeVar("R")
Clock = Callable[[], datetime]
Decide = Callable[[ConversationState], Sequence[Event]]
Answer = Callable[[ConversationState, int], R]
Committed = Callable[[ConversationState, Sequence[NewEvent]], None]
"""Told of every batch right after its append committed, with the state after it (must not block)."""

# The design's bound: enough for a few other processes appending at once; beyond it the stream is
# hot across processes and the client is better told (Conflict) than kept waiting.
MAX_ATTEMPTS = 12
# Cached conversations; a group with a few thousand messages costs a few hundred KB.
DEFAULT_CACHE_SIZE = 10_000
# Commands decided and appended together: the store's group commit caps batches at 64-256 rows too.
MAX_BATCH = 64
# Longest first pause before retrying a cross-process conflict (doubling per attempt, jittered), so
# two processes stop meeting in lockstep.
RETRY_PAUSE_SECONDS = 0.002
RETRY_PAUSE_MAX_SECONDS = 0.1


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Entry:
    """A conversation's state and the stream version it was folded to."""

    version: int
    state: ConversationState


@dataclass(slots=True, eq=False)
class _Command:
    actor: str
    decide: Decide
    answer: Answer[Any]
    future: asyncio.Future[Any]
    refresh: bool = False  # answer from a state brought up to date with the store
    events: Sequence[Event] = ()
    first: int = 0  # index of its first event in the batch's append
    error: GatewayError | None = None


class StreamExecutor:
    def __init__(
        self, store: EventStore, clock: Clock, *, cache_size: int = DEFAULT_CACHE_SIZE, max_attempts: int = MAX_ATTEMPTS
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_attempts = max_attempts
        self.cache: LruCache[str, Entry] = LruCache(cache_size)
        self._queues: dict[str, deque[_Command]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self.conflicts = 0  # version conflicts met (another process appended first)
        # The gateway's realtime hand-over (services/gateway/ws/handover.py) when a WebSocket router runs.
        self.on_committed: Committed | None = None

    async def execute(
        self, actor: str, conversation_id: str, decide: Decide, answer: Answer[R], *, new: bool = False
    ) -> R:
        """Decide against the current state, append, and answer, in this stream's order.

        `new`: the stream is known not to exist yet (a fresh group id), so it is not read.
        """
        command = _Command(actor, decide, answer, asyncio.get_running_loop().create_future())
        return cast(R, await self._submit(conversation_id, command, new))

    async def current(self, conversation_id: str, answer: Callable[[ConversationState], R]) -> R:
        """Answer from the state brought up to date with the store (one read of what is new)."""
        future = asyncio.get_running_loop().create_future()
        command = _Command("", lambda _: (), lambda state, _: answer(state), future, refresh=True)
        return cast(R, await self._submit(conversation_id, command, False))

    def _submit(self, conversation_id: str, command: _Command, new: bool) -> asyncio.Future[Any]:
        stream = stream_id(conversation_id)
        queue = self._queues.get(stream)
        if queue is None:
            queue = self._queues[stream] = deque()
            self._drainers[stream] = asyncio.create_task(self._drain(stream, conversation_id, new))
        queue.append(command)
        return command.future

    async def _drain(self, stream: str, conversation_id: str, new: bool) -> None:
        queue = self._queues[stream]
        batch: list[_Command] = []
        try:
            while queue:
                batch = [c for c in (queue.popleft() for _ in range(min(len(queue), MAX_BATCH))) if not c.future.done()]
                try:
                    if batch:
                        await self._run(stream, conversation_id, batch, new)
                except Exception as e:  # a store failure: every command of the batch hears of it
                    _fail(batch, e)
                new = False
        except BaseException:  # cancelled: the service is stopping
            _fail([*batch, *queue], Conflict("the gateway is stopping; retry the request"))
            raise
        finally:
            del self._queues[stream], self._drainers[stream]

    async def _run(self, stream: str, conversation_id: str, batch: list[_Command], new: bool) -> None:
        entry, fresh = (Entry(0, ConversationState(conversation_id)), True) if new else await self._entry(stream)
        if not fresh and any(c.refresh for c in batch):
            await self._refresh(stream, entry)
            fresh = True
        for attempt in range(self._max_attempts):
            now = self._clock()
            undo, new_events = self._decide(entry, batch, now)
            if not fresh and any(c.error for c in batch):
                undo.restore(entry.state)
                await self._refresh(stream, entry)
                fresh = True
                continue
            if not new_events:
                return self._settle(entry, batch, 0)
            try:
                result = await self._store.append(stream, new_events, expected_version=entry.version)
            except (WrongExpectedVersion, EventIdConflict):
                # Another process appended (or already stored some of these ids): decide again on its events.
                # Pause first, then refresh: refreshing before the pause decides on state that the other
                # process has usually moved past again by the time we append.
                undo.restore(entry.state)
                self.conflicts += 1
                await asyncio.sleep(random.uniform(0, min(RETRY_PAUSE_SECONDS * 2**attempt, RETRY_PAUSE_MAX_SECONDS)))
                await self._refresh(stream, entry)
                fresh = True
                continue
            except BaseException:
                undo.restore(entry.state)
                raise
            if result.first_version != entry.version + 1:
                # The store answered an earlier append of these very ids: decide again on what it holds.
                undo.restore(entry.state)
                await self._refresh(stream, entry)
                fresh = True
                continue
            entry.version = result.last_version
            self._settle(entry, batch, result.first_position)
            self._committed(entry.state, new_events)
            return
        _fail(batch, Conflict(f"conversation {conversation_id!r} kept changing; retry the request"))

    def _decide(self, entry: Entry, batch: list[_Command], now: datetime) -> tuple[Undo, list[NewEvent]]:
        """Each command in order against the state so far; their events applied, with an undo log."""
        undo = Undo(entry.state)
        new_events: list[NewEvent] = []
        try:
            for command in batch:
                command.error, command.events, command.first = None, (), len(new_events)
                try:
                    command.events = command.decide(entry.state)
                except GatewayError as e:
                    command.error = e
                    continue
                for event in command.events:
                    undo.apply(entry.state, event, at=now)
                    new_events.append(NewEvent(event, command.actor, event_id(event), occurred_at=now))
        except BaseException:
            undo.restore(entry.state)  # a bug, not a domain error: leave the state as it was
            raise
        return undo, new_events

    def _settle(self, entry: Entry, batch: list[_Command], first_position: int) -> None:
        """Answer every command of a batch that was appended (from `first_position`) or needed nothing."""
        for command in batch:
            for offset, event in enumerate(command.events):
                stored_at(entry.state, event, first_position + command.first + offset)
        if entry.state.exists:  # an unknown id is not cached: probing ids cannot evict real ones
            self.cache.put(entry.state.conversation_id, entry)
        for command in batch:
            if command.future.done():
                continue  # the caller went away; its events (if any) are stored all the same
            if command.error is not None:
                command.future.set_exception(command.error)
                continue
            position = first_position + command.first + len(command.events) - 1 if command.events else 0
            try:
                command.future.set_result(command.answer(entry.state, position))
            except Exception as e:
                command.future.set_exception(e)

    def _committed(self, state: ConversationState, new_events: Sequence[NewEvent]) -> None:
        if self.on_committed is None:
            return
        try:
            self.on_committed(state, new_events)
        except Exception:  # the events are stored and answered; a listener's bug must not change that
            log.exception("on_committed_failed", conversation_id=state.conversation_id)

    async def _entry(self, stream: str) -> tuple[Entry, bool]:
        conversation_id = stream.removeprefix("conversation-")
        cached = self.cache.get(conversation_id)
        if cached is not None:
            return cached, False
        entry = Entry(0, ConversationState(conversation_id))
        await self._refresh(stream, entry)
        return entry, True

    async def _refresh(self, stream: str, entry: Entry) -> None:
        """Fold the stream's events after the entry's version into it (inclusive bound: version + 1)."""
        try:
            for record in await self._store.read_stream(stream, from_version=entry.version + 1):
                apply(entry.state, record.event, at=record.occurred_at, position=record.position)
                entry.version = record.stream_version
        except BaseException:
            self.cache.discard(entry.state.conversation_id)  # a half-folded state must not be served again
            raise


def _fail(commands: list[_Command], error: BaseException) -> None:
    for command in commands:
        if not command.future.done():
            command.future.set_exception(error)
