"""What the audit read model keeps of each event besides the event itself: the conversation it
belongs to, the people it involves and a one-line summary an auditor can read.

Pure functions of (type, actor, payload): the projection and any export use the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# Payload keys that name a user (the catalogue's spelling). Lists of users: `members`.
USER_KEYS = (
    "user_id",
    "sender_id",
    "created_by",
    "added_by",
    "removed_by",
    "changed_by",
    "edited_by",
    "retracted_by",
    "requester_id",
    "agent_id",
    "previous_agent_id",
    "assigned_by",
    "unassigned_by",
    "by",
    "auditor_id",
    "erased_by",
)
SNIPPET_CHARS = 120

Payload = Mapping[str, Any]


def conversation_of(payload: Payload) -> str | None:
    value = payload.get("conversation_id")
    return value if isinstance(value, str) else None


def users_of(actor: str, payload: Payload) -> set[str]:
    """Everyone the event is about or by; `system:*` actors are services, not people."""
    users = {actor} if not actor.startswith("system:") else set()
    for key in USER_KEYS:
        value = payload.get(key)
        if isinstance(value, str):
            users.add(value)
    members = payload.get("members")
    if isinstance(members, list):
        users.update(m for m in members if isinstance(m, str))
    return users


def _quote(text: object) -> str:
    value = str(text or "").replace("\n", " ")
    return '"' + (value if len(value) <= SNIPPET_CHARS else value[: SNIPPET_CHARS - 1] + "…") + '"'


def _started(p: Payload) -> str:
    title = f" {_quote(p.get('title'))}" if p.get("title") else ""
    return f"{p.get('created_by')} started {p.get('kind')} conversation{title} with {', '.join(p.get('members', []))}"


def _removed(p: Payload) -> str:
    if p.get("reason") == "left":
        return f"{p.get('user_id')} left the conversation"
    return f"{p.get('removed_by')} removed {p.get('user_id')} from the conversation"


def _details(p: Payload) -> str:
    changed = [f"{k} to {_quote(p[k])}" for k in ("title", "description", "avatar_color") if p.get(k) is not None]
    return f"{p.get('changed_by')} changed {', '.join(changed)}"


def _sent(p: Payload) -> str:
    extras = []
    if p.get("attachments"):
        extras.append(f"{len(p['attachments'])} file(s)")
    if p.get("links"):
        extras.append(f"{len(p['links'])} link(s)")
    tail = f" with {', '.join(extras)}" if extras else ""
    return f"{p.get('sender_id')} sent message #{p.get('seq')}: {_quote(p.get('text'))}{tail}"


def _audit(p: Payload) -> str:
    filters = ", ".join(f"{k}={v}" for k, v in sorted(p.get("filters", {}).items()) if v is not None)
    what = f"{p.get('action')} ({filters or 'no filters'})"
    return f"auditor {p.get('auditor_id')} ran {what}: {p.get('record_count')} records"


SUMMARIES: dict[str, Callable[[Payload], str]] = {
    "ConversationStarted": _started,
    "MemberAdded": lambda p: f"{p.get('added_by')} added {p.get('user_id')} to the conversation",
    "MemberRemoved": _removed,
    "ConversationDetailsChanged": _details,
    "MessageSent": _sent,
    "MessageEdited": lambda p: f"{p.get('edited_by')} edited message #{p.get('seq')} to {_quote(p.get('text'))}",
    "MessageRetracted": lambda p: f"{p.get('retracted_by')} retracted message #{p.get('seq')}",
    "Delivered": lambda p: f"{p.get('user_id')} received messages up to #{p.get('up_to_seq')}",
    "Read": lambda p: f"{p.get('user_id')} read messages up to #{p.get('up_to_seq')}",
    "UserSeen": lambda p: f"user {p.get('user_id')} first seen as {_quote(p.get('name'))}",
    "UserProfileChanged": lambda p: f"user {p.get('user_id')} now known as {_quote(p.get('name'))}",
    "PersonalDataErased": lambda p: f"{p.get('erased_by')} erased the personal data of {p.get('user_id')}",
    "AuditQueried": _audit,
    "TicketOpened": lambda p: f"{p.get('requester_id')} opened ticket {p.get('ticket_id')}: {_quote(p.get('subject'))}",
    "TicketAssigned": lambda p: f"ticket {p.get('ticket_id')} assigned to {p.get('agent_id')} on line {p.get('line')}",
    "TicketEscalated": lambda p: (
        f"ticket {p.get('ticket_id')} escalated from line {p.get('from_line')} "
        f"to {p.get('to_line')} ({p.get('reason')})"
    ),
    "TicketStatusChanged": lambda p: (
        f"{p.get('by')} moved ticket {p.get('ticket_id')} from {p.get('from_status')} to {p.get('to_status')}"
    ),
}


def summary(type_: str, actor: str, payload: Payload) -> str:
    """One line for a person; any event type gets one (unknown types: who did what to which stream)."""
    describe = SUMMARIES.get(type_)
    if describe is not None:
        try:
            return describe(payload)
        except (TypeError, AttributeError, KeyError):  # an odd payload still gets the generic line
            pass
    subject = payload.get("ticket_id") or payload.get("conversation_id") or payload.get("user_id") or ""
    return f"{actor}: {type_} {subject}".rstrip()
