"""What the gateway reads from the chat read models (docs/chat-design.md, docs/read-models.md).

Every query filters by the caller's ACTIVE membership: a non-member, and a former member, gets
None or an empty answer (the route answers 404). A former member therefore sees nothing of the
conversation after leaving, not even the messages from before: one rule, and no copy of messages
kept per leaver (decision recorded in docs/read-models.md).

Unread counts are `last_seq - read_seq` from the caller's own rm_members row: O(1) whatever the
group size.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, exists, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections import search as fts
from services.projections.tables import TABLES, checkpoints
from services.projections.timeline import MAX_LIMIT, message_columns, messages, to_view
from services.projections.views import (
    ConversationDetail,
    ConversationSummary,
    LastMessage,
    Member,
    MessageView,
    SearchHit,
    Unread,
    UserEntry,
)

__all__ = [
    "checkpoint",
    "conversation",
    "conversations",
    "file_visible",
    "messages",
    "object_messages",
    "search",
    "unread",
    "users",
]

_c, _mb, _m, _u = TABLES.conversations, TABLES.members, TABLES.messages, TABLES.users


def _mine(user_id: str | BindParameter[str]) -> ColumnElement[bool]:
    return and_(_mb.c.user_id == user_id, _mb.c.active.is_(True))


def _conversations_query() -> Select[Any]:
    last = _m.alias("last")
    return (
        select(
            _c,
            _mb.c.read_seq,
            last.c.message_id.label("last_message_id"),
            last.c.sender_id.label("last_sender_id"),
            last.c.retracted.label("last_retracted"),
        )
        .select_from(_mb.join(_c, _c.c.conversation_id == _mb.c.conversation_id))
        .outerjoin(last, and_(last.c.conversation_id == _c.c.conversation_id, last.c.seq == _c.c.last_seq))
        .where(_mine(bindparam("user_id")))
        .order_by(_c.c.updated_at.desc(), _c.c.conversation_id)
    )


# Built once: an alias built per call made ~20 objects in reference cycles (its column collections)
# for the cyclic collector, besides the building itself.
_CONVERSATIONS = _conversations_query()


async def conversations(conn: AsyncConnection, user_id: str) -> list[ConversationSummary]:
    """The caller's conversations, newest activity first."""
    out = []
    for r in await conn.execute(_CONVERSATIONS, {"user_id": user_id}):
        last_message = None
        if r.last_message_id is not None:
            preview = r.last_message_preview or ""
            last_message = LastMessage(
                r.last_message_id, r.last_seq, r.last_sender_id, preview, r.last_message_at, r.last_retracted
            )
        unread_count = max(r.last_seq - r.read_seq, 0)
        out.append(
            ConversationSummary(
                r.conversation_id, r.kind, r.title, last_message, r.last_seq, unread_count, r.updated_at
            )
        )
    return out


async def conversation(conn: AsyncConnection, user_id: str, conversation_id: str) -> ConversationDetail | None:
    row = (
        await conn.execute(
            select(_c, _mb.c.delivered_seq.label("my_delivered"), _mb.c.read_seq.label("my_read"))
            .join(_mb, _mb.c.conversation_id == _c.c.conversation_id)
            .where(_c.c.conversation_id == conversation_id, _mine(user_id))
        )
    ).first()
    if row is None:
        return None
    member_rows = await conn.execute(
        select(_mb.c.user_id, _u.c.name, _mb.c.joined_at, _mb.c.delivered_seq, _mb.c.read_seq)
        .outerjoin(_u, _u.c.user_id == _mb.c.user_id)
        .where(_mb.c.conversation_id == conversation_id, _mb.c.active.is_(True))
        .order_by(_mb.c.joined_at, _mb.c.user_id)
    )
    members = [Member(m.user_id, m.name, m.joined_at, m.delivered_seq, m.read_seq) for m in member_rows]
    return ConversationDetail(
        row.conversation_id,
        row.kind,
        row.title,
        row.description,
        row.avatar_color,
        members,
        row.created_at,
        row.created_by,
        row.updated_at,
        row.last_seq,
        max(row.last_seq - row.my_read, 0),
        row.my_delivered,
        row.my_read,
    )


