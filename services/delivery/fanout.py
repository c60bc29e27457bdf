"""The delivery handler: apply a batch to the membership view, commit with the checkpoint, then
publish the frames on the ephemeral path and hand offline recipients to the notifier. Batches of
concurrent partition loops are applied together in one transaction (services/common/transaction_group.py).

Frames are published after the commit, so a redelivered batch (at or below the checkpoint) publishes
nothing twice; a crash between commit and publish loses those frames, which the client's resync
recovers (realtime frames are at most once; docs/realtime.md).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common import json_rows, pg_driver
from services.common.transaction_group import TransactionGroup
from services.delivery import frames as domain
from services.delivery.frames import Marks, Members, Outgoing
from services.delivery.realtime import encode, user_subject
from services.delivery.tables import checkpoints, members
from shared.events.envelope import RecordedEvent
from shared.events.partition import partition_of
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

CONVERSATION_TYPES = frozenset(
    {
        "ConversationStarted",
        "MemberAdded",
        "MemberRemoved",
        "ConversationDetailsChanged",
        "MessageSent",
        "MessageEdited",
        "MessageRetracted",
        "Delivered",
        "Read",
    }
)


class EphemeralPublisher(Protocol):
    async def publish_ephemeral(self, subject: str, data: bytes) -> None: ...


OfflineSink = Callable[[Outgoing], Awaitable[None]]
"""Gets every outgoing frame that has offline candidates (the notifier decides who is offline)."""


@dataclass(slots=True)
class _View:
    loaded: dict[str, Members] = field(default_factory=dict)
    existing: set[tuple[str, str]] = field(default_factory=set)
    dirty: set[tuple[str, str]] = field(default_factory=set)


class Fanout:
    def __init__(
        self,
        engine: AsyncEngine,
        partitions: int,
        publisher: EphemeralPublisher,
        metrics: MetricsRegistry,
        offline: OfflineSink | None = None,
    ) -> None:
        self._engine = engine
        # Concurrent batches (one per partition loop) are applied together: services/common/transaction_group.py.
        self._group: TransactionGroup[list[RecordedEvent], list[tuple[Outgoing, float | None]]] = TransactionGroup(
            engine, self._apply_together
        )
        self._partitions = partitions
        self._publisher = publisher
        self._offline = offline
        self._frames = metrics.counter("delivery_frames", "Realtime frames published, by frame type", ["type"])
        self._lag = metrics.histogram(
            "delivery_commit_to_publish_seconds", "From the event's record time to its frames' publication"
        )

    async def handle(self, batch: list[RecordedEvent]) -> None:
        outgoing = await self._apply(batch)
        for out, recorded_at in outgoing:
            await self._publish(out)
            if recorded_at is not None:
                self._lag.observe(max(0.0, time.time() - recorded_at))
            if self._offline is not None and out.offline_candidates:
                await self._offline(out)

    async def _apply(self, batch: list[RecordedEvent]) -> list[tuple[Outgoing, float | None]]:
        return await self._group.run(batch)

    async def _apply_together(
        self, conn: AsyncConnection, batches: list[list[RecordedEvent]]
    ) -> list[list[tuple[Outgoing, float | None]]]:
        """One pass over the batches of several partitions; each caller gets its own batch's frames."""
        owner: dict[int, int] = {}  # position -> the batch it came in (an event twice: the first)
        for i, b in enumerate(batches):
            for e in b:
                owner.setdefault(e.position, i)
        events = (
            batches[0] if len(batches) == 1 else [e for i, b in enumerate(batches) for e in b if owner[e.position] == i]
        )
        out: list[list[tuple[Outgoing, float | None]]] = [[] for _ in batches]
        done, view = await self._read(conn, events)
        fresh = [e for e in events if e.position > done[self._partition(e)]]
        for event in fresh:
            if event.type not in CONVERSATION_TYPES:
                continue
            conversation = _conversation(event)
            group = view.loaded.setdefault(conversation, {})
            before = {u: _key(m) for u, m in group.items()}
            at = event.recorded_at.timestamp()
            out[owner[event.position]].extend((o, at) for o in domain.apply(event, group))
            view.dirty.update((conversation, u) for u, m in group.items() if before.get(u) != _key(m))
        await self._save(conn, view)
        for event in fresh:
            p = self._partition(event)
            done[p] = max(done[p], event.position)
        await self._save_checkpoints(conn, done)
        return out

    def _partition(self, event: RecordedEvent) -> int:
        return partition_of(event.stream_id, self._partitions)

    async def _read(self, conn: AsyncConnection, events: list[RecordedEvent]) -> tuple[dict[int, int], _View]:
        """The checkpoints of the batch's partitions, and the members of every conversation in it
        (a redelivered event's too: loaded, not changed). On PostgreSQL both in one round trip."""
        parts = sorted({self._partition(e) for e in events})
        conversations = sorted({_conversation(e) for e in events if e.type in CONVERSATION_TYPES})
        if conn.dialect.name == "postgresql":
            reads: list[tuple[str, dict[str, object]]] = [(_PG_CHECKPOINTS, {"parts": parts})]
            if conversations:
                reads.append((_PG_MEMBERS, {"cs": conversations}))
            found, *loaded = await pg_driver.fetch_many(conn, reads)
            done = dict(found)
            member_rows = loaded[0] if loaded else []
        else:
            done = {r.partition: r.position for r in await conn.execute(_CHECKPOINTS, {"parts": parts})}
            member_rows = []
            if conversations:
                result = await conn.execute(_MEMBERS, {"cs": conversations})
                member_rows = [(r.conversation_id, r.user_id, r.active, r.delivered_seq, r.read_seq) for r in result]
        for p in set(parts) - done.keys():
            await conn.execute(checkpoints.insert().values(partition=p, position=0))
            done[p] = 0
        view = _View()
        for conversation, user, active, delivered, read in member_rows:
            view.loaded.setdefault(conversation, {})[user] = Marks(active, delivered, read)
            view.existing.add((conversation, user))
        return done, view

    async def _save_checkpoints(self, conn: AsyncConnection, done: dict[int, int]) -> None:
        if not done:
            return
        if conn.dialect.name == "postgresql":  # the rows as JSON, on the driver (services/common/json_rows.py)
            rows = [{"partition": p, "position": position} for p, position in done.items()]
            await json_rows.update_rows(conn, checkpoints, ("partition",), rows)
            return
        await conn.execute(_SAVE_CHECKPOINTS, [{"p": p, "at": position} for p, position in done.items()])

    async def _save(self, conn: AsyncConnection, view: _View) -> None:
        """The changed members: one statement for the updates, one for the new rows."""
        updates: list[dict[str, object]] = []
        inserts: list[dict[str, object]] = []
        for conversation, user in sorted(view.dirty):
            m = view.loaded[conversation][user]
            row = {"c": conversation, "u": user, "a": m.active, "d": m.delivered_seq, "r": m.read_seq}
            (updates if (conversation, user) in view.existing else inserts).append(row)
        if conn.dialect.name == "postgresql":
            # On the driver, the rows as one JSON parameter (services/common/json_rows.py): an
            # executemany cost a pipelined execution per changed member, most of this worker's CPU.
            await json_rows.update_rows(conn, members, _KEYS, [_columns(r) for r in updates])
            await json_rows.insert_rows(conn, members, [_columns(r) for r in inserts], tail="")
            return
        if updates:
            await conn.execute(_UPDATE_MEMBERS, updates)
        if inserts:
            await conn.execute(_INSERT_MEMBERS, inserts)

    async def _publish(self, out: Outgoing) -> None:
        data = encode(out.frame)
        for user in out.recipients:
            try:
                await self._publisher.publish_ephemeral(user_subject(user), data)
            except Exception as e:  # ephemeral: a lost frame is recovered by the client's resync
                log.warning("frame_publish_failed", user=user, type=out.frame["type"], error=repr(e))
                return
        self._frames.labels(str(out.frame["type"])).inc(len(out.recipients))


