"""The chat projection: conversations, membership with receipt watermarks, the message timeline,
object links, attachments and the search entries (docs/read-models.md, "Rules").

A batch is first folded in memory into per-table changes, then written with one executemany per
kind of change, in an order that gives the same result as applying the events one by one:
conversations exist before their members and messages; a message exists before it is edited;
retractions come after edits (a retracted message cannot be edited); the last-message preview is
computed from the final rows; watermarks are monotonic (GREATEST), so their order does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, Update, and_, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common import pg_driver
from services.projections import search
from services.projections.sql import greatest, insert, insert_ignore, insert_new
from services.projections.tables import ChatTables
from shared.events.conversation import (
    ConversationDetailsChanged,
    ConversationStarted,
    Delivered,
    MemberAdded,
    MemberRemoved,
    MessageEdited,
    MessageRetracted,
    MessageSent,
    Read,
)
from shared.events.envelope import RecordedEvent

TYPES = frozenset(
    t.model_fields["type"].default
    for t in (
        ConversationStarted,
        ConversationDetailsChanged,
        MemberAdded,
        MemberRemoved,
        MessageSent,
        MessageEdited,
        MessageRetracted,
        Delivered,
        Read,
    )
)
PREVIEW_CHARS = 140


@dataclass
class _Changes:
    started: list[dict[str, Any]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    membership: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    retracts: list[dict[str, Any]] = field(default_factory=list)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    watermarks: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    def join(self, c: str, u: str, at: datetime) -> None:
        self.membership[(c, u)] = {"c": c, "u": u, "active": True, "joined": at, "left": None, "rejoin": True}

    def leave(self, c: str, u: str, at: datetime) -> None:
        prior = self.membership.get((c, u))
        rejoin = prior is not None and prior["rejoin"]
        joined = prior["joined"] if prior is not None else at
        self.membership[(c, u)] = {"c": c, "u": u, "active": False, "joined": joined, "left": at, "rejoin": rejoin}

    def watermark(self, c: str, u: str, delivered: int, read: int) -> None:
        w = self.watermarks.setdefault((c, u), [0, 0])
        w[0] = max(w[0], delivered, read)  # read implies delivered
        w[1] = max(w[1], read)


def _fold(events: Iterable[RecordedEvent]) -> _Changes:
    ch = _Changes()
    for recorded in events:
        if recorded.type not in TYPES:
            continue
        e, at = recorded.event, recorded.occurred_at
        if isinstance(e, ConversationStarted):
            ch.started.append(
                {
                    "conversation_id": e.conversation_id,
                    "kind": e.kind,
                    "title": e.title,
                    "description": e.description,
                    "avatar_color": e.avatar_color,
                    "created_by": e.created_by,
                    "created_at": at,
                    "last_seq": 0,
                    "updated_at": at,
                }
            )
            for user in e.members:
                ch.join(e.conversation_id, user, at)
        elif isinstance(e, ConversationDetailsChanged):
            changed = {"b_title": e.title, "b_desc": e.description, "b_color": e.avatar_color}
            ch.details.append({"c": e.conversation_id, "at": at, **changed})
        elif isinstance(e, MemberAdded):
            ch.join(e.conversation_id, e.user_id, at)
        elif isinstance(e, MemberRemoved):
            ch.leave(e.conversation_id, e.user_id, at)
        elif isinstance(e, MessageSent):
            _fold_sent(ch, recorded, e)
        elif isinstance(e, MessageEdited):
            ch.edits.append({"c": e.conversation_id, "s": e.seq, "b_text": e.text, "at": at})
            ch.touched.add(e.conversation_id)
        elif isinstance(e, MessageRetracted):
            ch.retracts.append({"c": e.conversation_id, "s": e.seq})
            ch.touched.add(e.conversation_id)
        elif isinstance(e, Delivered):
            ch.watermark(e.conversation_id, e.user_id, e.up_to_seq, 0)
        elif isinstance(e, Read):
            ch.watermark(e.conversation_id, e.user_id, 0, e.up_to_seq)
    return ch


def _fold_sent(ch: _Changes, recorded: RecordedEvent, e: MessageSent) -> None:
    c, at = e.conversation_id, recorded.occurred_at
    ch.sent.append(
        {
            "conversation_id": c,
            "seq": e.seq,
            "message_id": e.message_id,
            "position": recorded.position,
            "sender_id": e.sender_id,
            "text": e.text,
            "attachments": [a.model_dump(mode="json") for a in e.attachments],
            "links": [link.model_dump(mode="json") for link in e.links],
            "reply_to": e.reply_to,
            "sent_at": at,
            "edited_at": None,
            "retracted": False,
        }
    )
    ch.files.extend({"file_id": a.file_id, "conversation_id": c, "seq": e.seq} for a in e.attachments)
    ch.links.extend({"kind": link.kind, "object_id": link.id, "conversation_id": c, "seq": e.seq} for link in e.links)
    if e.seq > ch.last.get(c, {"s": 0})["s"]:
        ch.last[c] = {"c": c, "s": e.seq, "at": at}
    ch.touched.add(c)
    # Sending implies the sender has read (and so received) everything up to their own message.
    ch.watermark(c, e.sender_id, e.seq, e.seq)


async def apply(conn: AsyncConnection, t: ChatTables, events: Iterable[RecordedEvent]) -> None:
    ch = _fold(events)
    if ch.started:
        await conn.execute(insert_ignore(conn, t.conversations), ch.started)
    if ch.details:
        await _details(conn, t, ch.details)
    await _membership(conn, t, list(ch.membership.values()))
    await _messages(conn, t, ch)
    await _last_message(conn, t, ch)
    if ch.watermarks and conn.dialect.name == "postgresql":
        await _pg_watermarks(conn, t, ch)
    elif ch.watermarks:
        rows = [{"c": c, "u": u, "d": d, "r": r} for (c, u), (d, r) in ch.watermarks.items()]
        await conn.execute(_sqlite_watermarks(t.members), rows)


# SQLite's statements of every batch, built once per table (services/projections/sql.py). SQLite's
# max(a, b) is GREATEST for the non-NULL values here.
@lru_cache(maxsize=64)
def _sqlite_watermarks(m: Table) -> Update:
    return (
        update(m)
        .where(and_(m.c.conversation_id == bindparam("c"), m.c.user_id == bindparam("u")))
        .values(
            delivered_seq=func.max(m.c.delivered_seq, bindparam("d")),
            read_seq=func.max(m.c.read_seq, bindparam("r")),
        )
    )


@lru_cache(maxsize=64)
def _sqlite_last_seq(conversations: Table) -> Update:
    c = conversations.c
    at = bindparam("at", type_=c.updated_at.type)
    return (
        update(conversations)
        .where(c.conversation_id == bindparam("c"), c.last_seq < bindparam("s"))
        .values(last_seq=bindparam("s"), last_message_at=at, updated_at=func.max(c.updated_at, at))
    )


@lru_cache(maxsize=64)
def _sqlite_preview(conversations: Table, messages: Table) -> Update:
    c, m = conversations.c, messages.c
    preview = (
        select(func.substr(m.text, 1, PREVIEW_CHARS))
        .where(m.conversation_id == c.conversation_id, m.seq == c.last_seq)
        .scalar_subquery()
    )
    return update(conversations).where(c.conversation_id == bindparam("c")).values(last_message_preview=preview)


async def _details(conn: AsyncConnection, t: ChatTables, rows: list[dict[str, Any]]) -> None:
    c = t.conversations.c
    stmt = (
        update(t.conversations)
        .where(c.conversation_id == bindparam("c"))
        .values(
            title=func.coalesce(bindparam("b_title"), c.title),
            description=func.coalesce(bindparam("b_desc"), c.description),
            avatar_color=func.coalesce(bindparam("b_color"), c.avatar_color),
            updated_at=greatest(conn, c.updated_at, bindparam("at", type_=c.updated_at.type)),
        )
    )
    await conn.execute(stmt, rows)


async def _membership(conn: AsyncConnection, t: ChatTables, ops: list[dict[str, Any]]) -> None:
    """Joining (again) re-activates and resets joined_at/left_at; leaving keeps joined_at. The
    watermarks survive a leave and a re-join: what was read stays read."""
    for rejoin in (True, False):
        rows = [
            {
                "conversation_id": op["c"],
                "user_id": op["u"],
                "active": op["active"],
                "joined_at": op["joined"],
                "left_at": op["left"],
                "delivered_seq": 0,
                "read_seq": 0,
            }
            for op in ops
            if op["rejoin"] is rejoin
        ]
        if not rows:
            continue
        stmt = insert(conn, t.members)
        keep = ("active", "left_at", "joined_at") if rejoin else ("active", "left_at")
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["conversation_id", "user_id"], set_={k: stmt.excluded[k] for k in keep}
            ),
            rows,
        )


async def _messages(conn: AsyncConnection, t: ChatTables, ch: _Changes) -> None:
    keys = [{"c": r["conversation_id"], "s": r["seq"]} for r in ch.sent]
    for table, rows in ((t.messages, ch.sent), (t.message_files, ch.files), (t.object_links, ch.links)):
        await insert_new(conn, table, rows)
    await search.index_sent(conn, t, keys)
    if not (ch.edits or ch.retracts):
        return  # most batches: the statements below cost SQLAlchemy ~100 µs to build
    m = t.messages.c
    at_message = and_(m.conversation_id == bindparam("c"), m.seq == bindparam("s"))
    if ch.edits:
        stmt = update(t.messages).where(at_message, m.retracted.is_(False))
        await conn.execute(stmt.values(text=bindparam("b_text"), edited_at=bindparam("at")), ch.edits)
        await search.reindex(conn, t, [{"c": r["c"], "s": r["s"]} for r in ch.edits])
    if ch.retracts:
        await search.unindex(conn, t, ch.retracts)
        stmt = update(t.messages).where(at_message)
        await conn.execute(stmt.values(text="", attachments=[], links=[], retracted=True), ch.retracts)
        for table in (t.object_links, t.message_files):
            where = and_(table.c.conversation_id == bindparam("c"), table.c.seq == bindparam("s"))
            await conn.execute(delete(table).where(where), ch.retracts)


# PostgreSQL: each of these is one statement for the whole batch, its rows joined in from parallel
# arrays, instead of one execution per conversation in the pipeline of an executemany (per row, the
# pipeline's Python work was most of the cost: the projections worker's CPU at 1,700 msg/s).
_PG_LAST = (
    # The conversations a batch touched: the last message moves on where the batch sent a later one
    # (k.s, else 0), and the preview is read again from the message at the (new) last seq, which an
    # edit or retraction in the batch may have changed. PostgreSQL's SET expressions all see the
    # row as it was, so c.last_seq below is the old one.
    "UPDATE {conversations} AS c SET last_seq = GREATEST(c.last_seq, k.s),"
    " last_message_at = CASE WHEN k.s > c.last_seq THEN k.at ELSE c.last_message_at END,"
    " updated_at = CASE WHEN k.s > c.last_seq THEN GREATEST(c.updated_at, k.at) ELSE c.updated_at END,"
    " last_message_preview = (SELECT substr(m.text, 1, {chars}) FROM {messages} m"
    " WHERE m.conversation_id = c.conversation_id AND m.seq = GREATEST(c.last_seq, k.s))"
    " FROM unnest(CAST(:cs AS varchar[]), CAST(:ss AS integer[]), CAST(:ats AS timestamptz[])) AS k(c, s, at)"
    " WHERE c.conversation_id = k.c"
)
_PG_WATERMARKS = (
    "UPDATE {members} AS m SET delivered_seq = GREATEST(m.delivered_seq, k.d), read_seq = GREATEST(m.read_seq, k.r)"
    " FROM unnest(CAST(:cs AS varchar[]), CAST(:us AS varchar[]), CAST(:ds AS integer[]), CAST(:rs AS integer[]))"
    " AS k(c, u, d, r) WHERE m.conversation_id = k.c AND m.user_id = k.u"
)


async def _pg_watermarks(conn: AsyncConnection, t: ChatTables, ch: _Changes) -> None:
    keys, marks = list(ch.watermarks), list(ch.watermarks.values())  # one entry per (conversation, user)
    params = {
        "cs": [c for c, _ in keys],
        "us": [u for _, u in keys],
        "ds": [d for d, _ in marks],
        "rs": [r for _, r in marks],
    }
    await pg_driver.execute(conn, _PG_WATERMARKS.format(members=t.members.name), params)


async def _pg_last_message(conn: AsyncConnection, t: ChatTables, ch: _Changes) -> None:
    if not ch.touched:
        return  # ch.last is within ch.touched
    names = {"conversations": t.conversations.name, "messages": t.messages.name, "chars": PREVIEW_CHARS}
    touched = sorted(ch.touched)
    last = [ch.last.get(c) for c in touched]
    params = {
        "cs": touched,
        "ss": [r["s"] if r else 0 for r in last],
        "ats": [r["at"] if r else None for r in last],
    }
    await pg_driver.execute(conn, _PG_LAST.format(**names), params)


async def _last_message(conn: AsyncConnection, t: ChatTables, ch: _Changes) -> None:
    if conn.dialect.name == "postgresql":
        await _pg_last_message(conn, t, ch)
        return
    if ch.last:
        await conn.execute(_sqlite_last_seq(t.conversations), list(ch.last.values()))
    if ch.touched:
        await conn.execute(_sqlite_preview(t.conversations, t.messages), [{"c": conv} for conv in sorted(ch.touched)])
