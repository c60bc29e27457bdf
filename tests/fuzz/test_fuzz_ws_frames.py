"""Malformed WebSocket frames from an authenticated client: each gets `{"type":"error",...}`, the socket
stays open (a ping still gets its pong, a message sent afterwards still arrives) and nothing is appended.
A frame beyond the transport's limit may close the socket, with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chat_support
import pytest
import websockets
from realtime_support import Client, RealtimeStack, realtime_stack

from services.gateway.ws.endpoint import MAX_FRAME_CHARS

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats  # the fixture


def malformed(own: str, foreign: str) -> dict[str, str | bytes]:
    """name → a frame the gateway must answer with an error frame. `own` is a conversation of the
    client's, `foreign` one it is not in."""
    frames: dict[str, Any] = {
        "not json": "{nope",
        "empty text": "",
        "json string": '"ping"',
        "json array": "[1, 2]",
        "json null": "null",
        "no type": {"conversation_id": own, "seq": 1},
        "type not a string": {"type": 5},
        "unknown type": {"type": "launch_missiles"},
        "ack without fields": {"type": "ack"},
        "ack seq a string": {"type": "ack", "conversation_id": own, "seq": "1"},
        "ack seq negative": {"type": "ack", "conversation_id": own, "seq": -1},
        "ack seq a float": {"type": "ack", "conversation_id": own, "seq": 1.5},
        "ack seq true": {"type": "ack", "conversation_id": own, "seq": True},
        "ack seq huge": {"type": "ack", "conversation_id": own, "seq": 10**30},
        "ack beyond the last message": {"type": "ack", "conversation_id": own, "seq": 10**6},
        "read conversation a number": {"type": "read", "conversation_id": 7, "seq": 1},
        "read conversation empty": {"type": "read", "conversation_id": "", "seq": 1},
        "typing conversation a list": {"type": "typing", "conversation_id": [own]},
        "resync not a map": {"type": "resync", "conversations": [own]},
        "resync seq a string": {"type": "resync", "conversations": {own: "0"}},
        "ack foreign conversation": {"type": "ack", "conversation_id": foreign, "seq": 1},
        "read foreign conversation": {"type": "read", "conversation_id": foreign, "seq": 1},
        "typing foreign conversation": {"type": "typing", "conversation_id": foreign},
        "resync foreign conversation": {"type": "resync", "conversations": {foreign: 0}},
        "read unknown conversation": {"type": "read", "conversation_id": "no-such-conversation", "seq": 1},
        "over the frame limit": json.dumps({"type": "ping", "pad": "x" * MAX_FRAME_CHARS}),
        # Under the frame limit, deeper than the JSON parser's recursion limit.
        "deeply nested json": "[" * 30_000 + "]" * 30_000,
        "deeply nested object": '{"type": "ping", "x": ' + '{"a":' * 10_000 + "1" + "}" * 10_000 + "}",
        "binary frame": b"\x00\x01\x02 binary",
        "binary json": json.dumps({"type": "ping"}).encode(),
        "invalid utf-8 in binary": b"\xff\xfe\xfd",
    }
    return {name: json.dumps(f) if isinstance(f, dict) else f for name, f in frames.items()}


async def _answer(client: Client, timeout: float) -> dict[str, Any]:
    """The next frame that answers the client (error or pong), skipping presence and receipts."""
    while True:
        frame = await client.next(timeout=timeout)
        if frame["type"] in ("error", "pong"):
            return frame


async def test_malformed_frames_get_an_error_frame_and_the_socket_stays_open(
    embedded_nats: str, tmp_path: Path
) -> None:
    async with realtime_stack(tmp_path, embedded_nats, gateways=1) as s:
        await run_malformed_frames(s)


@pytest.mark.postgres
async def test_malformed_frames_on_postgres(embedded_nats: str, pg_url: str, tmp_path: Path) -> None:
    async with realtime_stack(tmp_path, embedded_nats, gateways=1, database_url=pg_url) as s:
        await run_malformed_frames(s)


async def run_malformed_frames(s: RealtimeStack) -> None:
    own = await s.conversation("alice", "direct", ["bob"])
    foreign = await s.conversation("carol", "direct", ["dave"])
    await s.send("bob", own, "hello")
    store = s.apps[0].state.store
    async with s.connect(0, "alice") as alice:
        before = (await store.head()).position
        for name, frame in malformed(own, foreign).items():
            await alice.ws.send(frame)
            answer = await _answer(alice, 15.0)
            assert answer["type"] == "error", (name, answer)
            assert answer["code"] and answer["detail"], (name, answer)
            await alice.send({"type": "ping"})
            assert (await _answer(alice, 15.0))["type"] == "pong", f"the socket is still served after {name!r}"
        assert (await store.head()).position == before, "a malformed frame appended an event"
        sent = await s.send("bob", own, "still here")
        got = await alice.next("message", timeout=20.0, message_id=sent["message_id"])
        assert got["text"] == "still here"


async def test_a_frame_beyond_the_transport_limit_closes_with_a_reason(embedded_nats: str, tmp_path: Path) -> None:
    async with realtime_stack(tmp_path, embedded_nats, gateways=1) as s, s.connect(0, "alice") as alice:
        await alice.ws.send("x" * (20 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await alice.ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
        assert closed.value.rcvd.reason, "the close frame names why"
