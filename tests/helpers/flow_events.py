"""Appending realistic events through the real store, fast (concurrent appends group-commit)."""

from __future__ import annotations

import asyncio
import uuid

from shared.events.conversation import MessageSent
from shared.events.envelope import NewEvent
from shared.store.sql import SqlEventStore

TEXT = "x" * 500  # with the envelope, ~1 KB of CloudEvents JSON


def message(conversation: str, seq: int) -> NewEvent:
    sent = MessageSent(
        conversation_id=conversation,
        message_id=str(uuid.uuid4()),
        seq=seq,
        sender_id="user-a",
        client_msg_id=f"c{seq}",
        text=TEXT,
    )
    return NewEvent(sent, actor="user-a")


async def append_messages(
    store: SqlEventStore,
    streams: int,
    per_stream: int,
    chunk: int = 10,
    start_seq: int = 1,
    ids: list[str] | None = None,
) -> list[str]:
    """Append `per_stream` MessageSent to each of `streams` conversations (in chunks of `chunk` per
    append, streams concurrently); returns the stream ids. Pass `ids` (and `start_seq`) to go on."""
    conversations = ids or [str(uuid.uuid4()) for _ in range(streams)]

    async def fill(conversation: str) -> None:
        for first in range(start_seq, start_seq + per_stream, chunk):
            last = min(first + chunk, start_seq + per_stream)
            await store.append(f"conversation-{conversation}", [message(conversation, s) for s in range(first, last)])

    await asyncio.gather(*(fill(c) for c in conversations))
    return conversations
