"""The catalogue: every registered event survives the store and the broker, and bad input is refused.

EXAMPLES holds one valid payload per event type; a new event without an example fails
`test_every_registered_event_has_an_example`, so every event gets the round-trip tests for free.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events.base import Event
from shared.events.catalogue import registry
from shared.events.cloudevents import from_cloudevent_bytes, to_cloudevent_bytes
from shared.events.envelope import RecordedEvent

CONV = "0b7c6f1e-0000-4000-8000-000000000001"
TICKET = "0b7c6f1e-0000-4000-8000-000000000002"
SHA = "0123456789abcdef" * 4
DUE = "2026-11-22T12:00:00Z"

EXAMPLES: dict[str, dict[str, Any]] = {
    "ConversationStarted": {
        "conversation_id": CONV,
        "kind": "group",
        "title": "Тендер №17",
        "description": "Обсуждение заявки",
        "avatar_color": "#1A2b3C",
        "members": ["alice", "bob"],
        "created_by": "alice",
    },
    "MemberAdded": {"conversation_id": CONV, "user_id": "carol", "added_by": "alice"},
    "MemberRemoved": {"conversation_id": CONV, "user_id": "carol", "removed_by": "carol", "reason": "left"},
    "ConversationDetailsChanged": {"conversation_id": CONV, "title": "Новое имя", "changed_by": "alice"},
    "MessageSent": {
        "conversation_id": CONV,
        "message_id": "m-1",
        "seq": 1,
        "sender_id": "alice",
        "client_msg_id": "c-1",
        "text": "Привет! See the offer 😀",
        "attachments": [
            {"file_id": "f-1", "name": "offer.pdf", "mime": "application/pdf", "size": 1024, "sha256": SHA}
        ],
        "links": [{"kind": "tender", "id": "T-17", "title": "Поставка труб"}],
        "reply_to": None,
    },
    "MessageEdited": {
        "conversation_id": CONV,
        "message_id": "m-1",
        "seq": 1,
        "text": "fixed",
        "edited_by": "alice",
    },
    "MessageRetracted": {"conversation_id": CONV, "message_id": "m-1", "seq": 1, "retracted_by": "alice"},
    "ConversationExpired": {"conversation_id": CONV, "kind": "group", "retention_days": 365},
    "Delivered": {"conversation_id": CONV, "user_id": "bob", "up_to_seq": 0},
    "Read": {"conversation_id": CONV, "user_id": "bob", "up_to_seq": 7},
    "TicketOpened": {
        "ticket_id": TICKET,
        "conversation_id": CONV,
        "requester_id": "alice",
        "segment": "customers",
        "channel": "chat",
        "subject": "Не приходит счёт",
        "priority": "normal",
        "line": 1,
    },
    "TicketAssigned": {
        "ticket_id": TICKET,
        "agent_id": "agent-1",
        "line": 1,
        "assigned_by": "system:tickets",
        "previous_agent_id": None,
    },
    "TicketUnassigned": {
        "ticket_id": TICKET,
        "agent_id": "agent-1",
        "unassigned_by": "sup-1",
        "reason": "manual",
    },
    "TicketEscalated": {
        "ticket_id": TICKET,
        "from_line": 1,
        "to_line": 2,
        "reason": "sla_first_response",
        "by": "system:tickets",
        "comment": None,
    },
    "TicketSlaClockStarted": {
        "ticket_id": TICKET,
        "clock": "first_response",
        "target_seconds": 900,
        "due_at": DUE,
    },
    "TicketSlaClockPaused": {"ticket_id": TICKET, "clock": "resolution", "remaining_seconds": -30},
    "TicketSlaClockResumed": {"ticket_id": TICKET, "clock": "resolution", "due_at": DUE},
    "TicketSlaClockFulfilled": {"ticket_id": TICKET, "clock": "first_response", "elapsed_seconds": 120},
    "TicketSlaBreached": {"ticket_id": TICKET, "clock": "resolution", "due_at": DUE},
    "TicketStatusChanged": {
        "ticket_id": TICKET,
        "from_status": "open",
        "to_status": "pending",
        "by": "agent-1",
    },
    "TicketPriorityChanged": {
        "ticket_id": TICKET,
        "from_priority": "normal",
        "to_priority": "urgent",
        "by": "sup-1",
    },
    "TicketNoteAdded": {
        "ticket_id": TICKET,
        "note_id": "n-1",
        "author_id": "agent-1",
        "text": "Проверил логи",
    },
    "TicketTagged": {"ticket_id": TICKET, "added": ["billing"], "removed": ["new"], "by": "agent-1"},
    "TicketRated": {"ticket_id": TICKET, "score": 5, "comment": "Спасибо!", "by": "alice"},
    "TicketMessageLinked": {
        "ticket_id": TICKET,
        "conversation_id": CONV,
        "message_id": "m-1",
        "seq": 1,
        "author_id": "alice",
        "public": True,
    },
    "AgentAvailabilityChanged": {"agent_id": "agent-1", "available": True},
    "UserSeen": {
        "user_id": "alice",
        "name": "Алиса Петрова",
        "roles": ["user"],
        "segment": "customers",
        "lines": [],
    },
    "UserProfileChanged": {
        "user_id": "agent-1",
        "name": "Иван Иванов",
        "roles": ["user", "agent"],
        "segment": None,
        "lines": [1, 2],
    },
    "PersonalDataErased": {
        "user_id": "alice",
        "erased_by": "admin-1",
        "reason": "data_subject_request",
        "reference": "REQ-2026-117",
    },
    "AuditQueried": {
        "auditor_id": "auditor-1",
        "action": "query",
        "filters": {"stream_id": f"conversation-{CONV}", "from_position": 100, "to": None},
        "record_count": 42,
    },
}


def event_of(type_: str, **changes: Any) -> Event:
    return registry.decode(type_, registry.latest_version(type_), EXAMPLES[type_] | changes)


def recorded(event: Event) -> RecordedEvent:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    return RecordedEvent(
        position=1,
        stream_id="conversation-x",
        stream_version=1,
        event_id=uuid.uuid4(),
        type=event.type,
        schema_version=event.schema_version,
        occurred_at=now,
        recorded_at=now,
        actor="system:test",
        correlation_id=None,
        causation_id=None,
        payload=event.payload(),
        metadata={},
        prev_hash="",
        hash="f" * 64,
    )


def test_every_registered_event_has_an_example() -> None:
    assert sorted(EXAMPLES) == registry.types()


def test_every_event_is_frozen_and_forbids_unknown_fields() -> None:
    for model in registry:
        assert model.model_config.get("frozen") is True, model.__name__
        assert model.model_config.get("extra") == "forbid", model.__name__


def test_personal_fields_name_real_fields() -> None:
    for model in registry:
        assert model.personal_fields <= set(model.model_fields), model.__name__


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_event_round_trips_through_its_stored_payload(type_: str) -> None:
    event = event_of(type_)
    payload = event.payload()
    assert "type" not in payload and "schema_version" not in payload
    assert registry.decode(event.type, event.schema_version, payload) == event


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_event_round_trips_through_cloudevents(type_: str) -> None:
    stored = recorded(event_of(type_))
    back = from_cloudevent_bytes(to_cloudevent_bytes(stored, "gateway"))
    assert back == stored
    assert back.event == stored.event


def test_times_are_normalised_to_utc() -> None:
    event = event_of("TicketSlaBreached", due_at="2026-11-22T15:00:00+03:00")
    assert event.payload()["due_at"] == "2026-11-22T12:00:00Z"


def test_events_are_immutable() -> None:
    event = event_of("Read")
    with pytest.raises(ValidationError):
        event.up_to_seq = 9  # type: ignore[attr-defined]


def attachment(**changes: Any) -> dict[str, Any]:
    return {"file_id": "f", "name": "a.txt", "mime": "text/plain", "size": 1, "sha256": SHA} | changes


def rejected(type_: str, **changes: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        event_of(type_, **changes)
    return caught.value


def bad_fields(error: ValidationError) -> set[str]:
    return {".".join(str(part) for part in e["loc"]) for e in error.errors()}


@pytest.mark.parametrize(
    ("type_", "changes", "field"),
    [
        ("MessageSent", {"colour": "red"}, "colour"),
        ("MessageSent", {"text": "x" * 16_001}, "text"),
        ("MessageSent", {"text": "a\x00b"}, "text"),
        ("MessageSent", {"seq": "1"}, "seq"),
        ("MessageSent", {"seq": 0}, "seq"),
        ("MessageSent", {"client_msg_id": ""}, "client_msg_id"),
        ("MessageSent", {"client_msg_id": "c" * 65}, "client_msg_id"),
        ("MessageSent", {"conversation_id": "c" * 201}, "conversation_id"),
        ("MessageSent", {"links": [{"kind": "invoice", "id": "1", "title": "x"}]}, "links.0.kind"),
        ("MessageSent", {"attachments": [attachment(mime="pdf")]}, "attachments.0.mime"),
        ("MessageSent", {"attachments": [attachment(name="a\x00")]}, "attachments.0.name"),
        ("MessageSent", {"attachments": [attachment(sha256="x")]}, "attachments.0.sha256"),
        ("MessageSent", {"attachments": [attachment(size=-1)]}, "attachments.0.size"),
        ("ConversationStarted", {"kind": "channel"}, "kind"),
        ("ConversationStarted", {"avatar_color": "red"}, "avatar_color"),
        ("ConversationStarted", {"members": []}, "members"),
        ("Read", {"up_to_seq": -1}, "up_to_seq"),
        ("Read", {"up_to_seq": True}, "up_to_seq"),
        ("TicketOpened", {"priority": "critical"}, "priority"),
        ("TicketOpened", {"line": 4}, "line"),
        ("TicketOpened", {"segment": "partners"}, "segment"),
        ("TicketSlaClockStarted", {"due_at": "2026-11-22T12:00:00"}, "due_at"),
        ("TicketSlaClockStarted", {"target_seconds": 0}, "target_seconds"),
        ("TicketRated", {"score": 6}, "score"),
        ("TicketNoteAdded", {"text": "n" * 16_001}, "text"),
        ("TicketMessageLinked", {"public": "yes"}, "public"),
        ("UserSeen", {"roles": ["root"]}, "roles.0"),
        ("UserSeen", {"name": ""}, "name"),
        ("PersonalDataErased", {"reason": "because"}, "reason"),
        ("AuditQueried", {"action": "delete"}, "action"),
        ("AuditQueried", {"filters": {"Bad Name": "x"}}, "filters.Bad Name"),
        ("AuditQueried", {"filters": {"text": "a\x00"}}, "filters.text"),
    ],
)
def test_bad_payload_is_rejected_naming_the_field(type_: str, changes: dict[str, Any], field: str) -> None:
    # A union's error adds the member it tried to the location: the field is its prefix.
    locations = bad_fields(rejected(type_, **changes))
    assert any(loc == field or loc.startswith(field + ".") for loc in locations), locations


def test_nul_error_says_why() -> None:
    assert "NUL" in str(rejected("MessageSent", text="a\x00b"))


@pytest.mark.parametrize(
    ("type_", "changes", "message"),
    [
        ("MessageSent", {"text": "  ", "attachments": [], "links": []}, "needs a text"),
        ("ConversationStarted", {"members": ["a", "a"]}, "must not repeat"),
        ("ConversationDetailsChanged", {"title": None}, "at least one of"),
        ("TicketEscalated", {"to_line": 1}, "must differ"),
        ("TicketEscalated", {"from_line": 3, "to_line": 2}, "only a de_escalation"),
        ("TicketEscalated", {"reason": "de_escalation"}, "only a de_escalation"),
        ("TicketStatusChanged", {"to_status": "open"}, "must differ"),
        ("TicketPriorityChanged", {"to_priority": "normal"}, "must differ"),
        ("TicketTagged", {"added": [], "removed": []}, "must name a tag"),
        ("TicketTagged", {"added": ["x"], "removed": ["x"]}, "both added and removed"),
    ],
)
def test_inconsistent_event_is_rejected(type_: str, changes: dict[str, Any], message: str) -> None:
    assert message in str(rejected(type_, **changes))


def test_de_escalation_moves_a_ticket_down() -> None:
    event = event_of("TicketEscalated", from_line=3, to_line=1, reason="de_escalation")
    assert event.payload()["to_line"] == 1


def test_recorded_event_decodes_without_importing_the_catalogue_first() -> None:
    # A fresh interpreter: in this one the catalogue is already imported by the test module.
    code = (
        "import sys, shared.events, shared.events.envelope as e\n"
        "assert 'shared.events.catalogue' not in sys.modules\n"
        "from shared.events.registry import registry\n"
        "print(registry.decode('Read', 1, {'conversation_id': 'c', 'user_id': 'u', 'up_to_seq': 1}).type)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Read"
