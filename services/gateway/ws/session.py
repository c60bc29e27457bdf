"""One WebSocket session: a bounded outbox drained by a writer task, and the per-conversation
resync state that keeps live frames and resynced history free of gaps and duplicates.

Ordering rule per conversation (docs/realtime.md): `sent[c]` is the highest message seq this socket
has sent for c (inclusive). A live `message` frame at or below it is a duplicate and dropped. While
a resync of c reads the read model, live message frames of c are held in `held[c]`; when the read
ends, the history is sent, then the held frames above the history's last seq, in seq order.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.websockets import WebSocket

Frame = dict[str, Any]

# Frames a socket may have waiting. A client on a bad link that falls this far behind is closed
# (4008) and resyncs on reconnect; 256 frames is seconds of a very busy user's traffic.
OUTBOX_LIMIT = 256
SLOW_CONSUMER = 4008


class Session:
    def __init__(self, websocket: WebSocket, user_id: str, limit: int = OUTBOX_LIMIT) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.sent: dict[str, int] = {}
        self.held: dict[str, list[Frame]] = {}
        self.last_active = time.monotonic()
        self.closed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(limit)

    def deliver(self, frame: Frame, raw: bytes | None = None) -> None:
        """A live frame from the broker (or another session's typing): filtered, then queued."""
        if frame.get("type") == "message":
            conversation = str(frame.get("conversation_id"))
            if conversation in self.held:
                self.held[conversation].append(frame)
                return
            seq = int(frame.get("seq", 0))
            if seq <= self.sent.get(conversation, 0):
                return
            self.sent[conversation] = seq
        self.send(frame, raw)

    def send(self, frame: Frame, raw: bytes | None = None) -> None:
        if self.closed.is_set():
            return
        try:
            self._outbox.put_nowait(raw if raw is not None else encode(frame))
        except asyncio.QueueFull:
            self.close(SLOW_CONSUMER, "slow consumer: too many frames waiting; reconnect and resync")

    def begin_resync(self, conversation: str) -> None:
        self.held.setdefault(conversation, [])

    def end_resync(self, conversation: str, history: list[Frame]) -> None:
        """Send `history` (oldest first), then the live frames held meanwhile that it did not cover."""
        held = self.held.pop(conversation, [])
        for frame in history:
            self.deliver(frame)
        for frame in sorted(held, key=lambda f: int(f.get("seq", 0))):
            self.deliver(frame)

    def close(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()

    async def write(self) -> None:
        """The writer task: drain the outbox until the session closes."""
        closed = asyncio.create_task(self.closed.wait())
        try:
            while not self.closed.is_set():
                get = asyncio.create_task(self._outbox.get())
                await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                await self.websocket.send_text(get.result().decode())
        finally:
            closed.cancel()


def encode(frame: Frame) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str).encode()
