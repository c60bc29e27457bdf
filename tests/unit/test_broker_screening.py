"""The worker runtime's screening (shared/broker/screening.py): what the catalogue accepts passes, the
rest is named."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from shared.broker.screening import invalid_reason
from shared.events.conversation import MessageSent
from shared.events.envelope import RecordedEvent


def recorded(type_: str = "MessageSent", version: int = 1, **payload: object) -> RecordedEvent:
    sent = MessageSent(
        conversation_id="c1", message_id="m1", seq=1, sender_id="alice", client_msg_id="k1", text="hi"
    ).payload()
    now = datetime.now(UTC)
    return RecordedEvent(
        1, "conversation-c1", 1, uuid.uuid4(), type_, version, now, now, "alice",
        None, None, sent | payload, {}, "", "h",
    )  # fmt: skip


def test_a_catalogue_event_passes() -> None:
    assert invalid_reason(recorded()) is None


def test_unknown_types_and_versions_are_named() -> None:
    assert "unknown event type 'NoSuchEvent'" in str(invalid_reason(recorded("NoSuchEvent")))
    assert "version 99" in str(invalid_reason(recorded(version=99)))


def test_a_payload_breaking_its_model_names_the_field() -> None:
    reason = str(invalid_reason(recorded(seq="first")))
    assert reason.startswith("invalid event: MessageSent v1 payload breaks its schema") and "seq" in reason
    missing = dataclasses.replace(recorded(), payload={"conversation_id": "c1"})
    assert "message_id" in str(invalid_reason(missing))
