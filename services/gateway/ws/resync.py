"""Resync: the messages a socket missed, from the read model, with no gap against live frames.

`{"type":"resync","conversations":{"<id>": <last_seq>}}`: per conversation, the client holds every
message with seq <= last_seq (inclusive). The session holds live frames of the conversation
(Session.begin_resync) BEFORE the read, so nothing published meanwhile is lost; the read first waits
(bounded, WAIT) until the chat read model has applied the conversation's stream up to the store's
head at that moment, so that a message already published live before the socket joined is in the
history; then history and held frames are merged by seq, each seq sent once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.commands.domain import stream_id
from services.gateway.ws.session import Frame
from services.projections import queries
from services.projections.timeline import MAX_LIMIT
from services.projections.views import MessageView
from shared.events.partition import partition_of
from shared.store.tables import events

WAIT = 2.0
POLL = 0.01
# A client away for months in a busy group should fetch pages over HTTP instead.
MAX_MESSAGES = 5_000


class NotMember(Exception):
    pass


async def missed(engine: AsyncEngine, partitions: int, user_id: str, conversation_id: str, after: int) -> list[Frame]:
    """Message frames with seq > after, oldest first (at most MAX_MESSAGES); NotMember when not one."""
    await _caught_up(engine, partitions, conversation_id)
    frames: list[Frame] = []
    async with engine.connect() as conn:
        while len(frames) < MAX_MESSAGES:
            page = await queries.messages(conn, user_id, conversation_id, after_seq=after, limit=MAX_LIMIT)
            if page is None:
                raise NotMember(conversation_id)
            frames.extend(message_frame(m) for m in page)
            if len(page) < MAX_LIMIT:
                break
            after = page[-1].seq
    return frames


async def _caught_up(engine: AsyncEngine, partitions: int, conversation_id: str) -> None:
    stream = stream_id(conversation_id)
    async with engine.connect() as conn:
        head = (await conn.execute(select(func.max(events.c.position)).where(events.c.stream_id == stream))).scalar()
    if head is None:
        return
    partition = partition_of(stream, partitions)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if await queries.checkpoint(conn, "chat", partition) >= head:
                return
        await asyncio.sleep(POLL)


def message_frame(m: MessageView) -> Frame:
    frame: dict[str, Any] = {
        "type": "message",
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "message_id": m.message_id,
        "sender_id": m.sender_id,
        "text": m.text,
        "attachments": m.attachments,
        "links": m.links,
        "sent_at": m.sent_at.isoformat(),
    }
    if m.reply_to is not None:
        frame["reply_to"] = m.reply_to
    if m.edited_at is not None:
        frame["edited_at"] = m.edited_at.isoformat()
    if m.retracted:
        frame["retracted"] = True
    return frame
