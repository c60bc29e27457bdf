"""The notifier port: how a user with no live session hears of new messages.

An adapter delivers one batch for one user and raises on failure; retries, back-off and batching are
the dispatcher's (services/delivery/notifiers/dispatch.py), so an adapter stays a plain call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Notification:
    conversation_id: str
    message_id: str
    seq: int
    sender_id: str
    text: str
    sent_at: str

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Notification:
        sent_at = frame["sent_at"]
        return cls(
            str(frame["conversation_id"]),
            str(frame["message_id"]),
            int(frame["seq"]),
            str(frame["sender_id"]),
            str(frame.get("text", "")),
            sent_at.isoformat() if hasattr(sent_at, "isoformat") else str(sent_at),
        )


class Notifier(Protocol):
    async def notify(self, user_id: str, batch: Sequence[Notification]) -> None:
        """Deliver `batch` (oldest first) to `user_id`; raise when it did not get through."""
        ...

    async def close(self) -> None: ...
