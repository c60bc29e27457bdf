"""The message timeline query and the statuses of the caller's own messages.

Status rule: over the OTHER active members of the conversation, a message is `read` when every one
of them has read_seq >= seq, else `delivered` when every one has delivered_seq >= seq, else `sent`
(also `sent` when nobody else is left). Groups also get `delivered_count` and `read_count`.
The other members' watermarks are read once per page (O(members)) and counted by bisection, not
once per message.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from sqlalchemy import Row, Select, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.tables import TABLES
from services.projections.views import MessageView, Status

MAX_LIMIT = 500
_c, _mb, _m = TABLES.conversations, TABLES.members, TABLES.messages


def message_columns() -> Select[Any]:
    m = _m.c
    return select(
        m.conversation_id,
        m.message_id,
        m.seq,
        m.sender_id,
        m.text,
        m.attachments,
        m.links,
        m.reply_to,
        m.sent_at,
        m.edited_at,
        m.retracted,
    )


def to_view(row: Row[Any], **status: Any) -> MessageView:
    return MessageView(
        row.conversation_id,
        row.message_id,
        row.seq,
        row.sender_id,
        row.text,
        list(row.attachments),
        list(row.links),
        row.reply_to,
        row.sent_at,
        row.edited_at,
        row.retracted,
        **status,
    )


async def messages(
    conn: AsyncConnection,
    user_id: str,
    conversation_id: str,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[MessageView] | None:
    """Messages with after_seq < seq < before_seq (both exclusive), oldest first; with no
    after_seq, the newest `limit` of them. None when the caller is not an active member."""
    kind = (
        await conn.execute(
            select(_c.c.kind)
            .join(_mb, _mb.c.conversation_id == _c.c.conversation_id)
            .where(_c.c.conversation_id == conversation_id, _mb.c.user_id == user_id, _mb.c.active.is_(True))
        )
    ).scalar_one_or_none()
    if kind is None:
        return None
    limit = max(1, min(limit, MAX_LIMIT))
    query = message_columns().where(_m.c.conversation_id == conversation_id)
    if after_seq is not None:
        query = query.where(_m.c.seq > after_seq)
    if before_seq is not None:
        query = query.where(_m.c.seq < before_seq)
    if after_seq is not None:
        rows = list((await conn.execute(query.order_by(_m.c.seq).limit(limit))).all())
    else:
        rows = list(reversed((await conn.execute(query.order_by(_m.c.seq.desc()).limit(limit))).all()))
    if not any(r.sender_id == user_id for r in rows):
        return [to_view(r) for r in rows]
    delivered, read = await _others_watermarks(conn, user_id, conversation_id)
    group = kind != "direct"
    return [
        to_view(r, **_status(r.seq, delivered, read, group)) if r.sender_id == user_id else to_view(r) for r in rows
    ]


async def _others_watermarks(conn: AsyncConnection, user_id: str, conversation_id: str) -> tuple[list[int], list[int]]:
    rows = (
        await conn.execute(
            select(_mb.c.delivered_seq, _mb.c.read_seq).where(
                and_(_mb.c.conversation_id == conversation_id, _mb.c.active.is_(True), _mb.c.user_id != user_id)
            )
        )
    ).all()
    return sorted(r.delivered_seq for r in rows), sorted(r.read_seq for r in rows)


def _status(seq: int, delivered: list[int], read: list[int], group: bool) -> dict[str, Any]:
    others = len(read)
    delivered_count = others - bisect_left(delivered, seq)  # members with watermark >= seq
    read_count = others - bisect_left(read, seq)
    status: Status = "sent"
    if others and read_count == others:
        status = "read"
    elif others and delivered_count == others:
        status = "delivered"
    if group:
        return {"status": status, "delivered_count": delivered_count, "read_count": read_count}
    return {"status": status}
