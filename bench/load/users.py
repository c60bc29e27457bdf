"""Simulated users of one generator process, all in one asyncio loop: every user holds a WebSocket
(the receiver) and sends over HTTP (the sender) into the direct and group conversations of its own
process, at this process's share of the target rate.

Open loop: each message is POSTed at its scheduled time (at most IN_FLIGHT outstanding); one whose
POST cannot start within LATE_SECONDS of the window's end is not sent and counted as `not_sent_late`,
so that a run stays bounded when the stack takes less than the offered rate.

Every `message` frame is counted per (receiving user, message): after the window each accepted
message must have been seen exactly once at each member's socket (the sender's own session included, as
docs/realtime.md says); the latency is taken at the other members only.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import websockets

from bench.lean_http import SEND_ERRORS, LeanPool

IN_FLIGHT = 128  # POSTs outstanding, over SHARDS lean pools (bench/lean_http.py)
LATE_SECONDS = 2.0
DRAIN_SECONDS = 20.0
GROUP_SIZE = 5
GROUP_SHARE = 0.3  # share of users in groups (the rest in direct pairs)
CONNECT_BATCH = 50
ATTEMPTS = 3
HTTP_TIMEOUT = 30.0
SHARDS = 8  # pools of IN_FLIGHT / SHARDS connections; a conversation always goes through one of them
RETRIED = (409, 503)


def token(secret: str, user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "name": f"Load {user}", "roles": ["user"], "iat": now, "exp": now + 7200}
    return jwt.encode(claims, secret, algorithm="HS256")


def plan_conversations(users: list[str]) -> list[tuple[str, list[str]]]:
    """(kind, members) for `users`: a share in groups of GROUP_SIZE, the rest in direct pairs."""
    in_groups = int(len(users) * GROUP_SHARE) // GROUP_SIZE * GROUP_SIZE
    plan = [("group", users[first : first + GROUP_SIZE]) for first in range(0, in_groups, GROUP_SIZE)]
    rest = users[in_groups:]
    plan += [("direct", rest[first : first + 2]) for first in range(0, len(rest) - 1, 2)]
    return plan


@dataclass
class Conversation:
    id: str
    kind: str
    members: list[str]


@dataclass
class Outcome:
    """What one generator process measured; `samples` are (sent at, send-to-receive seconds) on
    CLOCK_MONOTONIC, which every process of the machine shares."""

    offered: int = 0
    accepted: int = 0
    not_sent_late: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    first_send: float = 0.0
    last_accept: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    http_latency: list[float] = field(default_factory=list)
    expected_frames: int = 0
    received_once: int = 0
    missing: int = 0
    duplicated: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "accepted": self.accepted,
            "not_sent_late": self.not_sent_late,
            "errors": dict(self.errors),
            "retries": dict(self.retries),
            "first_send": self.first_send,
            "last_accept": self.last_accept,
            "samples": self.samples,
            "http_latency": self.http_latency,
            "expected_frames": self.expected_frames,
            "received_once": self.received_once,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "accepted_by_kind": dict(self.kinds),
        }


class Generator:
    def __init__(self, url: str, secret: str, prefix: str, users: int, rate: float, duration: float) -> None:
        self.url = url
        self.ws_url = url.replace("http://", "ws://", 1) + "/v1/ws"
        self.secret = secret
        self.prefix = prefix
        self.users = [f"{prefix}u{i}" for i in range(users)]
        self.rate = rate
        self.duration = duration
        self.conversations: list[Conversation] = []
        self.frames: dict[str, Counter[str]] = {}  # user -> message text -> frames
        self.arrived: dict[tuple[str, str], float] = {}  # (user, text) -> first arrival
        self.sockets: list[websockets.ClientConnection] = []
        self.out = Outcome()
        self._headers: dict[str, dict[str, str]] = {}

    def headers(self, user: str) -> dict[str, str]:
        """One token per user for the run (valid 2 h): signing per request would be the generator's CPU."""
        if user not in self._headers:
            self._headers[user] = {"Authorization": f"Bearer {token(self.secret, user)}"}
        return self._headers[user]

    async def setup(self, http: httpx.AsyncClient) -> None:
        for kind, members in plan_conversations(self.users):
            r = await http.post(
                "/v1/conversations", headers=self.headers(members[0]), json={"kind": kind, "members": members[1:]}
            )
            r.raise_for_status()
            self.conversations.append(Conversation(str(r.json()["conversation_id"]), kind, members))
        members = sorted({m for c in self.conversations for m in c.members})
        for first in range(0, len(members), CONNECT_BATCH):
            batch = members[first : first + CONNECT_BATCH]
            self.sockets += await asyncio.gather(
                *(
                    websockets.connect(f"{self.ws_url}?access_token={token(self.secret, u)}", open_timeout=60)
                    for u in batch
                )
            )
        self.readers = [asyncio.create_task(self.receive(u, ws)) for u, ws in zip(members, self.sockets, strict=True)]

    async def receive(self, user: str, ws: websockets.ClientConnection) -> None:
        counts = self.frames.setdefault(user, Counter())
        try:
            async for data in ws:
                frame = json.loads(data)
                if frame.get("type") != "message" or not str(frame.get("text", "")).startswith(self.prefix):
                    continue
                now = time.monotonic()
                text = frame["text"]
                counts[text] += 1
                self.arrived.setdefault((user, text), now)
        except websockets.ConnectionClosed:
            self.out.errors["ws_closed"] += 1

    async def post(self, pool: LeanPool, path: str, sender: str, body: dict[str, Any]) -> int | None:
        """POST as a client does: a lost connection, a timeout, 409 or 503 is retried (at most ATTEMPTS
        times in all) with the same client_msg_id, which the gateway deduplicates; each retry counted
        by its cause. The status, or None (and an error counted) when no attempt got an answer.
        Sent through bench/lean_http.py: httpx's own CPU made the generator measure itself."""
        cause = ""
        headers = {**self.headers(sender), "Content-Type": "application/json"}
        request = pool.request_bytes("POST", path, json.dumps(body).encode(), headers)
        for _ in range(ATTEMPTS):
            try:
                status, _answer = await pool.send(request, timeout=HTTP_TIMEOUT)
            except TimeoutError:
                cause = "http_timeout"
            except SEND_ERRORS as e:  # e.g. a keep-alive connection the server closed
                cause = f"http_{type(e).__name__}"
            else:
                if status not in RETRIED or _ == ATTEMPTS - 1:
                    return status
                cause = f"http_{status}"
            self.out.retries[cause] += 1
        self.out.errors[cause] += 1
        return None

    async def run(self, clients: list[LeanPool]) -> Outcome:
        gates = [asyncio.Semaphore(IN_FLIGHT // len(clients)) for _ in clients]
        total = int(self.rate * self.duration)
        rng = random.Random(self.prefix)
        sent: dict[str, tuple[float, Conversation, str]] = {}  # text -> (POST began, conversation, sender)
        t0 = time.monotonic()
        too_late = t0 + self.duration + LATE_SECONDS
        self.out.first_send = t0

        async def send(n: int) -> None:
            conversation = self.conversations[n % len(self.conversations)]
            sender = rng.choice(conversation.members)
            text = f"{self.prefix} {n}"
            body = {"client_msg_id": f"{self.prefix}-{n}", "text": text}
            shard = n % len(self.conversations) % len(clients)  # a conversation always on one pool
            async with gates[shard]:
                began = time.monotonic()
                if began > too_late:
                    self.out.not_sent_late += 1
                    return
                status = await self.post(clients[shard], f"/v1/conversations/{conversation.id}/messages", sender, body)
            if status is None:
                return
            if status == 201:
                done = time.monotonic()
                sent[text] = (began, conversation, sender)
                self.out.http_latency.append(done - began)
                self.out.last_accept = max(self.out.last_accept, done)
                self.out.kinds[conversation.kind] += 1
            else:
                self.out.errors[f"http_{status}"] += 1

        tasks = []
        for n in range(total):
            delay = t0 + n / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(n)))
        await asyncio.gather(*tasks)
        self.out.offered = total
        self.out.accepted = len(sent)
        expected = [(m, text) for text, (_, c, _) in sent.items() for m in c.members]
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any(key not in self.arrived for key in expected):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a late duplicate would show now
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.out.expected_frames = len(expected)
        for member, text in expected:
            count = self.frames.get(member, Counter())[text]
            if count == 0:
                self.out.missing += 1
            elif count == 1:
                self.out.received_once += 1
            else:
                self.out.duplicated += 1
        if self.out.missing:
            self.out.errors["not_received"] += self.out.missing
        if self.out.duplicated:
            self.out.errors["received_twice"] += self.out.duplicated
        for text, (began, conversation, sender) in sent.items():
            for member in conversation.members:
                if member != sender and (member, text) in self.arrived:
                    self.out.samples.append((began, self.arrived[(member, text)] - began))
        return self.out


async def generate(
    url: str,
    secret: str,
    prefix: str,
    users: int,
    rate: float,
    duration: float,
    ready: Callable[[], Awaitable[float]],
) -> dict[str, Any]:
    """One generator process's work: set up, say so through `ready` (which answers the common start
    time on CLOCK_MONOTONIC), wait for it, run."""
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as http:
        gen = Generator(url, secret, prefix, users, rate, duration)
        await gen.setup(http)  # conversations: few requests, httpx is fine
    pools = [LeanPool(url, IN_FLIGHT // SHARDS) for _ in range(SHARDS)]
    try:
        start_at = await ready()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        out = await gen.run(pools)
    finally:
        for pool in pools:
            pool.close()
    return out.as_dict()
