"""Appending with group commit.

Why positions never skip: every append transaction first takes one lock (a transaction-scoped
advisory lock on PostgreSQL; `BEGIN IMMEDIATE` on SQLite), then reads the head, assigns the next
positions and commits. The lock is released only after the commit is visible, so transactions commit
in position order and a reader following positions never sees position n+1 before position n. The
positions are assigned by us, not by a sequence, so a rolled-back append leaves no gap either.

Why group commit: serialized appends cost one transaction each (~8,000/s here). So one writer per
process drains whatever appends are queued (up to `max_events` / `max_bytes`), writes them in one
transaction, and answers each caller. It never waits for more to arrive: a timer window that always
waits cost ~40% in the prototype. Across processes (gateway and tickets both append) the lock above
still serializes the batches. The batch's I/O is in shared/store/batch_io.py.

Why the writer is a thread of its own, not a task: callers queue their requests from the event loop
(what one turn of the loop submitted goes over as one list, so it is never split by the thread waking
at the first request), and the thread takes the next batch the moment the last one committed and
answers a whole batch with one `call_soon_threadsafe`. As a task that hopped to an executor for the
I/O, every batch also waited for the loop to come round (twice: to take the batch, and to learn it
committed); under load the loop is busy with requests, and the database sat idle for a fifth of the
time (decision 0019).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from shared.events.envelope import NewEvent
from shared.logging import get_logger
from shared.store.batch_io import NOTIFY_CHANNEL, BatchIO, Row, Stored
from shared.store.hashing import GENESIS_HASH, canonical_json, chain_hash, envelope_bytes, format_time
from shared.store.port import (
    ANY,
    AppendResult,
    EventIdConflict,
    ExpectedVersion,
    StoreError,
    StoreUnavailable,
    WrongExpectedVersion,
)

log = get_logger(__name__)


@dataclass(slots=True)
class _Prepared:
    """One event, serialized once before it reaches the writer."""

    new: NewEvent
    payload: bytes
    metadata: bytes


@dataclass(slots=True)
class AppendRequest:
    stream_id: str
    events: list[_Prepared]
    expected_version: ExpectedVersion
    future: asyncio.Future[AppendResult]
    size: int = field(default=0)


def prepare(
    stream_id: str,
    new_events: Sequence[NewEvent],
    expected_version: ExpectedVersion,
    payloads: Sequence[bytes] | None = None,
) -> AppendRequest:
    """Serialize on the caller's task, so the single writer only assigns positions, hashes and writes.
    `payloads`: the stored payload bytes when the caller made them (personal fields sealed)."""
    if not new_events:
        raise ValueError("append needs at least one event")
    if len({e.event_id for e in new_events}) != len(new_events):
        raise EventIdConflict(stream_id, [e.event_id for e in new_events])
    if payloads is None:
        payloads = [canonical_json(e.event.payload()) for e in new_events]
    prepared = [_Prepared(e, p, canonical_json(e.metadata)) for e, p in zip(new_events, payloads, strict=True)]
    size = sum(len(p.payload) + len(p.metadata) for p in prepared)
    future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
    return AppendRequest(stream_id, prepared, expected_version, future, size)


@dataclass(slots=True)
class _BatchState:
    """What the writer knows inside one transaction: the head and the stream versions so far."""

    position: int
    hash: str
    versions: dict[str, int]
    stored: dict[uuid.UUID, tuple[str, int, int]]  # event id -> (stream, version, position)
    rows: list[Row] = field(default_factory=list)
    answers: list[tuple[AppendRequest, AppendResult | BaseException]] = field(default_factory=list)
    started: float = 0.0
    recorded_text: str = ""


class GroupCommitWriter:
    """The one thread per process that writes appends, in batches (see the module's docstring)."""

    CLOSE_WAIT_SECONDS = 10.0  # for the batch in hand at close; a hung database must not hang a stop

    def __init__(
        self,
        io: BatchIO,
        *,
        max_events: int = 256,
        max_bytes: int = 256 * 1024,
        on_commit: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._io = io
        self._max_events = max_events
        self._max_bytes = max_bytes
        # What the loop submitted in one turn, as one list; None: stop.
        self._requests: queue.SimpleQueue[list[AppendRequest] | None] = queue.SimpleQueue()
        self._pending: list[AppendRequest] = []  # this loop turn's requests, not yet handed over
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_commit = on_commit  # (head position, events in batch, seconds) for metrics and waiters

    async def submit(self, request: AppendRequest) -> AppendResult:
        if self._closed:
            raise StoreUnavailable("the event store is closed")
        loop = asyncio.get_running_loop()
        if self._thread is None or not self._thread.is_alive():  # first use, or the thread died
            self._loop = loop
            self._thread = threading.Thread(target=self._run, name="event-store-writer", daemon=True)
            self._thread.start()
        if not self._pending:
            loop.call_soon(self._hand_over)  # once per loop turn that submits
        self._pending.append(request)
        return await request.future

    def _hand_over(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._requests.put(pending)

    async def close(self) -> None:
        """Finish what was submitted before, then close the connection; later appends are refused."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is None:
            self._io.close()
            return
        self._hand_over()
        self._requests.put(None)
        await asyncio.to_thread(thread.join, self.CLOSE_WAIT_SECONDS)
        if not thread.is_alive():
            return
        # Stuck on a batch: what it has not taken yet is refused now (it will never be written), and
        # the stop mark goes back so that the thread ends, and closes its connection, if it recovers.
        log.warning("event_store_writer_stuck", seconds=self.CLOSE_WAIT_SECONDS)
        left: deque[AppendRequest] = deque()
        self._take(left, block=False)
        self._requests.put(None)
        self._fail(list(left), StoreUnavailable("the event store was closed before this append was written"))

    def _run(self) -> None:
        """The writer thread: take what is queued (within the caps; never wait for more), write it."""
        carry: deque[AppendRequest] = deque()
        taking = True
        try:
            while taking or carry:
                if taking:
                    taking = self._take(carry, block=not carry)
                if carry:
                    self._write(self._cut(carry))
        finally:
            self._io.close()

    def _take(self, carry: deque[AppendRequest], block: bool) -> bool:
        """Move every queued request into `carry` (first waiting for some when `block`); False once the
        stop mark was taken."""
        try:
            item = self._requests.get(block)
            while item is not None:
                carry.extend(item)
                item = self._requests.get_nowait()
        except queue.Empty:
            return True
        return False

    def _cut(self, carry: deque[AppendRequest]) -> list[AppendRequest]:
        """The next batch from the front of `carry`: at least one request, then up to the caps."""
        first = carry.popleft()
        batch, count, size = [first], len(first.events), first.size
        while carry and count < self._max_events and size < self._max_bytes:
            request = carry.popleft()
            batch.append(request)
            count += len(request.events)
            size += request.size
        return batch

    def _write(self, batch: list[AppendRequest]) -> None:
        started = time.perf_counter()
        try:
            state = self._write_txn(batch)
            state.started = started
        except (psycopg.Error, sqlite3.Error, OSError) as e:
            log.warning("append_batch_failed", error=str(e), requests=len(batch))
            self._call_on_loop(self._fail, batch, StoreUnavailable(f"the event store could not append: {e}"))
            return
        except Exception as e:
            # A bug must fail the callers, not kill the writer and leave them waiting forever.
            log.exception("append_batch_crashed", requests=len(batch))
            self._call_on_loop(self._fail, batch, StoreError(f"append failed: {e!r}"))
            return
        self._call_on_loop(self._answer, state)

    def _call_on_loop(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        # RuntimeError: the loop is closed, so nobody is waiting for these answers any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    @staticmethod
    def _fail(batch: list[AppendRequest], failure: StoreError) -> None:
        for request in batch:
            if not request.future.done():
                request.future.set_exception(failure)

    def _answer(self, state: _BatchState) -> None:
        for request, answer in state.answers:
            if request.future.done():
                continue  # the caller gave up (cancelled); its events may well be stored
            if isinstance(answer, BaseException):
                request.future.set_exception(answer)
            else:
                request.future.set_result(answer)
        if self._on_commit is not None and state.rows:
            self._on_commit(state.position, len(state.rows), time.perf_counter() - state.started)

    def _write_txn(self, batch: list[AppendRequest]) -> _BatchState:
        planned: list[_BatchState] = []

        def plan(
            head_position: int, head_hash: str | None, versions: dict[str, int], stored: Stored, checked: bool
        ) -> list[Row] | None:
            # Runs inside the transaction, under the append lock; may run twice (fast path, then checked).
            state = _BatchState(head_position, head_hash or GENESIS_HASH, versions, stored)
            recorded_at = datetime.now(UTC)
            state.recorded_text = format_time(recorded_at)
            for request in batch:
                state.answers.append((request, self._assign(state, request, recorded_at)))
            if not checked and any(isinstance(answer, BaseException) for _, answer in state.answers):
                return None  # a conflict may be a repeat of an earlier append: only the checked path can tell
            planned[:] = [state]
            return state.rows

        stream_ids = list({r.stream_id: None for r in batch})
        event_ids = [p.new.event_id for r in batch for p in r.events]
        self._io.write_batch(stream_ids, event_ids, plan)
        return planned[0]

    def _assign(self, state: _BatchState, request: AppendRequest, recorded_at: datetime) -> AppendResult | StoreError:
        """Check one request against the state so far; on success add its rows and advance the state."""
        ids = [p.new.event_id for p in request.events]
        already = [state.stored.get(i) for i in ids]
        if all(a is not None for a in already):
            return _repeat_result(request.stream_id, ids, already)  # type: ignore[arg-type]
        if any(a is not None for a in already):
            return EventIdConflict(request.stream_id, [i for i, a in zip(ids, already, strict=True) if a])
        current = state.versions.get(request.stream_id, 0)
        expected = request.expected_version
        if expected is not ANY and expected != current:
            return WrongExpectedVersion(request.stream_id, expected, current)
        first_position = state.position + 1
        for offset, prepared in enumerate(request.events, start=1):
            state.position += 1
            version = current + offset
            state.hash = self._add_row(state, request.stream_id, version, prepared, recorded_at)
            state.stored[prepared.new.event_id] = (request.stream_id, version, state.position)
        state.versions[request.stream_id] = current + len(request.events)
        return AppendResult(
            stream_id=request.stream_id,
            first_version=current + 1,
            last_version=current + len(request.events),
            first_position=first_position,
            last_position=state.position,
            event_ids=tuple(ids),
        )

    @staticmethod
    def _add_row(state: _BatchState, stream_id: str, version: int, prepared: _Prepared, recorded_at: datetime) -> str:
        new = prepared.new
        occurred_text = format_time(new.occurred_at)
        envelope = envelope_bytes(
            position=state.position,
            stream_id=stream_id,
            stream_version=version,
            event_id=new.event_id,
            type_=new.type,
            schema_version=new.schema_version,
            occurred_at=occurred_text,
            recorded_at=state.recorded_text,
            actor=new.actor,
            correlation_id=new.correlation_id,
            causation_id=new.causation_id,
        )
        digest = chain_hash(state.hash, envelope, prepared.metadata, prepared.payload)
        state.rows.append(
            (
                state.position,
                stream_id,
                version,
                new.event_id,
                new.type,
                new.schema_version,
                new.occurred_at,
                recorded_at,
                new.actor,
                new.correlation_id,
                new.causation_id,
                prepared.payload,
                prepared.metadata,
                state.hash,
                digest,
                occurred_text,
                state.recorded_text,
            )
        )
        return digest


def _repeat_result(
    stream_id: str, ids: list[uuid.UUID], stored: list[tuple[str, int, int]]
) -> AppendResult | StoreError:
    """An append repeated with the same event ids answers as the first time did."""
    if any(s[0] != stream_id for s in stored):
        return EventIdConflict(stream_id, ids)
    return AppendResult(
        stream_id=stream_id,
        first_version=stored[0][1],
        last_version=stored[-1][1],
        first_position=stored[0][2],
        last_position=stored[-1][2],
        event_ids=tuple(ids),
    )


__all__ = ["NOTIFY_CHANNEL", "AppendRequest", "GroupCommitWriter", "prepare"]
