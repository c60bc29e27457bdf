"""The audit projection: every event, readable and queryable, and membership intervals
(services/projections/audit_tables.py; docs/audit.md).

Unlike the other projections it takes every event type, including types this version does not know
(an auditor must see them all). A batch becomes one statement per table (on PostgreSQL the rows as
one JSON parameter, services/common/json_rows.py; an executemany on SQLite); membership changes are
applied in position order (a leave closes the stay a join opened, possibly in the same batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.audit.records import conversation_of, summary, users_of
from services.projections.sql import insert_ignore, insert_new
from services.projections.tables import ChatTables
from shared.events.envelope import RecordedEvent
from shared.events.registry import registry
from shared.store.hashing import canonical_json, format_time

TYPES = frozenset(registry.types())
"""Every type of the catalogue; the projection also records types it does not know."""


def _event_row(e: RecordedEvent) -> dict[str, Any]:
    return {
        "position": e.position,
        "recorded_at": format_time(e.recorded_at),
        "occurred_at": format_time(e.occurred_at),
        "actor": e.actor,
        "stream_id": e.stream_id,
        "type": e.type,
        "conversation_id": conversation_of(e.payload),
        "summary": summary(e.type, e.actor, e.payload),
        "payload": canonical_json(e.payload).decode(),
        "hash": e.hash,
    }


def _membership_ops(e: RecordedEvent) -> list[tuple[str, dict[str, Any]]]:
    """Joins and leaves; a payload without the expected user ids changes no membership (it is still
    recorded in rm_audit_events): one odd event must not stop the worker."""
    p, c = e.payload, conversation_of(e.payload)
    if c is None:
        return []
    at = {"c": c, "p": e.position, "at": e.recorded_at}
    if e.type == "ConversationStarted" and isinstance(p.get("members"), list):
        return [("join", {**at, "u": u}) for u in p["members"] if isinstance(u, str)]
    user = p.get("user_id")
    if not isinstance(user, str):
        return []
    if e.type == "MemberAdded":
        return [("join", {**at, "u": user})]
    if e.type == "MemberRemoved":
        return [("leave", {**at, "u": user})]
    return []


async def apply(conn: AsyncConnection, t: ChatTables, events: Iterable[RecordedEvent]) -> None:
    rows: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    ops: list[tuple[str, dict[str, Any]]] = []
    for e in events:
        rows.append(_event_row(e))
        users.extend({"user_id": u, "position": e.position} for u in sorted(users_of(e.actor, e.payload)))
        ops.extend(_membership_ops(e))
    if not rows:
        return
    a = t.audit
    await insert_new(conn, a.events, rows)
    await insert_new(conn, a.event_users, users)
    await _membership(conn, t, ops)


async def _membership(conn: AsyncConnection, t: ChatTables, ops: list[tuple[str, dict[str, Any]]]) -> None:
    if not ops:
        return  # most batches: the statements below cost SQLAlchemy ~100 µs to build
    m = t.audit.membership
    join = insert_ignore(conn, m)
    leave = (
        update(m)
        .where(
            and_(
                m.c.conversation_id == bindparam("c"),
                m.c.user_id == bindparam("u"),
                m.c.left_position.is_(None),
                m.c.joined_position < bindparam("p"),
            )
        )
        .values(left_position=bindparam("p"), left_at=bindparam("at", type_=m.c.left_at.type))
    )
    # Consecutive operations of one kind go in one executemany; order across kinds is kept.
    i = 0
    while i < len(ops):
        kind = ops[i][0]
        j = i
        while j < len(ops) and ops[j][0] == kind:
            j += 1
        chunk = [params for _, params in ops[i:j]]
        if kind == "join":
            await conn.execute(
                join,
                [
                    {"conversation_id": o["c"], "user_id": o["u"], "joined_position": o["p"], "joined_at": o["at"]}
                    for o in chunk
                ],
            )
        else:
            await conn.execute(leave, chunk)
        i = j
