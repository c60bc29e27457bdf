"""One WebSocket session: a bounded outbox drained by a writer task, and the per-conversation
resync state that keeps live frames and resynced history free of gaps and duplicates.

Ordering rule per conversation (docs/realtime.md): `sent[c]` is the highest message seq this socket
has sent for c (inclusive). A live `message` frame at or below it is a duplicate and dropped. While
a resync of c reads the read model, live message frames of c are held in `held[c]`; when the read
ends, the history is sent, then the held frames above the history's last seq, in seq order.

Live message frames come from two places: the delivery worker (every message, in seq order per
conversation) and this gateway itself, which hands a message it has just committed straight to the
sockets it holds (services/gateway/ws/handover.py). Such a handed-over frame is sent only when it is
the very next seq of a conversation this socket already follows (`sent[c] + 1`: a message frame or a
resync of c came before); otherwise it is dropped and delivery's copy, which comes in order behind
the ones before it (and behind the `conversation` frame that introduced c), is sent instead. So the
fast path never reorders or loses a message: at worst one takes delivery's slower path.

Live frames sent before the client's first resync of c (between connecting and the resync frame, a
lagging delivery worker may still publish older messages) are remembered by seq (`early[c]`, at most
EARLY_LIMIT): the resync starts from the client's last_seq, not from them, and skips only those very
seqs, so nothing between last_seq and them is lost.
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
SLOW_REASON = "slow consumer: too many frames waiting; reconnect and resync"
# Seqs remembered per conversation before its first resync; past it a resync may send one twice
# (a duplicate the client drops by seq), never leave a gap.
EARLY_LIMIT = 256


class Session:
    def __init__(self, websocket: WebSocket, user_id: str, limit: int = OUTBOX_LIMIT) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.sent: dict[str, int] = {}
        self.held: dict[str, list[tuple[Frame, bool]]] = {}  # (frame, handed over by this gateway)
        self.early: dict[str, set[int]] = {}
        self.synced: set[str] = set()
        self.last_active = time.monotonic()
        self.closed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(limit)
        self._drained = asyncio.Event()  # set by the writer after each frame, and on close
        self._ready = asyncio.Event()  # set by send and close: the writer has something to do

    def deliver(self, frame: Frame, raw: bytes | None = None, *, handed_over: bool = False) -> bool:
        """A live frame from the broker (or another session's typing): filtered, then queued.

        `handed_over`: a message this gateway just committed (not yet through delivery), sent only
        when it is the next seq of its conversation here. False when the frame was dropped."""
        if frame.get("type") == "message":
            conversation = str(frame.get("conversation_id"))
            held = self.held.get(conversation)
            if held is not None:
                if len(held) >= self._outbox.maxsize:  # as full as an outbox: the same verdict
                    self.close(SLOW_CONSUMER, SLOW_REASON)
                    return False
                held.append((frame, handed_over))
                return True
            if not self._advance(conversation, frame, next_only=handed_over):
                return False
            if conversation not in self.synced:
                early = self.early.setdefault(conversation, set())
                if len(early) < EARLY_LIMIT:
                    early.add(int(frame.get("seq", 0)))
        self.send(frame, raw)
        return True

    def send(self, frame: Frame, raw: bytes | None = None) -> None:
        if self.closed.is_set():
            return
        try:
            self._outbox.put_nowait(raw if raw is not None else encode(frame))
        except asyncio.QueueFull:
            self.close(SLOW_CONSUMER, SLOW_REASON)
            return
        self._ready.set()

    def begin_resync(self, conversation: str, last_seq: int) -> None:
        """From now on hold live frames of `conversation`; the client holds every seq <= last_seq."""
        self.held.setdefault(conversation, [])
        self.sent[conversation] = last_seq

    async def end_resync(self, conversation: str, history: list[Frame]) -> None:
        """Send `history` (oldest first), then the live frames held meanwhile that it did not cover.

        History may be far longer than the outbox: it is paced by the writer (queued only while the
        outbox is less than half full, so live frames of other conversations keep room), and the
        conversation stays held until all of it is queued, so no live frame overtakes it."""
        early = self.early.pop(conversation, set())
        self.synced.add(conversation)
        for frame in history:
            if int(frame.get("seq", 0)) in early:  # sent live before the resync began
                self.sent[conversation] = max(self.sent.get(conversation, 0), int(frame.get("seq", 0)))
            elif self._advance(conversation, frame):
                await self._room()
                self.send(frame)
        held = self.held.pop(conversation, [])
        for frame, handed_over in sorted(held, key=lambda h: int(h[0].get("seq", 0))):
            self.deliver(frame, handed_over=handed_over)

    def _advance(self, conversation: str, frame: Frame, *, next_only: bool = False) -> bool:
        """Record a message frame as sent; False when its seq was sent already (a duplicate), or, for
        `next_only`, when it is not the seq right after the last one sent, or the conversation is new
        to this socket (delivery brings it in order, after the conversation's own frames)."""
        seq = int(frame.get("seq", 0))
        known = self.sent.get(conversation)
        sent = known or 0
        if seq <= sent or (next_only and (known is None or seq != sent + 1)):
            return False
        self.sent[conversation] = seq
        return True

    async def _room(self) -> None:
        while self._outbox.qsize() >= self._outbox.maxsize // 2 and not self.closed.is_set():
            self._drained.clear()
            await self._drained.wait()

    def close(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()
            self._drained.set()
            self._ready.set()

    async def write(self) -> None:
        """The writer task: drain the outbox until the session closes. It waits on one event that
        send and close set, not on a task per frame (a get task and asyncio.wait for each frame
        were most of the writer's CPU)."""
        outbox = self._outbox
        while not self.closed.is_set():
            if outbox.empty():
                self._ready.clear()  # nothing awaits between the check and the wait: no lost wake-up
                await self._ready.wait()
                continue
            data = outbox.get_nowait()
            self._drained.set()
            await self.websocket.send_text(data.decode())


def encode(frame: Frame) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str).encode()
