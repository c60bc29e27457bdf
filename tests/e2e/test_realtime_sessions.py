"""Realtime sessions through real WebSocket clients: several sessions of one user, a slow consumer,
and a gateway killed with SIGKILL (a real child process) whose users go offline for others."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import chat_support
import pytest
import pytest_asyncio
import websockets
from helpers.processes import Child, wait_until
from realtime_support import Client, RealtimeStack, realtime_stack
from websockets.frames import Close

from services.embedded.ports import free_port
from services.gateway.ws.session import OUTBOX_LIMIT, SLOW_CONSUMER

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats


@pytest_asyncio.fixture(loop_scope="module")
async def rt(embedded_nats: str, tmp_path: Path) -> AsyncIterator[RealtimeStack]:
    async with realtime_stack(tmp_path, embedded_nats) as s:
        yield s


async def frames_until(client: Client, type_: str, **match: Any) -> list[dict[str, Any]]:
    """Every frame up to and including the first of `type_` matching `match`, presence left out."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while True:
            frame: dict[str, Any] = json.loads(await client.ws.recv())
            if frame["type"] != "presence":
                got.append(frame)
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return got


async def test_every_session_of_a_user_gets_every_frame(rt: RealtimeStack) -> None:
    c = await rt.conversation("uma", "group", ["vic"])
    async with (
        rt.connect(0, "uma") as desktop,
        rt.connect(0, "uma") as web,
        rt.connect(1, "uma") as phone,
        rt.connect(1, "vic") as vic,
    ):
        sessions = [desktop, web, phone]
        for n in range(3):
            await rt.send("vic", c, f"from vic {n}")
        await rt.send("uma", c, "from uma")
        for session in sessions:
            frames = await frames_until(session, "message", conversation_id=c, seq=4)
            assert [(f["seq"], f["text"]) for f in frames if f["type"] == "message"] == [
                (1, "from vic 0"),
                (2, "from vic 1"),
                (3, "from vic 2"),
                (4, "from uma"),
            ]
        await vic.send({"type": "typing", "conversation_id": c})
        for session in sessions:
            assert await session.next("typing") == {"type": "typing", "conversation_id": c, "user_id": "vic"}
        await vic.send({"type": "ack", "conversation_id": c, "seq": 4})
        for session in sessions:
            tick = await session.next("receipt", user_id="vic", delivered_seq=4)
            assert tick["conversation_id"] == c
        r = await rt.call("POST", f"/v1/conversations/{c}/members", "uma", json={"user_id": "wes"})
        assert r.status_code == 201, r.text
        for session in sessions:
            frame = await session.next("conversation", event="member_added")
            assert (frame["conversation_id"], frame["user_id"]) == (c, "wes")

        await web.ws.close()  # one session leaves: the others go on, and uma stays online for vic
        await rt.send("vic", c, "after web left")
        for session in (desktop, phone):
            assert (await session.next("message", conversation_id=c))["seq"] == 5
        assert {"type": "presence", "user_id": "uma", "status": "offline"} not in await vic.quiet("presence", 0.5)