async def unread(conn: AsyncConnection, user_id: str) -> Unread:
    """One rm_members row per conversation of the caller (its PK/index), one rm_conversations row each."""
    rows = await conn.execute(
        select(_mb.c.conversation_id, (_c.c.last_seq - _mb.c.read_seq).label("n"))
        .join(_c, _c.c.conversation_id == _mb.c.conversation_id)
        .where(_mine(user_id), _c.c.last_seq > _mb.c.read_seq)
    )
    counts = {r.conversation_id: r.n for r in rows}
    return Unread(sum(counts.values()), counts)


async def object_messages(
    conn: AsyncConnection, user_id: str, kind: str, object_id: str, limit: int = 200
) -> list[MessageView]:
    """Every message the caller may see that links the business object, across conversations,
    newest first."""
    links = TABLES.object_links
    query = (
        message_columns()
        .select_from(
            links.join(_mb, _mb.c.conversation_id == links.c.conversation_id).join(
                _m, and_(_m.c.conversation_id == links.c.conversation_id, _m.c.seq == links.c.seq)
            )
        )
        .where(links.c.kind == kind, links.c.object_id == object_id, _mine(user_id))
        .order_by(_m.c.position.desc())
        .limit(max(1, min(limit, MAX_LIMIT)))
    )
    return [to_view(r) for r in await conn.execute(query)]


async def search(
    conn: AsyncConnection, user_id: str, q: str, conversation_id: str | None = None, limit: int = 20
) -> list[SearchHit]:
    """Full-text search over the messages the caller may see, newest first, with highlights."""
    dialect = conn.dialect.name
    query = q.strip() if dialect == "postgresql" else fts.fts5_query(q)
    if not query:
        return []
    params: dict[str, object] = {"user_id": user_id, "q": query, "limit": max(1, min(limit, MAX_LIMIT))}
    if conversation_id is not None:
        params["conversation_id"] = conversation_id
    sql = text(fts.search_sql(dialect, conversation_id is not None)).columns(
        _m.c.conversation_id, _m.c.seq, _m.c.message_id, _m.c.sender_id, _m.c.text, _m.c.sent_at, _m.c.edited_at
    )
    rows = await conn.execute(sql, params)
    return [
        SearchHit(
            r.conversation_id,
            r.message_id,
            r.seq,
            r.sender_id,
            r.text,
            r.sent_at,
            r.edited_at,
            fts.to_html(r.highlight),
        )
        for r in rows
    ]


def _like_pattern(q: str) -> str:
    escaped = q.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def users(conn: AsyncConnection, q: str, limit: int = 20) -> list[UserEntry]:
    """People whose name contains `q` (case-insensitive, any script), by name."""
    query = select(_u).where(_u.c.name_folded != "")
    if q.strip():
        query = query.where(_u.c.name_folded.like(_like_pattern(q.strip()), escape="\\"))
    query = query.order_by(_u.c.name_folded, _u.c.user_id).limit(max(1, min(limit, MAX_LIMIT)))
    return [UserEntry(r.user_id, r.name, list(r.roles), r.segment, list(r.lines)) for r in await conn.execute(query)]


async def checkpoint(conn: AsyncConnection, projection: str, partition: int) -> int:
    """The last position applied by `projection` in `partition` (inclusive); 0 before any."""
    cp = checkpoints.c
    value = (
        await conn.execute(select(cp.position).where(cp.projection == projection, cp.partition == partition))
    ).scalar_one_or_none()
    return int(value or 0)


async def file_visible(conn: AsyncConnection, user_id: str, file_id: str) -> bool:
    """True when a message the caller can see (active member, not retracted) has this attachment."""
    files = TABLES.message_files
    query = select(
        exists().where(files.c.file_id == file_id, files.c.conversation_id == _mb.c.conversation_id, _mine(user_id))
    )
    return bool((await conn.execute(query)).scalar())
