"""The gateway's hand-over (services/gateway/ws/handover.py): a message this gateway commits goes
straight to the sockets it holds, beside delivery's copy through the broker. What a user checks: the
frame arrives without the delivery worker, it is the same frame whichever path brought it, and with
senders on two gateways every socket still gets each message once, in seq order.

Real uvicorn gateways, workers and brokers (tests/e2e/realtime_support.py); SQLite + the embedded
NATS and PostgreSQL + RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import chat_support
import httpx
import pytest
from chat_support import token
from realtime_support import BACKENDS, Client, RealtimeStack, realtime_on

from services.projections.handlers import KIND as PROJECTIONS

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats


def handed_over(rt: RealtimeStack, gateway: int, outcome: str) -> float:
    value = rt.apps[gateway].state.metrics.registry.get_sample_value(
        "ledgerline_realtime_handed_over_frames_total", {"outcome": outcome}
    )
    return float(value or 0.0)


@asynccontextmanager
async def gateway_client(rt: RealtimeStack, gateway: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.ports[gateway]}", timeout=30) as http:
        yield http


async def send_via(http: httpx.AsyncClient, user: str, conversation_id: str, text: str) -> dict[str, Any]:
    r = await http.post(
        f"/v1/conversations/{conversation_id}/messages",
        headers={"Authorization": f"Bearer {token(user)}"},
        json={"client_msg_id": uuid.uuid4().hex, "text": text},
    )
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_message_reaches_a_socket_on_its_gateway_without_the_delivery_worker(
    backend: str, embedded_nats: str, tmp_path: Path
) -> None:
    async with realtime_on(backend, embedded_nats, tmp_path, workers=(PROJECTIONS,)) as rt:
        c = await rt.conversation("alice", "direct", ["bob"])
        async with rt.connect(0, "bob") as here, rt.connect(1, "bob") as elsewhere, rt.connect(0, "alice") as own:
            for client in (here, elsewhere, own):  # as clients do on connecting: they follow c from seq 0
                await client.send({"type": "resync", "conversations": {c: 0}})
                await client.next("resync")
            sent = await rt.send("alice", c, "straight from the gateway")  # through gateway 0
            frame = await here.next("message", conversation_id=c)
            assert (frame["seq"], frame["message_id"]) == (1, sent["message_id"])
            assert frame["text"] == "straight from the gateway"
            assert (await own.next("message", conversation_id=c))["seq"] == 1  # the sender's sessions too
            # Gateway 1 committed nothing: its sockets hear of the message from delivery alone.
            assert await elsewhere.quiet("message", 0.5) == []
            assert handed_over(rt, 0, "sent") == 2 and handed_over(rt, 1, "sent") == 0
            # The frame is the one a resync builds from the read model (and delivery from the event).
            async with rt.connect(1, "bob") as later:
                await later.send({"type": "resync", "conversations": {c: 0}})
                assert await later.next("message", conversation_id=c) == frame


@pytest.mark.parametrize("backend", BACKENDS)
async def test_both_paths_give_the_same_frame(backend: str, embedded_nats: str, tmp_path: Path) -> None:
    async with realtime_on(backend, embedded_nats, tmp_path) as rt:
        c = await rt.conversation("carol", "direct", ["dave"])
        link = {"kind": "deal", "id": "D-17", "title": "Supply of pipes"}
        async with rt.connect(0, "dave") as here, rt.connect(1, "dave") as elsewhere:
            await here.send({"type": "resync", "conversations": {c: 0}})  # following c: seq 1 is next here
            await here.next("resync")
            r = await rt.call(
                "POST",
                f"/v1/conversations/{c}/messages",
                "carol",
                json={"client_msg_id": "m1", "text": "Привет, see the deal", "links": [link]},
            )
            assert r.status_code == 201, r.text
            fast = await here.next("message", conversation_id=c)  # handed over by gateway 0
            assert handed_over(rt, 0, "sent") == 1
            durable = await elsewhere.next("message", conversation_id=c)  # delivery's, through the broker
            assert fast == durable
            assert fast["links"] == [link] and fast["text"] == "Привет, see the deal"
            # Delivery's copy reached gateway 0's socket too, and was dropped there as a duplicate.
            assert await here.quiet("message", 0.5) == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_conversation_the_socket_does_not_follow_yet_is_left_to_delivery(
    backend: str, embedded_nats: str, tmp_path: Path
) -> None:
    """Without the delivery worker nothing introduces the conversation to Ivan's socket, so its
    messages are not handed over either (they would come before the `conversation` frame); once he
    follows it (a resync), the next one is."""
    async with (
        realtime_on(backend, embedded_nats, tmp_path, workers=(PROJECTIONS,)) as rt,
        rt.connect(0, "ivan") as ivan,
    ):
        c = await rt.conversation("hana", "direct", ["ivan"])
        await rt.send("hana", c, "first")
        assert await ivan.quiet("message", 0.5) == []
        assert (handed_over(rt, 0, "sent"), handed_over(rt, 0, "left_to_delivery")) == (0, 1)
        await ivan.send({"type": "resync", "conversations": {c: 0}})
        assert (await ivan.next("message", conversation_id=c))["seq"] == 1  # from the read model
        await ivan.next("resync")
        await rt.send("hana", c, "second")
        assert (await ivan.next("message", conversation_id=c))["seq"] == 2
        assert handed_over(rt, 0, "sent") == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_new_conversation_is_announced_before_its_first_message(
    backend: str, embedded_nats: str, tmp_path: Path
) -> None:
    """The `conversation` frame that introduces a conversation comes from delivery; a message of a
    conversation the socket does not follow yet is not handed over, so it cannot overtake it."""
    async with realtime_on(backend, embedded_nats, tmp_path) as rt, rt.connect(0, "ivan") as ivan:
        c = await rt.conversation("hana", "direct", ["ivan"])
        await rt.send("hana", c, "first")
        await rt.send("hana", c, "second")
        frames = []
        while len(frames) < 3:
            frame = await ivan.next()
            if frame["type"] in ("conversation", "message"):
                frames.append((frame["type"], frame.get("event"), frame.get("seq")))
        assert frames == [("conversation", "started", None), ("message", None, 1), ("message", None, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_senders_on_two_gateways_every_socket_gets_each_message_once_in_order(
    backend: str, embedded_nats: str, tmp_path: Path
) -> None:
    """Messages committed by gateway 1 reach gateway 0's socket only through delivery, while gateway 0
    hands its own over at once: a handed-over frame that is not the next seq must wait for delivery's
    copy, or the one before it would be lost (or come out of order)."""
    total = 60
    async with realtime_on(backend, embedded_nats, tmp_path) as rt:
        c = await rt.conversation("erin", "group", ["frank", "gina"])
        async with (
            rt.connect(0, "frank") as frank0,
            rt.connect(1, "frank") as frank1,
            rt.connect(0, "gina") as gina0,
            gateway_client(rt, 0) as via0,
            gateway_client(rt, 1) as via1,
        ):

            async def sender(user: str, http: httpx.AsyncClient, n: int) -> None:
                for i in range(n):
                    await send_via(http, user, c, f"{user} {i}")

            # Four senders, two on each gateway, all at once: the seqs interleave across gateways.
            await asyncio.gather(
                sender("erin", via0, total // 4),
                sender("gina", via1, total // 4),
                sender("frank", via0, total // 4),
                sender("erin", via1, total // 4),
            )
            for client in (frank0, frank1, gina0):
                assert await seqs(client, c, total) == list(range(1, total + 1))
                assert await client.quiet("message", 0.3) == []  # and nothing twice
            # Whether gateway 0's frames went straight out depended on the interleaving; the next one
            # after all of them is the next seq everywhere, so it does.
            before = handed_over(rt, 0, "sent")
            await send_via(via0, "erin", c, "after the rush")
            for client in (frank0, frank1, gina0):
                assert (await client.next("message", conversation_id=c))["seq"] == total + 1
            assert handed_over(rt, 0, "sent") == before + 2  # frank's and gina's sockets on gateway 0


async def seqs(client: Client, conversation_id: str, count: int) -> list[int]:
    got: list[int] = []
    while len(got) < count:
        got.append(int((await client.next("message", conversation_id=conversation_id))["seq"]))
    return got
