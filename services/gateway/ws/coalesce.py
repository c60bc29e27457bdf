"""Coalesced watermarks: at most one Delivered (or Read) command per user and conversation per
WINDOW, never backwards.

The first ack of a quiet (user, conversation) runs at once, and its error (not a member, beyond the
last message) goes back to the caller as an error frame. Acks within the next WINDOW only raise the
pending seq; when the window ends the highest one runs (its errors are logged: the leading call has
already validated the conversation), and a new window starts while acks keep coming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.gateway.auth import Principal
from shared.logging import get_logger

log = get_logger(__name__)

# A reader scrolling through a busy group acks many times a second; a quarter of a second keeps the
# event volume low while the sender's tick still feels immediate.
WINDOW = 0.25

Mark = Callable[[Principal, str, int], Awaitable[Any]]


@dataclass(slots=True)
class _Window:
    principal: Principal
    done: int
    pending: int


class Coalescer:
    def __init__(self, mark: Mark, window: float = WINDOW) -> None:
        self._mark = mark
        self._window = window
        self._open: dict[tuple[str, str], _Window] = {}

    async def submit(self, principal: Principal, conversation_id: str, seq: int) -> None:
        key = (principal.user_id, conversation_id)
        state = self._open.get(key)
        if state is not None:
            state.pending = max(state.pending, seq)
            return
        state = self._open[key] = _Window(principal, seq, seq)
        try:
            await self._mark(principal, conversation_id, seq)
        except BaseException:
            del self._open[key]
            raise
        asyncio.get_running_loop().create_task(self._trail(key, conversation_id, state))

    async def _trail(self, key: tuple[str, str], conversation_id: str, state: _Window) -> None:
        try:
            while True:
                await asyncio.sleep(self._window)
                if state.pending <= state.done:
                    return
                state.done = state.pending
                try:
                    await self._mark(state.principal, conversation_id, state.done)
                except Exception as e:
                    log.warning("coalesced_mark_failed", conversation=conversation_id, seq=state.done, error=repr(e))
        finally:
            self._open.pop(key, None)
