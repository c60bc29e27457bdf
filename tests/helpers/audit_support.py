"""What the audit tests share: a scripted conversation (messages, an edit, a retraction, a member
leaving, another joining, receipts) with real catalogue events and their actors, the moments to
replay it at, and the states expected there, written by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events.base import Event
from shared.events.conversation import (
    ConversationStarted,
    Delivered,
    MemberAdded,
    MemberRemoved,
    MessageEdited,
    MessageRetracted,
    MessageSent,
    Read,
)
from shared.events.envelope import NewEvent
from shared.store.port import EventStore

CONV = "deal-7"
STREAM = f"conversation-{CONV}"


def _sent(seq: int, sender: str, text: str) -> MessageSent:
    return MessageSent(
        conversation_id=CONV, message_id=f"m{seq}", seq=seq, sender_id=sender, client_msg_id=f"c{seq}", text=text
    )


# (actor, event); the comments give the watermarks (delivered, read) after each step.
SCRIPT: list[tuple[str, Event]] = [
    ("ann", ConversationStarted(conversation_id=CONV, kind="group", title="Deal 7", members=("ann", "bob", "cy"),
                                created_by="ann")),  # 1
    ("ann", _sent(1, "ann", "Price is 100")),  # 2: ann (1,1)
    ("bob", Delivered(conversation_id=CONV, user_id="bob", up_to_seq=1)),  # 3: bob (1,0)
    ("bob", _sent(2, "bob", "Agreed")),  # 4: bob (2,2)
    ("ann", MessageEdited(conversation_id=CONV, message_id="m1", seq=1, text="Price is 120", edited_by="ann")),  # 5
    ("cy", Read(conversation_id=CONV, user_id="cy", up_to_seq=2)),  # 6: cy (2,2)
    ("cy", MemberRemoved(conversation_id=CONV, user_id="cy", removed_by="cy", reason="left")),  # 7
    ("ann", _sent(3, "ann", "Oops, wrong chat")),  # 8: ann (3,3)
    ("ann", MessageRetracted(conversation_id=CONV, message_id="m3", seq=3, retracted_by="ann")),  # 9
    ("ann", MemberAdded(conversation_id=CONV, user_id="dan", added_by="ann")),  # 10
    ("bob", Read(conversation_id=CONV, user_id="bob", up_to_seq=3)),  # 11: bob (3,3)
    ("dan", Delivered(conversation_id=CONV, user_id="dan", up_to_seq=3)),  # 12: dan (3,0)
]  # fmt: skip

MOMENTS = (1, 3, 6, 9, 12)
"""Replay right after these steps (1-based): as_of = that event's recorded_at."""


def _m(seq: int, text: str | None, delivered: list[str], read: list[str], **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "text": text, "delivered_to": delivered, "read_by": read, **extra}


# What an auditor must see at each moment: members, and each message's text and receipts.
EXPECTED: dict[int, dict[str, Any]] = {
    1: {"members": ["ann", "bob", "cy"], "left": [], "messages": []},
    3: {
        "members": ["ann", "bob", "cy"],
        "left": [],
        "messages": [_m(1, "Price is 100", ["bob"], [], edited=False, retracted=False)],
    },
    6: {
        "members": ["ann", "bob", "cy"],
        "left": [],
        "messages": [
            _m(1, "Price is 120", ["bob", "cy"], ["bob", "cy"], edited=True, retracted=False),
            _m(2, "Agreed", ["cy"], ["cy"], edited=False, retracted=False),
        ],
    },
    9: {
        "members": ["ann", "bob"],
        "left": ["cy"],
        "messages": [
            _m(1, "Price is 120", ["bob", "cy"], ["bob", "cy"], edited=True, retracted=False),
            _m(2, "Agreed", ["ann", "cy"], ["ann", "cy"], edited=False, retracted=False),
            _m(3, None, [], [], edited=False, retracted=True),
        ],
    },
    12: {
        "members": ["ann", "bob", "dan"],
        "left": ["cy"],
        "messages": [
            _m(1, "Price is 120", ["bob", "cy", "dan"], ["bob", "cy"], edited=True, retracted=False),
            _m(2, "Agreed", ["ann", "cy", "dan"], ["ann", "cy"], edited=False, retracted=False),
            _m(3, None, ["bob", "dan"], ["bob"], edited=False, retracted=True),
        ],
    },
}


async def write_script(store: EventStore) -> list[datetime]:
    """Append the script one event per append (as the gateway would); returns each step's recorded_at."""
    for actor, event in SCRIPT:
        await store.append(STREAM, [NewEvent(event, actor)])
    recorded = [e.recorded_at for e in await store.read_stream(STREAM)]
    assert recorded == sorted(recorded) and len(set(recorded)) == len(recorded), "each step needs its own moment"
    return recorded


def observed(replayed: dict[str, Any]) -> dict[str, Any]:
    """The parts of a replay (services.audit.replay.to_json) that EXPECTED states."""
    return {
        "members": replayed["members"],
        "left": sorted(s["user_id"] for s in replayed["membership"] if s["left_at"] is not None),
        "messages": [
            _m(
                m["seq"],
                m["text"],
                m["delivered_to"],
                m["read_by"],
                edited=m["edited_at"] is not None,
                retracted=m["retracted"],
            )
            for m in replayed["messages"]
        ],
    }
