"""Realtime through real WebSocket clients on two gateways (uvicorn) sharing one database and one
broker, with the projections and delivery workers: frames, ticks, resync, typing, bad frames. Each test
runs on SQLite + the embedded NATS and on PostgreSQL + RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import chat_support
import pytest
import pytest_asyncio
from realtime_support import BACKENDS, RealtimeStack, realtime_on

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats


@pytest_asyncio.fixture(params=BACKENDS, loop_scope="module")
async def rt(request: pytest.FixtureRequest, embedded_nats: str, tmp_path: Path) -> AsyncIterator[RealtimeStack]:
    async with realtime_on(request.param, embedded_nats, tmp_path) as s:
        yield s


async def test_a_message_arrives_as_a_frame_and_ticks_come_back(rt: RealtimeStack) -> None:
    c = await rt.conversation("alice", "direct", ["bob"])
    async with rt.connect(0, "alice") as alice, rt.connect(1, "bob") as bob:
        sent = await rt.send("alice", c, "Hello Bob")
        frame = await bob.next("message", conversation_id=c)
        assert (frame["seq"], frame["text"], frame["sender_id"]) == (1, "Hello Bob", "alice")
        assert frame["message_id"] == sent["message_id"] and frame["sent_at"]
        own = await alice.next("message", conversation_id=c)  # the sender's other sessions stay in step
        assert own["seq"] == 1
        await bob.send({"type": "ack", "conversation_id": c, "seq": 1})
        tick = await alice.next("receipt", user_id="bob")
        assert (tick["delivered_seq"], tick["read_seq"]) == (1, 0)
        await bob.send({"type": "read", "conversation_id": c, "seq": 1})
        ticks = await alice.next("receipt", user_id="bob", read_seq=1)
        assert ticks["delivered_seq"] == 1
    # The ticks come from the delivery worker, the status from the chat read model: two consumers of
    # the same events, each at its own pace, so the page may catch up a moment later (read-your-writes
    # covers the caller's own writes, and the Read is Bob's).
    status = None
    for _ in range(200):
        page = (await rt.call("GET", f"/v1/conversations/{c}/messages", "alice")).json()
        if (status := page[-1]["status"]) == "read":
            break
        await asyncio.sleep(0.05)
    assert status == "read"


async def test_acks_are_coalesced_and_never_go_backwards(rt: RealtimeStack) -> None:
    c = await rt.conversation("carol", "direct", ["dave"])
    for n in range(5):
        await rt.send("carol", c, f"m{n}")
    async with rt.connect(0, "carol") as carol, rt.connect(1, "dave") as dave:
        for seq in (1, 2, 5, 3, 4):
            await dave.send({"type": "ack", "conversation_id": c, "seq": seq})
        await asyncio.sleep(0.6)
        receipts = await carol.quiet("receipt", 0.5)
        assert receipts == [] or receipts[-1]["delivered_seq"] == 5
    audit = await rt.apps[0].state.store.read_stream(f"conversation-{c}")
    delivered = [e.payload["up_to_seq"] for e in audit if e.type == "Delivered"]
    assert delivered == [1, 5]  # the leading ack, then the window's highest


async def test_reconnect_with_resync_gets_every_missed_message_once_in_order(rt: RealtimeStack) -> None:
    c = await rt.conversation("erin", "direct", ["frank"])
    async with rt.connect(1, "frank") as frank:
        await rt.send("erin", c, "one")
        assert (await frank.next("message", conversation_id=c))["seq"] == 1
    # Frank is away for these. Erin's own socket sees the delivery worker publish the last of them:
    # a worker still publishing when Frank is back would hand him some live, before his resync (which
    # the protocol allows, docs/realtime.md), and that is not what this test is about.
    async with rt.connect(0, "erin") as erin:
        for n in range(2, 6):
            await rt.send("erin", c, f"m{n}")
        await erin.next("message", conversation_id=c, seq=5)
    async with rt.connect(0, "frank") as frank:
        await frank.send({"type": "resync", "conversations": {c: 1}})
        sends = asyncio.gather(*(rt.send("erin", c, f"live{n}") for n in range(3)))
        seqs = []
        while len(seqs) < 7:
            seqs.append((await frank.next("message", conversation_id=c))["seq"])
        await sends
        assert seqs == [2, 3, 4, 5, 6, 7, 8]
        assert await frank.quiet("message", 0.5) == []


async def test_typing_reaches_the_other_members_only(rt: RealtimeStack) -> None:
    c = await rt.conversation("gina", "group", ["hank"])
    other = await rt.conversation("ivan", "direct", ["judy"])
    async with rt.connect(0, "gina") as gina, rt.connect(1, "hank") as hank, rt.connect(1, "judy") as judy:
        await gina.send({"type": "typing", "conversation_id": c})
        frame = await hank.next("typing")
        assert frame == {"type": "typing", "conversation_id": c, "user_id": "gina"}
        assert await gina.quiet("typing", 0.3) == [] and await judy.quiet("typing", 0.3) == []
        await gina.send({"type": "typing", "conversation_id": other})
        assert (await gina.next("error"))["code"] == "not_found"


async def test_bad_frames_get_an_error_and_the_socket_stays_open(rt: RealtimeStack) -> None:
    c = await rt.conversation("kim", "direct", ["leo"])
    stranger = await rt.conversation("max", "direct", ["ned"])
    async with rt.connect(0, "kim") as kim:
        await kim.send("{not json")
        assert (await kim.next("error"))["code"] == "invalid_json"
        await kim.send({"type": "dance"})
        assert (await kim.next("error"))["code"] == "unknown_type"
        await kim.send({"type": "ack", "conversation_id": stranger, "seq": 1})
        assert (await kim.next("error"))["code"] == "not_found"
        await kim.send({"type": "ack", "conversation_id": c, "seq": "x"})
        assert (await kim.next("error"))["code"] == "invalid"
        await kim.send({"type": "ping"})
        assert await kim.next("pong") == {"type": "pong"}
    events = await rt.apps[0].state.store.read_stream(f"conversation-{stranger}")
    assert [e.type for e in events] == ["ConversationStarted"]
