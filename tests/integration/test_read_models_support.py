"""What the read-model tests share: a migrated database, a store, a projector fed from read_all, and
a small writer of real catalogue events. (No tests here.)"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.projections.projector import Projector
from shared.events.conversation import (
    ConversationStarted,
    Delivered,
    MemberAdded,
    MemberRemoved,
    MessageEdited,
    MessageRetracted,
    MessageSent,
    ObjectLink,
    Read,
)
from shared.events.envelope import NewEvent
from shared.events.users import UserProfileChanged, UserSeen
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

SHA = "0" * 64
RM_TABLES = (
    "rm_conversations",
    "rm_members",
    "rm_messages",
    "rm_object_links",
    "rm_message_files",
    "rm_users",
    "rm_audit_events",
    "rm_audit_event_users",
    "rm_audit_membership",
)


@dataclass
class Env:
    store: SqlEventStore
    engine: AsyncEngine
    projector: Projector
    seqs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    message_ids: dict[tuple[str, int], str] = field(default_factory=dict)

    async def _append(self, stream: str, event: Any, actor: str = "test") -> None:
        await self.store.append(stream, [NewEvent(event, actor)])

    async def start(self, conv: str, kind: str, members: list[str], title: str = "") -> None:
        event = ConversationStarted(
            conversation_id=conv, kind=kind, title=title, members=tuple(members), created_by=members[0]
        )
        await self._append(f"conversation-{conv}", event)

    async def send(
        self, conv: str, sender: str, body: str, *, links: tuple[ObjectLink, ...] = (), files: tuple[str, ...] = ()
    ) -> int:
        from shared.events.conversation import Attachment

        self.seqs[conv] += 1
        seq = self.seqs[conv]
        attachments = tuple(
            Attachment(file_id=f, name=f"{f}.pdf", mime="application/pdf", size=1, sha256=SHA) for f in files
        )
        mid = str(uuid.uuid4())
        self.message_ids[(conv, seq)] = mid
        event = MessageSent(
            conversation_id=conv,
            message_id=mid,
            seq=seq,
            sender_id=sender,
            client_msg_id=f"c{seq}",
            text=body,
            attachments=attachments,
            links=links,
        )
        await self._append(f"conversation-{conv}", event, sender)
        return seq

    async def delivered(self, conv: str, user: str, up_to: int) -> None:
        await self._append(f"conversation-{conv}", Delivered(conversation_id=conv, user_id=user, up_to_seq=up_to))

    async def read(self, conv: str, user: str, up_to: int) -> None:
        await self._append(f"conversation-{conv}", Read(conversation_id=conv, user_id=user, up_to_seq=up_to))

    async def edit(self, conv: str, seq: int, body: str, by: str) -> None:
        mid = self.message_ids[(conv, seq)]
        event = MessageEdited(conversation_id=conv, message_id=mid, seq=seq, text=body, edited_by=by)
        await self._append(f"conversation-{conv}", event)

    async def retract(self, conv: str, seq: int, by: str) -> None:
        mid = self.message_ids[(conv, seq)]
        event = MessageRetracted(conversation_id=conv, message_id=mid, seq=seq, retracted_by=by)
        await self._append(f"conversation-{conv}", event)

    async def add(self, conv: str, user: str) -> None:
        await self._append(f"conversation-{conv}", MemberAdded(conversation_id=conv, user_id=user, added_by="x"))

    async def remove(self, conv: str, user: str) -> None:
        event = MemberRemoved(conversation_id=conv, user_id=user, removed_by=user, reason="left")
        await self._append(f"conversation-{conv}", event)

    async def seen(self, user: str, name: str, *, changed: bool = False) -> None:
        cls = UserProfileChanged if changed else UserSeen
        await self._append(f"user-{user}", cls(user_id=user, name=name, roles=("user",)))

    async def project(self, page: int = 100) -> None:
        """Feed everything not yet applied, in pages as the runtime would (any partition mix)."""
        after = 0
        while batch := await self.store.read_all(after, page):
            await self.projector.apply(batch)
            after = batch[-1].position


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[Env]:
    migrate(database_url)
    store = await SqlEventStore.open(database_url)
    engine = create_engine(database_url, pool_size=2)
    try:
        yield Env(store, engine, Projector(engine))
    finally:
        await store.close()
        await engine.dispose()


async def dump(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every rm_* row (but checkpoints) in a stable order, search entries included."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in RM_TABLES:
        rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
        out[table] = sorted(tuple(str(v) for v in r) for r in rows)
    if conn.dialect.name == "postgresql":
        search = "SELECT position, conversation_id, seq, document::text FROM rm_search"
    else:
        search = "SELECT rowid, text FROM rm_search"
    out["rm_search"] = sorted(tuple(str(v) for v in r) for r in (await conn.execute(text(search))).all())
    return out
