"""The built-in "Technical support" contact and each user's one conversation with it."""

from __future__ import annotations

from shared.events.ids import deterministic_id

# A prefix no host user id uses (host ids are `sub` claims; `ledgerline:` is ours, like `system:`).
SUPPORT_CONTACT_ID = "ledgerline:support"
SUPPORT_TITLE = "Technical support"
# The actor of what the tickets worker appends (auto-assignment, SLA, links).
SYSTEM_ACTOR = "system:tickets"


def support_conversation_id(user_id: str) -> str:
    """Derived from the user, so that asking twice (or from two gateways) finds the same conversation."""
    return str(deterministic_id("support-conversation", user_id))


def is_support_conversation_of(conversation_id: str, user_id: str) -> bool:
    return conversation_id == support_conversation_id(user_id)
