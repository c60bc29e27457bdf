"""The chaos checker itself (bench/chaos/check.py), on both databases: a clean history passes, and each
violation planted afterwards (a read-model row deleted or doubled, a wrong last_seq, a watermark beyond the
last message, a 2xx answer the store never kept, a doubled MessageSent, a frame a receiver never got) is
named with the message and the model it concerns."""

from __future__ import annotations

import uuid
from typing import Any

import chat_support
import pytest
from chat_support import PARTITIONS, ChatStack
from sqlalchemy import select

from bench.chaos.check import Report, RunRecord, check, settle
from services.projections.tables import TABLES
from shared.events.conversation import MessageSent
from shared.events.envelope import NewEvent
from shared.store.engine import create_engine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures


async def projected(stack: ChatStack) -> None:
    """Until the chat read model has applied every stored event (bounded)."""
    engine = create_engine(stack.settings.database_url)
    try:
        assert await settle(engine, PARTITIONS, timeout=30.0) == 0
    finally:
        await engine.dispose()


async def history(stack: ChatStack) -> RunRecord:
    """A direct and a group conversation with a few messages and receipts; the record a load would keep."""
    record = RunRecord()
    convs = {
        await stack.conversation("ann", "direct", ["bob"]): ["ann", "bob"],
        await stack.conversation("cat", "group", ["ann", "dan"]): ["cat", "ann", "dan"],
    }
    for conv, members in convs.items():
        record.members[conv] = members
        for n in range(4):
            sender = members[n % 2]
            got = await stack.send(sender, conv, f"hello {n}", client_msg_id=f"{sender}-{n}")
            record.accepted.append({"conversation_id": conv, "message_id": got["message_id"], "seq": got["seq"],
                                    "client_msg_id": f"{sender}-{n}", "sender_id": sender})  # fmt: skip
        r = await stack.call("POST", f"/v1/conversations/{conv}/read", members[-1], json={"up_to_seq": 3})
        assert r.status_code == 204, r.text
    record.live["ann"] = [(a["conversation_id"], a["seq"]) for a in record.accepted]
    await projected(stack)
    return record


async def run(stack: ChatStack, record: RunRecord) -> Report:
    engine = create_engine(stack.settings.database_url)
    try:
        return await check(engine, record)
    finally:
        await engine.dispose()


def named(report: Report, check_: str, model: str, **where: Any) -> bool:
    return any(
        v.check == check_ and v.model == model and all(getattr(v, k) == w for k, w in where.items())
        for v in report.violations
    )


async def test_a_clean_history_passes_with_every_message_counted(stack: ChatStack) -> None:
    record = await history(stack)
    report = await run(stack, record)
    assert report.ok, report.text()
    assert (report.accepted, report.events_messages, report.read_model_rows) == (8, 8, 8)
    assert report.receivers == 1 and report.live == report.expected_deliveries == 8
    assert report.chain_checked > 8


async def test_each_planted_violation_is_named(stack: ChatStack) -> None:
    record = await history(stack)
    direct, group = list(record.members)
    first, last = record.accepted[0], record.accepted[7]
    engine = create_engine(stack.settings.database_url)
    m, c, mem = TABLES.messages, TABLES.conversations, TABLES.members
    try:
        async with engine.begin() as conn:
            await conn.execute(m.delete().where(m.c.message_id == first["message_id"]))
            row = (await conn.execute(select(m).where(m.c.message_id == last["message_id"]))).mappings().one()
            await conn.execute(m.insert().values(dict(row) | {"seq": 99, "position": row["position"] + 10**9}))
            await conn.execute(c.update().where(c.c.conversation_id == group).values(last_seq=2))
            await conn.execute(
                mem.update().where(mem.c.conversation_id == direct, mem.c.user_id == "bob").values(delivered_seq=40)
            )
    finally:
        await engine.dispose()
    # A second MessageSent for a message already stored (as a send decided twice would append).
    doubled = record.accepted[1]
    again = MessageSent(conversation_id=direct, message_id=doubled["message_id"], seq=5, sender_id="bob",
                        client_msg_id="bob-again", text="twice")  # fmt: skip
    await stack.app.state.store.append(f"conversation-{direct}", [NewEvent(again, actor="bob")])
    lost = {"conversation_id": direct, "message_id": str(uuid.uuid4()), "seq": 6, "client_msg_id": "x-1",
            "sender_id": "ann"}  # fmt: skip
    record.accepted.append(lost)
    record.live["ann"] = record.live["ann"][1:]  # the receiver never got the first message

    report = await run(stack, record)

    assert not report.ok
    assert named(report, "missing", "rm_messages", message_id=first["message_id"], seq=first["seq"])
    assert named(report, "doubled", "rm_messages", message_id=last["message_id"])
    assert named(report, "last_seq", "rm_conversations", conversation_id=group)
    assert named(report, "watermark_beyond_last", "rm_members", conversation_id=direct, user_id="bob")
    assert named(report, "doubled", "events", message_id=doubled["message_id"])
    assert named(report, "lost", "events", message_id=lost["message_id"])
    assert named(report, "not_delivered", "websocket", message_id=first["message_id"], user_id="ann")
    assert first["message_id"] in report.text(limit=100)
