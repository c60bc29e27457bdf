"""Upcasting: a stored v1 payload is read as the latest version, and the store is never rewritten.

Everything here uses its own EventRegistry: the made-up versions must never reach the global one.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from shared.events.conversation import MessageSent
from shared.events.registry import EventRegistry, UnknownEventType, registry

STORED_V1: dict[str, Any] = MessageSent(
    conversation_id="c1", message_id="m1", seq=1, sender_id="alice", client_msg_id="k1", text="*hi*"
).payload()


class MessageSentV2(MessageSent):
    """A made-up v2: the text gets a format."""

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    format: Literal["plain", "markdown"]


class MessageSentV3(MessageSentV2):
    """A made-up v3: `reply_to` is renamed `in_reply_to`."""

    schema_version: Literal[3] = 3  # type: ignore[assignment]
    reply_to: None = None
    in_reply_to: str | None = None


def upcast_message_sent_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return payload | {"format": "plain"}  # every v1 text was plain


def upcast_message_sent_v2_v3(payload: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in payload.items() if k != "reply_to"}
    return rest | {"in_reply_to": payload.get("reply_to")}


def registry_with(*models: type[MessageSent]) -> EventRegistry:
    local = EventRegistry()
    for model in (MessageSent, *models):
        local.register(model)
    return local


def test_stored_v1_payload_decodes_as_v2_through_the_upcaster() -> None:
    local = registry_with(MessageSentV2)
    local.add_upcaster("MessageSent", 1, upcast_message_sent_v1_v2)
    event = local.decode("MessageSent", 1, STORED_V1)
    assert isinstance(event, MessageSentV2)
    assert event.schema_version == 2
    assert event.format == "plain"
    assert event.text == "*hi*"


def test_upcasters_chain_from_v1_to_the_latest_version() -> None:
    local = registry_with(MessageSentV2, MessageSentV3)
    local.add_upcaster("MessageSent", 1, upcast_message_sent_v1_v2)
    local.add_upcaster("MessageSent", 2, upcast_message_sent_v2_v3)
    event = local.decode("MessageSent", 1, STORED_V1 | {"reply_to": "m0"})
    assert isinstance(event, MessageSentV3)
    assert (event.format, event.in_reply_to) == ("plain", "m0")


def test_upcasting_leaves_the_stored_payload_unchanged() -> None:
    local = registry_with(MessageSentV2)
    local.add_upcaster("MessageSent", 1, upcast_message_sent_v1_v2)
    stored = dict(STORED_V1)
    local.decode("MessageSent", 1, stored)
    assert stored == STORED_V1


def test_old_version_without_an_upcaster_decodes_as_its_own_model() -> None:
    local = registry_with(MessageSentV2)
    event = local.decode("MessageSent", 1, STORED_V1)
    assert type(event) is MessageSent
    assert local.latest_version("MessageSent") == 2


def test_a_v2_payload_decodes_without_upcasting() -> None:
    local = registry_with(MessageSentV2)
    local.add_upcaster("MessageSent", 1, upcast_message_sent_v1_v2)
    event = local.decode("MessageSent", 2, STORED_V1 | {"format": "markdown"})
    assert isinstance(event, MessageSentV2)
    assert event.format == "markdown"


def test_the_global_registry_still_has_only_v1() -> None:
    assert registry.latest_version("MessageSent") == 1
    with pytest.raises(UnknownEventType):
        registry.model_for("MessageSent", 2)


def test_a_fresh_registry_knows_no_events() -> None:
    with pytest.raises(UnknownEventType, match="'MessageSent' version 1"):
        EventRegistry().decode("MessageSent", 1, STORED_V1)
