"""Delivered on fetch: a page of `GET /v1/conversations/{id}/messages` that returns another member's
messages advances the caller's Delivered watermark, as an `ack` over the socket would (issue #5, 3).

It goes through the same per-user-and-conversation coalescer as socket acks (services/gateway/ws/
coalesce.py), so a client that both fetches and acks appends at most one Delivered per window, and
never backwards (a page of older messages changes nothing). It runs after the response, in the
background: the fetch neither waits for the append nor fails with it (the next fetch repeats it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from services.gateway.auth import Principal
from services.projections.views import MessageView
from shared.logging import get_logger

log = get_logger(__name__)

Submit = Callable[[Principal, str, int], Awaitable[None]]


def fetched_up_to(page: Sequence[MessageView], user_id: str) -> int:
    """The Delivered watermark a fetched page gives its reader: the highest seq of another member's
    message in it (0: none, as for a page of one's own messages)."""
    return max((m.seq for m in page if m.sender_id != user_id), default=0)


class FetchDelivery:
    """Marks fetched pages delivered in background tasks, kept until done (and cancelled at stop)."""

    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        self._tasks: set[asyncio.Task[None]] = set()

    def fetched(self, principal: Principal, conversation_id: str, page: Sequence[MessageView]) -> None:
        seq = fetched_up_to(page, principal.user_id)
        if seq == 0:
            return
        task = asyncio.get_running_loop().create_task(self._mark(principal, conversation_id, seq))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mark(self, principal: Principal, conversation_id: str, seq: int) -> None:
        try:
            await self._submit(principal, conversation_id, seq)
        except Exception as e:  # the fetch has been answered; the next one (or an ack) repeats it
            log.warning("delivered_on_fetch_failed", conversation=conversation_id, seq=seq, error=repr(e))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
