"""The erasure projection: on PersonalDataErased (one person) or ConversationExpired (retention, one
conversation), scrub what the read models copied while it was readable (docs/audit.md, "Personal data").

It owns no table; it runs after chat, directory and audit in the same batch transaction, so rows
that batch inserted are scrubbed too. What it scrubs of the person (the data subject of
shared/store/personal.subject_of):
- chat: texts, attachments and links of their messages, their search entries, the conversation
  preview when their message is the last, titles and descriptions of conversations they started;
- audit: the personal fields and the summary of every event they are the subject of;
- support: the subject and rating comment of tickets they opened, and the personal fields (note
  texts, comments, subjects) of the ticket history events they are the subject of.
The directory blanks the name itself (directory.py). A rebuild reads the store, whose reads already
show the person's sealed fields as erased, and gives the same result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.audit.records import summary
from services.projections.tables import ChatTables
from shared.events.envelope import RecordedEvent
from shared.events.registry import UnknownEventType, registry
from shared.store.hashing import canonical_json
from shared.store.personal import ERASED_TEXT, erased, subject_of

TYPES = frozenset({"PersonalDataErased", "ConversationExpired"})


async def apply(conn: AsyncConnection, t: ChatTables, events: Iterable[RecordedEvent]) -> None:
    for e in events:
        if e.type == "PersonalDataErased" and isinstance(user := e.payload.get("user_id"), str):
            await _chat(conn, t, t.messages.c.sender_id == user, t.conversations.c.created_by == user)
            await _audit(conn, t, user=user)
            await _support(conn, t, user=user)
        elif e.type == "ConversationExpired" and isinstance(cid := e.payload.get("conversation_id"), str):
            await _chat(conn, t, t.messages.c.conversation_id == cid, t.conversations.c.conversation_id == cid)
            await _audit(conn, t, conversation_id=cid)
            await _support(conn, t, conversation_id=cid)


async def _chat(conn: AsyncConnection, t: ChatTables, theirs: Any, started: Any) -> None:
    """Scrub the messages matching `theirs` and the conversations matching `started`."""
    m, c = t.messages, t.conversations
    key = "position" if conn.dialect.name == "postgresql" else "rowid"
    positions = [row[0] for row in await conn.execute(select(m.c.position).where(theirs))]
    if positions:
        delete = text(f"DELETE FROM {t.search} WHERE {key} IN :ps").bindparams(bindparam("ps", expanding=True))
        await conn.execute(delete, {"ps": positions})
    await conn.execute(update(m).where(theirs, m.c.text != "").values(text=ERASED_TEXT))
    await conn.execute(update(m).where(theirs).values(attachments=[], links=[]))
    last_is_theirs = exists().where(and_(m.c.conversation_id == c.c.conversation_id, m.c.seq == c.c.last_seq, theirs))
    await conn.execute(
        update(c).where(c.c.last_message_preview.is_not(None), last_is_theirs).values(last_message_preview=ERASED_TEXT)
    )
    await conn.execute(update(c).where(started, c.c.title != "").values(title=ERASED_TEXT))
    await conn.execute(update(c).where(started, c.c.description != "").values(description=ERASED_TEXT))


async def _audit(
    conn: AsyncConnection, t: ChatTables, *, user: str | None = None, conversation_id: str | None = None
) -> None:
    a = t.audit
    query = select(a.events.c.position, a.events.c.type, a.events.c.actor, a.events.c.payload)
    if user is not None:
        query = query.join(a.event_users, a.event_users.c.position == a.events.c.position).where(
            a.event_users.c.user_id == user
        )
    else:
        query = query.where(a.events.c.conversation_id == conversation_id)
    changes = []
    for position, type_, actor, payload_text in await conn.execute(query):
        payload = orjson.loads(payload_text)
        if user is not None and subject_of(type_, actor, payload) != user:
            continue
        if not _erase_fields(type_, payload):
            continue
        changes.append(
            {"p": position, "b_payload": canonical_json(payload).decode(), "b_summary": summary(type_, actor, payload)}
        )
    if changes:
        stmt = (
            update(a.events)
            .where(a.events.c.position == bindparam("p"))
            .values(payload=bindparam("b_payload"), summary=bindparam("b_summary"))
        )
        await conn.execute(stmt, changes)


def _erase_fields(type_: str, payload: dict[str, Any]) -> bool:
    """Replace the event type's personal fields in `payload` by erasure markers; False for an
    unknown type (nothing is known to be personal in it)."""
    try:
        personal = registry.model_for(type_, registry.latest_version(type_)).personal_fields
    except UnknownEventType:
        return False
    for field in personal:
        value = payload.get(field)
        if value is not None:
            payload[field] = erased("l" if isinstance(value, list) else "o" if isinstance(value, dict) else "s")
    return True


async def _support(
    conn: AsyncConnection, t: ChatTables, *, user: str | None = None, conversation_id: str | None = None
) -> None:
    tickets, history = t.support.tickets, t.support.events
    opened = tickets.c.requester_id == user if user is not None else tickets.c.conversation_id == conversation_id
    await conn.execute(update(tickets).where(opened).values(subject=ERASED_TEXT))
    await conn.execute(
        update(tickets).where(opened, tickets.c.rating_comment.is_not(None)).values(rating_comment=ERASED_TEXT)
    )
    query = select(history.c.ticket_id, history.c.version, history.c.type, history.c.actor, history.c.payload)
    if conversation_id is not None:
        ids = select(tickets.c.ticket_id).where(tickets.c.conversation_id == conversation_id)
        query = query.where(history.c.ticket_id.in_(ids))
    changes = []
    for ticket_id, version, type_, actor, payload in await conn.execute(query):
        payload = dict(payload)
        if user is not None and subject_of(type_, actor, payload) != user:
            continue
        if _erase_fields(type_, payload):
            changes.append({"t": ticket_id, "v": version, "b_payload": payload})
    if changes:
        stmt = (
            update(history)
            .where(history.c.ticket_id == bindparam("t"), history.c.version == bindparam("v"))
            .values(payload=bindparam("b_payload"))
        )
        await conn.execute(stmt, changes)
