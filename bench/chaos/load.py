"""The chaos run's load: HTTP senders and WebSocket receivers, recording what the clients were told.

A sender retries a failed send with the SAME client_msg_id (the contract's idempotency) until it gets a
2xx or its retry budget ends; every 2xx answer is recorded (message_id, seq, conversation). A receiver keeps
one WebSocket open, reconnects when it drops and resyncs from its highest gapless seq per conversation;
it records each message frame as live or resynced, and moves its read watermark now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import websockets

from bench.chaos.check import RunRecord

RETRY_FOR = 120.0  # seconds a sender keeps retrying one message: longer than any fault plus a restart


def token(user: str, secret: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "name": user.title(), "roles": ["user"], "iat": now, "exp": now + 86400},
                      secret, algorithm="HS256")  # fmt: skip


@dataclass
class Counters:
    sent: int = 0
    retries: int = 0
    gave_up: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reconnects: int = 0


class Load:
    def __init__(self, gateway_url: str, secret: str, *, rate: float, seed: int = 7) -> None:
        self.url = gateway_url
        self.secret = secret
        self.rate = rate
        self.record = RunRecord()
        self.counters = Counters()
        self.stopping = asyncio.Event()
        self._rng = random.Random(seed)
        self._senders: list[tuple[str, str]] = []  # (user, conversation)
        self._receivers: list[Receiver] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.http = httpx.AsyncClient(base_url=gateway_url, timeout=10)

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(user, self.secret)}"}

    async def setup(self, directs: int, groups: int, group_size: int, receivers: int) -> None:
        """Conversations (each creator also sends in it) and the receivers' users."""
        for i in range(directs):
            a, b = f"d{i}a", f"d{i}b"
            conv = await self._start(a, "direct", [b])
            self._senders += [(a, conv), (b, conv)]
        for g in range(groups):
            users = [f"g{g}u{j}" for j in range(group_size)]
            conv = await self._start(users[0], "group", users[1:])
            self._senders += [(u, conv) for u in users[:3]]
        watched = sorted({u for us in self.record.members.values() for u in us})
        self._rng.shuffle(watched)
        self._receivers = [Receiver(self, user) for user in sorted(watched[:receivers])]

    async def _start(self, creator: str, kind: str, members: list[str]) -> str:
        r = await self.http.post(
            "/v1/conversations", headers=self.headers(creator), json={"kind": kind, "members": members}
        )
        r.raise_for_status()
        conv = str(r.json()["conversation_id"])
        self.record.members[conv] = [creator, *members]
        return conv

    async def start(self) -> None:
        for receiver in self._receivers:
            self._tasks.append(asyncio.create_task(receiver.run()))
        await asyncio.gather(*(r.connected.wait() for r in self._receivers))
        per_sender = self.rate / max(1, len(self._senders))
        for user, conv in self._senders:
            self._tasks.append(asyncio.create_task(self._send_loop(user, conv, per_sender)))

    async def _send_loop(self, user: str, conv: str, rate: float) -> None:
        headers, n = self.headers(user), 0
        path = f"/v1/conversations/{conv}/messages"
        await asyncio.sleep(self._rng.random() / rate)
        while not self.stopping.is_set():
            n += 1
            began = time.monotonic()
            await self._send_one(
                path, headers, {"client_msg_id": f"{user}-{n}", "text": f"m{n} from {user}"}, conv, user
            )
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - began)))

    async def _send_one(self, path: str, headers: dict[str, str], body: dict[str, Any], conv: str, user: str) -> None:
        deadline, pause = time.monotonic() + RETRY_FOR, 0.1
        while True:
            try:
                r = await self.http.post(path, headers=headers, json=body)
                if 200 <= r.status_code < 300:
                    got = r.json()
                    self.record.accepted.append({"conversation_id": conv, "message_id": got["message_id"],
                                                 "seq": got["seq"], "client_msg_id": body["client_msg_id"],
                                                 "sender_id": user})  # fmt: skip
                    self.counters.sent += 1
                    return
                self.counters.errors[f"http_{r.status_code}"] += 1
                if r.status_code < 500 and r.status_code not in (408, 409, 429):
                    return  # refused for good: not accepted, nothing to retry
            except httpx.TransportError as e:
                self.counters.errors[type(e).__name__] += 1
            if time.monotonic() > deadline:
                self.counters.gave_up += 1
                return
            self.counters.retries += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def stop_senders(self) -> None:
        self.stopping.set()
        senders = self._tasks[len(self._receivers) :]
        await asyncio.gather(*senders, return_exceptions=True)

    async def finish(self, timeout: float = 60.0) -> None:
        """A last resync on every receiver (as a client does when it comes back to the app), then close."""
        await asyncio.gather(*(r.final_resync(timeout) for r in self._receivers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for r in self._receivers:
            self.record.live[r.user] = sorted(r.live)
            self.record.resynced[r.user] = sorted(r.resynced - r.live)
            self.counters.reconnects += r.reconnects
        await self.http.aclose()


class Receiver:
    def __init__(self, load: Load, user: str) -> None:
        self.load, self.user = load, user
        self.live: set[tuple[str, int]] = set()
        self.resynced: set[tuple[str, int]] = set()
        self.seqs: dict[str, set[int]] = defaultdict(set)
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._ws: Any = None
        self._resyncing = False
        self._done = asyncio.Event()
        self._last_read: dict[str, int] = {}

    def gapless(self, conv: str) -> int:
        got, n = self.seqs[conv], 0
        while n + 1 in got:
            n += 1
        return n

    def _convs(self) -> list[str]:
        return [c for c, members in self.load.record.members.items() if self.user in members]

    async def resync(self) -> None:
        self._resyncing = True
        self._done.clear()
        await self._ws.send(
            json.dumps({"type": "resync", "conversations": {c: self.gapless(c) for c in self._convs()}})
        )

    async def run(self) -> None:
        ws_url = self.load.url.replace("http://", "ws://") + f"/v1/ws?access_token={token(self.user, self.load.secret)}"
        first = True
        while True:
            try:
                async with websockets.connect(ws_url, open_timeout=10, max_size=2**22) as ws:
                    self._ws = ws
                    if not first:
                        self.reconnects += 1
                    first = False
                    await self.resync()
                    self.connected.set()
                    async for raw in ws:
                        await self._frame(json.loads(raw))
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            self._ws = None
            await asyncio.sleep(0.3)

    async def _frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "message":
            key = (frame["conversation_id"], int(frame["seq"]))
            (self.resynced if self._resyncing else self.live).add(key)
            self.seqs[key[0]].add(key[1])
            await self._maybe_read(key[0])
        elif frame.get("type") == "resync" and frame.get("done"):
            self._resyncing = False
            self._done.set()

    async def _maybe_read(self, conv: str) -> None:
        upto = self.gapless(conv)
        if upto - self._last_read.get(conv, 0) < 10 or self.load.stopping.is_set():
            return
        self._last_read[conv] = upto
        with contextlib.suppress(httpx.HTTPError):  # a receipt lost in a fault is resent by a later one
            await self.load.http.post(f"/v1/conversations/{conv}/read", headers=self.load.headers(self.user),
                                      json={"up_to_seq": upto})  # fmt: skip

    async def final_resync(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ws is not None:
                try:
                    await self.resync()
                    async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                        await self._done.wait()
                    return
                except (OSError, websockets.WebSocketException, TimeoutError):
                    pass
            await asyncio.sleep(0.3)
