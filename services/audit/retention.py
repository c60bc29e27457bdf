"""Retention per conversation kind (LEDGERLINE_RETENTION_DAYS_DIRECT|GROUP|SUPPORT; 0 keeps): a
conversation whose last activity is older than its kind's setting has its keys destroyed (its
sealed texts, titles and file names read as erased from then on) and ConversationExpired recorded
on its stream; the erasure projection scrubs the read models' copies. The chain is untouched.

Last activity is the chat read model's `updated_at` (creation, details, last message). A
conversation that gets new messages later keeps them under a new key, until it expires again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.tables import TABLES
from shared.config import Settings
from shared.events.conversation import ConversationExpired
from shared.events.envelope import NewEvent
from shared.logging import get_logger
from shared.store.sql import SqlEventStore

log = get_logger(__name__)
ACTOR = "system:retention"
Kind = Literal["direct", "group", "support"]


def retention_days(settings: Settings) -> dict[Kind, int]:
    return {
        "direct": settings.retention_days_direct,
        "group": settings.retention_days_group,
        "support": settings.retention_days_support,
    }


async def expire_conversations(
    store: SqlEventStore, engine: AsyncEngine, settings: Settings, now: datetime | None = None
) -> list[str]:
    """Expire what is due at `now` (default: now); returns the conversation ids expired."""
    now = now or datetime.now(UTC)
    c = TABLES.conversations.c
    due: list[tuple[str, Kind, int]] = []
    async with engine.connect() as conn:
        for kind, days in retention_days(settings).items():
            if days > 0:
                query = select(c.conversation_id).where(c.kind == kind, c.updated_at < now - timedelta(days=days))
                due.extend((row.conversation_id, kind, days) for row in await conn.execute(query))
    live = await store.keys.live_scopes([cid for cid, _, _ in due]) if due else set()
    expired = []
    for cid, kind, days in due:
        if cid not in live:
            continue  # expired before, and nothing new sealed since
        await store.keys.expire(cid)
        event = ConversationExpired(conversation_id=cid, kind=kind, retention_days=days)
        await store.append(f"conversation-{cid}", [NewEvent(event, actor=ACTOR)])
        expired.append(cid)
    log.info("retention_applied", expired=len(expired), due=len(due))
    return expired