def _stalled_socket(port: int) -> socket.socket:
    """A connected socket with a tiny receive buffer, so that a client that stops reading pushes back
    on the server after a few KB instead of the megabytes that loopback autotuning allows."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_slow_consumer_is_closed_with_a_reason_and_others_get_every_frame(rt: RealtimeStack) -> None:
    c = await rt.conversation("xena", "group", ["yuri", "zoe"])
    stalled = _stalled_socket(rt.ports[1])
    slow_ws = await websockets.connect(
        rt.url(1, "yuri"), sock=stalled, max_queue=1, compression=None, ping_interval=None, open_timeout=10
    )
    slow = Client(slow_ws)
    seen: list[int] = []
    yuri_offline = asyncio.Event()
    try:
        async with rt.connect(0, "zoe") as zoe:
            await zoe.next("presence", user_id="yuri", status="online")

            async def watch() -> None:  # zoe reads all the time, as a healthy client does
                while True:
                    frame = json.loads(await zoe.ws.recv())
                    if frame["type"] == "message":
                        seen.append(frame["seq"])
                    elif frame == {"type": "presence", "user_id": "yuri", "status": "offline"}:
                        yuri_offline.set()

            watcher = asyncio.create_task(watch())
            sent = 0
            bulky = "x" * 15_000  # big frames fill the socket buffers (megabytes on loopback) within a few hundred
            # The slow socket is closed once its outbox (OUTBOX_LIMIT frames) overflows; a bound on the
            # loop keeps a regression from spinning forever.
            while not yuri_offline.is_set():
                assert sent < 10 * OUTBOX_LIMIT, "the slow consumer was never closed"
                await asyncio.gather(*(rt.send("xena", c, f"{sent + n} {bulky}") for n in range(20)))
                sent += 20
            # Now the slow client reads again: what was queued before it fell behind, then the close.
            draining = asyncio.create_task(_drain(slow))
            async with asyncio.timeout(30):
                while len(seen) < sent:  # noqa: ASYNC110  # the watcher task fills `seen`
                    await asyncio.sleep(0.02)
            watcher.cancel()
        assert sorted(seen) == list(range(1, sent + 1))  # zoe got every message, none twice
        got, closed = await draining
        assert (closed.code, closed.reason.split(":")[0]) == (SLOW_CONSUMER, "slow consumer")
        assert got == list(range(1, len(got) + 1)) and len(got) < sent
    finally:
        await slow.ws.close()

    # A reconnect with resync gets everything it missed, once, in order.
    async with rt.connect(0, "yuri") as again:
        await again.send({"type": "resync", "conversations": {c: got[-1] if got else 0}})
        done = await frames_until(again, "resync", done=True)
        missed = [f["seq"] for f in done if f["type"] == "message"]
        assert (got + missed) == list(range(1, sent + 1))


async def test_a_resync_longer_than_the_outbox_gets_every_message_and_keeps_the_socket(rt: RealtimeStack) -> None:
    c = await rt.conversation("abel", "direct", ["cleo"])
    missed = OUTBOX_LIMIT + 44
    for first in range(0, missed, 50):
        await asyncio.gather(*(rt.send("abel", c, f"m{n}") for n in range(first, min(missed, first + 50))))
    async with rt.connect(1, "cleo") as cleo:
        await cleo.send({"type": "resync", "conversations": {c: 0}})
        frames = await frames_until(cleo, "resync", done=True)
        seqs = [f["seq"] for f in frames if f["type"] == "message"]
        # A delivery worker still catching up may send some live before the resync frame is read (the
        # next test covers that race): each seq once; the live ones, then the resynced ones, in order.
        assert sorted(seqs) == list(range(1, missed + 1)), "a message missing or doubled"
        assert sum(1 for a, b in pairwise(seqs) if b < a) <= 1
        assert frames[-1]["conversations"] == {c: missed}
        await rt.send("abel", c, "live again")
        assert (await cleo.next("message", conversation_id=c))["seq"] == missed + 1


async def test_a_live_frame_before_the_resync_does_not_hide_older_missed_messages(rt: RealtimeStack) -> None:
    c = await rt.conversation("dina", "direct", ["emil"])
    for n in range(5):
        await rt.send("dina", c, f"while away {n}")
    async with rt.connect(0, "emil") as emil:
        await rt.send("dina", c, "live")
        # Live frames before emil asks to resync: 6, and any older one the delivery worker was still
        # publishing when emil connected.
        live = [
            f["seq"] for f in await frames_until(emil, "message", conversation_id=c, seq=6) if f["type"] == "message"
        ]
        await emil.send({"type": "resync", "conversations": {c: 0}})
        frames = await frames_until(emil, "resync", done=True)
        resynced = [f["seq"] for f in frames if f["type"] == "message"]
        assert resynced == [n for n in range(1, 6) if n not in live]  # the older ones, none twice
        assert sorted(live + resynced) == [1, 2, 3, 4, 5, 6]
        assert frames[-1]["conversations"] == {c: 6}


async def _drain(client: Client) -> tuple[list[int], Close]:
    """Read until the server closes: the message seqs received, and the close frame it sent."""
    got: list[int] = []
    try:
        async with asyncio.timeout(30):
            while True:
                frame = json.loads(await client.ws.recv())
                if frame["type"] == "message":
                    got.append(frame["seq"])
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None, "closed without a close frame"
        return got, e.rcvd


async def test_a_killed_gateways_users_go_offline_for_others(embedded_nats: str, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    async with realtime_stack(tmp_path, embedded_nats, gateways=1) as rt:
        c = await rt.conversation("amos", "direct", ["bea"])
        port = free_port()
        child = Child(
            "gateway",
            "gateway_proc.py",
            [
                "--db", rt.database_url, "--broker", embedded_nats, "--namespace", rt.namespace,
                "--port", str(port), "--secret", chat_support.SECRET, "--partitions", str(chat_support.PARTITIONS),
                "--heartbeat", "0.5", "--ttl", "2",
            ],
            log_dir,
        )  # fmt: skip
        try:
            await wait_until(lambda: child.printed("listening"), 60, "the gateway process", [child])
            async with rt.connect(0, "amos") as amos:
                url = f"ws://127.0.0.1:{port}/v1/ws?access_token={chat_support.token('bea')}"
                bea = Client(await websockets.connect(url, open_timeout=10))
                try:
                    assert (await amos.next("presence", user_id="bea"))["status"] == "online"
                    await rt.send("amos", c, "still there?")
                    assert (await bea.next("message", conversation_id=c))["text"] == "still there?"
                    child.kill()  # SIGKILL: no offline heartbeat, no close frames; only the TTL tells
                    assert (await amos.next("presence", user_id="bea", timeout=20))["status"] == "offline"
                    with pytest.raises(websockets.ConnectionClosed):
                        await bea.ws.recv()
                finally:
                    await bea.ws.close()
        finally:
            child.kill()
