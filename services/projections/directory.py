"""The directory projection (rm_users): people as their tokens describe them, for `GET /v1/users?q=`.

UserSeen and UserProfileChanged both carry every attribute, so each is an upsert of the whole row
(first_seen is kept from the first one). PersonalDataErased blanks the name: the directory must not
keep what the erasure destroyed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.sql import insert
from services.projections.tables import ChatTables
from shared.events.envelope import RecordedEvent
from shared.events.users import PersonalDataErased, UserProfileChanged, UserSeen

TYPES = frozenset({"UserSeen", "UserProfileChanged", "PersonalDataErased"})


def _fold(events: Iterable[RecordedEvent]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    rows: dict[str, dict[str, Any]] = {}
    erased: set[str] = set()
    for recorded in events:
        if recorded.type not in TYPES:
            continue
        e, at = recorded.event, recorded.occurred_at
        if isinstance(e, UserSeen | UserProfileChanged):
            first_seen = rows[e.user_id]["first_seen"] if e.user_id in rows else at
            rows[e.user_id] = {
                "user_id": e.user_id,
                "name": e.name,
                "name_folded": e.name.casefold(),
                "roles": list(e.roles),
                "segment": e.segment,
                "lines": list(e.lines),
                "first_seen": first_seen,
                "updated_at": at,
            }
            erased.discard(e.user_id)
        elif isinstance(e, PersonalDataErased):
            if e.user_id in rows:
                rows[e.user_id].update(name="", name_folded="", updated_at=at)
            else:
                erased.add(e.user_id)
    return rows, erased


async def apply(conn: AsyncConnection, t: ChatTables, events: Iterable[RecordedEvent]) -> None:
    rows, erased = _fold(events)
    if rows:
        stmt = insert(conn, t.users)
        changed = ("name", "name_folded", "roles", "segment", "lines", "updated_at")
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["user_id"], set_={k: stmt.excluded[k] for k in changed}),
            list(rows.values()),
        )
    if erased:
        u = t.users
        stmt2 = update(u).where(u.c.user_id == bindparam("u")).values(name="", name_folded="")
        await conn.execute(stmt2, [{"u": user} for user in sorted(erased)])
