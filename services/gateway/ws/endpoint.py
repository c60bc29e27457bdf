"""`GET /v1/ws`: authenticate, join the hub, then read client frames while a writer drains the outbox.

Client frames (CONTRACT.md, docs/realtime.md): ack, read, typing, ping, resync. A bad frame (not
JSON, unknown type, missing field, a conversation the user is not in) gets
`{"type":"error","code":...,"detail":...}` and changes nothing; the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.delivery.realtime import encode, user_subject
from services.gateway.auth import Principal, bearer_token, verify_token
from services.gateway.context import Gateway
from services.gateway.errors import GatewayError, Invalid, NotFound, Unauthorized
from services.gateway.ws import resync
from services.gateway.ws.realtime import Realtime
from services.gateway.ws.session import Frame, Session
from services.projections import queries
from shared.logging import get_logger

log = get_logger(__name__)

UNAUTHORIZED = 4401
# A frame bigger than this is not a chat control frame (the largest, resync, names conversations).
MAX_FRAME_CHARS = 64 * 1024
# Typing from one user in one conversation is forwarded at most this often (clients repeat it).
TYPING_EVERY = 1.0
# How long a closing socket's queued frames and close frame may take to drain; past it the session is
# gone anyway and the server drops the connection.
CLOSE_TIMEOUT = 10.0


async def websocket_endpoint(websocket: WebSocket) -> None:
    try:
        principal = _authenticate(websocket)
    except Unauthorized as e:
        await _deny(websocket, e.reason)
        return
    realtime: Realtime = websocket.app.state.realtime
    session = Session(websocket, principal.user_id)
    await realtime.hub.join(session)  # subscribed before the handshake completes: nothing slips by
    try:
        await websocket.accept()
        await _serve(websocket, session, principal, realtime)
    finally:
        # Before the closing handshake: a client that stopped reading may never take the close frame,
        # and its subscription, presence and outbox must not wait for it.
        await realtime.hub.leave(session)
    if session.closed.is_set():
        await _close(websocket, session)


def _authenticate(websocket: WebSocket) -> Principal:
    header = websocket.headers.get("authorization")
    token = bearer_token(header) if header else websocket.query_params.get("access_token", "")
    return verify_token(token, websocket.app.state.token_verifier)


async def _deny(websocket: WebSocket, reason: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": reason}
        await websocket.send_denial_response(JSONResponse(body, 401, media_type="application/problem+json"))
        return
    await websocket.accept()
    await websocket.close(UNAUTHORIZED, reason)


async def _serve(websocket: WebSocket, session: Session, principal: Principal, realtime: Realtime) -> None:
    """Until the client leaves, a send fails, or the session is closed (slow consumer). The writer may
    then be blocked in a send to a client that stopped reading: it is cancelled, not awaited out."""
    writer = asyncio.create_task(session.write())
    reader = asyncio.create_task(_read(websocket, session, principal, realtime))
    closed = asyncio.create_task(session.closed.wait())
    await asyncio.wait({writer, reader, closed}, return_when=asyncio.FIRST_COMPLETED)
    for task in (reader, writer, closed):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await task


async def _close(websocket: WebSocket, session: Session) -> None:
    """Send the close frame with its reason; bounded, since the frames before it must drain first."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(session.close_code, session.close_reason)


async def _read(websocket: WebSocket, session: Session, principal: Principal, realtime: Realtime) -> None:
    handler = _Frames(session, principal, realtime)
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            # receive(), not receive_text(): a binary frame must get an error frame, not end the reader.
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            session.last_active = time.monotonic()
            text = message.get("text")
            if text is None:
                handler.refuse_binary()
                continue
            await handler.handle(text)