_PG_CHECKPOINTS = "SELECT partition, position FROM dl_checkpoints WHERE partition = ANY(CAST(:parts AS integer[]))"
_PG_MEMBERS = (
    "SELECT conversation_id, user_id, active, delivered_seq, read_seq FROM dl_members"
    " WHERE conversation_id = ANY(CAST(:cs AS varchar[]))"
)


# SQLite's statements, built once: building one cost SQLAlchemy more than SQLite's running it.
_CHECKPOINTS = select(checkpoints).where(checkpoints.c.partition.in_(bindparam("parts", expanding=True)))
_SAVE_CHECKPOINTS = (
    update(checkpoints).where(checkpoints.c.partition == bindparam("p")).values(position=bindparam("at"))
)
_MEMBERS = select(members).where(members.c.conversation_id.in_(bindparam("cs", expanding=True)))
_MARKS: dict[str, object] = {"active": bindparam("a"), "delivered_seq": bindparam("d"), "read_seq": bindparam("r")}
_UPDATE_MEMBERS = (
    update(members)
    .where((members.c.conversation_id == bindparam("c")) & (members.c.user_id == bindparam("u")))
    .values(_MARKS)
)
_INSERT_MEMBERS = members.insert().values(conversation_id=bindparam("c"), user_id=bindparam("u"), **_MARKS)
_KEYS = ("conversation_id", "user_id")


def _columns(row: dict[str, object]) -> dict[str, object]:
    """A member row keyed by bind names (SQLAlchemy refuses binds named as columns) keyed by column names."""
    return {
        "conversation_id": row["c"],
        "user_id": row["u"],
        "active": row["a"],
        "delivered_seq": row["d"],
        "read_seq": row["r"],
    }


def _conversation(event: RecordedEvent) -> str:
    return str(event.payload["conversation_id"])


def _key(m: Marks) -> tuple[bool, int, int]:
    return (m.active, m.delivered_seq, m.read_seq)
