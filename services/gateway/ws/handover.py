"""Messages this gateway has just committed, handed straight to the sockets it holds (docs/realtime.md).

A frame's durable path is store → relay → broker → delivery worker → ephemeral subject → gateway:
tens of milliseconds under load, most of a send-to-receive time. The conversation executor calls
`Handover` right after each batch commits, with the conversation's state after it; every
MessageSent of the batch becomes the very `message` frame delivery would publish
(services.delivery.frames.message_frame) and goes to this gateway's sessions of the conversation's
members. Delivery still publishes its copy: it reaches the sockets on other gateways and every
frame this path did not give, and a session here drops it as a duplicate. A session sends a
handed-over frame only when it is the next seq of a conversation it already follows
(Session.deliver), so the two paths together never reorder, double or lose a message, and a new
conversation's `conversation` frame (from delivery) still comes before its first message.

A batch that changes membership is left to delivery: the recipients of its messages are the members
at each message, which the state after the batch no longer tells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from services.delivery.frames import message_frame
from services.delivery.realtime import encode
from services.gateway.commands.state import ConversationState
from services.gateway.ws.hub import Hub
from shared.events.base import Event
from shared.events.conversation import MessageSent
from shared.events.envelope import NewEvent

MEMBERSHIP = frozenset({"ConversationStarted", "MemberAdded", "MemberRemoved"})


class Handover:
    def __init__(self, hub: Hub, frames: Counter) -> None:
        self._hub = hub
        self._sent = frames.labels("sent")
        self._left = frames.labels("left_to_delivery")

    def __call__(self, state: ConversationState, events: Sequence[NewEvent]) -> None:
        sessions = self._hub.sessions
        local = [user for user in state.members if user in sessions]
        if not local or any(new.type in MEMBERSHIP for new in events):
            return
        for new in events:
            if new.type != "MessageSent":
                continue
            frame = message_frame(_payload(new.event), new.occurred_at)
            raw = encode(frame)
            for user in local:
                for session in sessions.get(user, ()):  # deliver never joins or leaves the hub
                    (self._sent if session.deliver(frame, raw, handed_over=True) else self._left).inc()


def _payload(event: Event) -> dict[str, Any]:
    """What message_frame reads of a MessageSent payload; a plain text message without pydantic's dump."""
    assert isinstance(event, MessageSent)
    if event.attachments or event.links:
        return event.payload()
    fields = {"conversation_id": event.conversation_id, "seq": event.seq, "message_id": event.message_id}
    return {**fields, "sender_id": event.sender_id, "text": event.text, "reply_to": event.reply_to}
