"""The tickets worker looks up the latest ticket of every conversation a batch's messages are in with
one query (rows.latest_of_conversations): it must answer what the one-conversation query answers,
for conversations with no ticket, one, and several (the newest; a tie on opened_at by ticket id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.tickets import rows
from services.tickets.tables import tickets
from shared.store.engine import create_engine
from shared.store.migrate import migrate

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def ticket(ticket_id: str, conversation_id: str | None, minutes: int, status: str = "open") -> dict[str, object]:
    return {
        "ticket_id": ticket_id, "conversation_id": conversation_id, "requester_id": "u1", "segment": "customers",
        "line": 1, "status": status, "assignee": None, "opened_at": T0 + timedelta(minutes=minutes),
        "queue_due_at": None, "version": 1,
    }  # fmt: skip


async def test_one_query_answers_as_the_query_per_conversation(database_url: str) -> None:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                tickets.insert(),
                [
                    ticket("t-a1", "conv-a", 0, "resolved"),
                    ticket("t-a2", "conv-a", 30),  # the newest of conv-a
                    ticket("t-b1", "conv-b", 10),
                    ticket("t-c1", "conv-c", 5),
                    ticket("t-c2", "conv-c", 5),  # the same minute: the higher ticket id wins
                    ticket("t-n", None, 50),  # opened by e-mail: no conversation
                ],
            )
        wanted = ["conv-a", "conv-b", "conv-c", "conv-none"]
        async with engine.connect() as conn:
            batched = await rows.latest_of_conversations(conn, [*wanted, "conv-a"])
            one_by_one = {c: await rows.latest_of_conversation(conn, c) for c in wanted}
            empty = await rows.latest_of_conversations(conn, [])
    finally:
        await engine.dispose()
    assert batched == one_by_one
    assert {c: (r.ticket_id if r else None) for c, r in batched.items()} == {
        "conv-a": "t-a2",
        "conv-b": "t-b1",
        "conv-c": "t-c2",
        "conv-none": None,
    }
    assert empty == {}