class _Frames:
    def __init__(self, session: Session, principal: Principal, realtime: Realtime) -> None:
        self.session = session
        self.principal = principal
        self.realtime = realtime
        self.gateway: Gateway = realtime.gateway
        self._typing_sent: dict[str, float] = {}

    async def handle(self, text: str) -> None:
        try:
            frame = _parse(text)
            await self._dispatch(frame)
        except _BadFrame as e:
            self.session.send({"type": "error", "code": e.code, "detail": e.detail, "frame": e.frame_type})
        except NotFound as e:
            self.session.send({"type": "error", "code": "not_found", "detail": str(e), "frame": _type_of(text)})
        except Invalid as e:
            self.session.send({"type": "error", "code": "invalid", "detail": str(e), "frame": _type_of(text)})
        except GatewayError as e:
            self.session.send({"type": "error", "code": "refused", "detail": str(e), "frame": _type_of(text)})

    def refuse_binary(self) -> None:
        detail = "frames are JSON text, not binary"
        self.session.send({"type": "error", "code": "binary", "detail": detail, "frame": None})

    async def _dispatch(self, frame: Frame) -> None:
        kind = frame.get("type")
        if kind == "ping":
            self.session.send({"type": "pong"})
        elif kind == "ack":
            await self.realtime.delivered.submit(self.principal, *_conversation_seq(frame))
        elif kind == "read":
            await self.realtime.read.submit(self.principal, *_conversation_seq(frame))
        elif kind == "typing":
            await self._typing(_conversation(frame))
        elif kind == "resync":
            await self._resync(frame)
        else:
            raise _BadFrame("unknown_type", f"unknown frame type {kind!r}", str(kind))

    async def _typing(self, conversation_id: str) -> None:
        async with self.gateway.engine.connect() as conn:
            detail = await queries.conversation(conn, self.principal.user_id, conversation_id)
        if detail is None:
            raise NotFound("conversation", conversation_id)
        now = time.monotonic()
        if now - self._typing_sent.get(conversation_id, 0.0) < TYPING_EVERY:
            return
        self._typing_sent[conversation_id] = now
        data = encode({"type": "typing", "conversation_id": conversation_id, "user_id": self.principal.user_id})
        for member in detail.members:
            if member.user_id != self.principal.user_id:
                await self.realtime.publish(user_subject(member.user_id), data)

    async def _resync(self, frame: Frame) -> None:
        wanted = frame.get("conversations")
        if not isinstance(wanted, dict) or not all(_is_seq(v) for v in wanted.values()):
            raise _BadFrame("invalid", "conversations must map conversation ids to seqs (>= 0)", "resync")
        done: dict[str, int] = {}
        for key, last_seq in wanted.items():
            conversation_id, seq = str(key), int(last_seq)
            self.session.begin_resync(conversation_id, seq)
            try:
                history = await resync.missed(
                    self.gateway.engine,
                    self.gateway.settings.partitions,
                    self.principal.user_id,
                    conversation_id,
                    last_seq,
                )
            except resync.NotMember:
                await self.session.end_resync(conversation_id, [])
                raise _BadFrame("not_found", f"conversation {conversation_id!r} not found", "resync") from None
            await self.session.end_resync(conversation_id, history)
            done[conversation_id] = self.session.sent.get(conversation_id, seq)
        self.session.send({"type": "resync", "done": True, "conversations": done})


class _BadFrame(Exception):
    def __init__(self, code: str, detail: str, frame_type: str | None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.frame_type = code, detail, frame_type


def _parse(text: str) -> Frame:
    if len(text) > MAX_FRAME_CHARS:
        raise _BadFrame("too_large", f"a frame may be {MAX_FRAME_CHARS} characters at most", None)
    try:
        frame: Any = json.loads(text)
    except ValueError:
        raise _BadFrame("invalid_json", "the frame is not JSON", None) from None
    except RecursionError:  # not a ValueError: it would end the reader and drop the socket
        raise _BadFrame("invalid_json", "the frame's JSON is nested too deeply", None) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise _BadFrame("invalid", "a frame is a JSON object with a string `type`", None)
    return frame


def _type_of(text: str) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, RecursionError):
        return str(json.loads(text).get("type"))
    return None


def _conversation(frame: Frame) -> str:
    value = frame.get("conversation_id")
    if not isinstance(value, str) or not value:
        raise _BadFrame("invalid", "conversation_id must be a non-empty string", str(frame.get("type")))
    return value


def _conversation_seq(frame: Frame) -> tuple[str, int]:
    seq = frame.get("seq")
    if not _is_seq(seq) or seq == 0:
        raise _BadFrame("invalid", "seq must be a positive integer", str(frame.get("type")))
    assert isinstance(seq, int)
    return _conversation(frame), seq


def _is_seq(value: object) -> bool:
    return type(value) is int and value >= 0
