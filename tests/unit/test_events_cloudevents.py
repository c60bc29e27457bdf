"""CloudEvents mapping: what the relay publishes and what consumers read back."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from shared.errors import LedgerlineError
from shared.events.cloudevents import (
    CONTENT_TYPE,
    InvalidCloudEvent,
    from_cloudevent,
    from_cloudevent_bytes,
    to_cloudevent,
    to_cloudevent_bytes,
)
from shared.events.envelope import RecordedEvent
from shared.events.partition import partition_of

EVENT_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")


def recorded(**changes: Any) -> RecordedEvent:
    base = RecordedEvent(
        position=42,
        stream_id="conversation-00000000-0000-0000-0000-000000000001",
        stream_version=3,
        event_id=EVENT_ID,
        type="MessageSent",
        schema_version=1,
        occurred_at=datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC),
        recorded_at=datetime(2026, 11, 22, 10, 0, 0, 200000, tzinfo=UTC),
        actor="user-alice",
        correlation_id=uuid.UUID("22222222-2222-4222-8222-222222222222"),
        causation_id=None,
        payload={"conversation_id": "c1", "text": "привет"},
        metadata={"ip": "10.0.0.1"},
        prev_hash="a" * 64,
        hash="b" * 64,
    )
    return replace(base, **changes)


def test_cloudevent_carries_the_contract_attributes() -> None:
    event = recorded()
    ce = to_cloudevent(event, "gateway")
    assert ce == {
        "specversion": "1.0",
        "id": str(EVENT_ID),
        "source": "ledgerline/gateway",
        "type": "ledgerline.MessageSent.v1",
        "subject": event.stream_id,
        "time": "2026-11-22T10:00:00.123456Z",
        "datacontenttype": "application/json",
        "data": event.payload,
        "position": 42,
        "streamversion": 3,
        "correlationid": "22222222-2222-4222-8222-222222222222",
        "actor": "user-alice",
        "recordedat": "2026-11-22T10:00:00.200000Z",
        "partition": partition_of(event.stream_id),
        "prevhash": "a" * 64,
        "hash": "b" * 64,
        "metadata": '{"ip":"10.0.0.1"}',
    }
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_extension_names_are_lowercase_alphanumeric() -> None:
    ce = to_cloudevent(recorded(causation_id=uuid.uuid4()), "gateway")
    assert all(name.isalnum() and name.islower() for name in ce)


def test_cloudevent_omits_empty_optional_attributes() -> None:
    ce = to_cloudevent(recorded(correlation_id=None, metadata={}), "ledgerline/relay")
    assert "correlationid" not in ce and "causationid" not in ce and "metadata" not in ce
    assert ce["source"] == "ledgerline/relay"


def test_cloudevent_partition_follows_the_partition_count() -> None:
    event = recorded()
    assert to_cloudevent(event, "gateway", partitions=4)["partition"] == partition_of(event.stream_id, 4)


@pytest.mark.parametrize(
    "event",
    [
        recorded(),
        recorded(correlation_id=None, causation_id=uuid.uuid4(), metadata={}, prev_hash=""),
        recorded(occurred_at=datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))),
    ],
)
def test_cloudevent_round_trip_rebuilds_an_equal_recorded_event(event: RecordedEvent) -> None:
    assert from_cloudevent(to_cloudevent(event, "gateway")) == event
    assert from_cloudevent_bytes(to_cloudevent_bytes(event, "gateway")) == event


def test_time_is_written_in_utc() -> None:
    moscow = datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))
    assert to_cloudevent(recorded(occurred_at=moscow), "gateway")["time"] == "2026-01-01T00:00:00.000000Z"


def test_integers_sent_as_strings_are_accepted() -> None:
    ce = to_cloudevent(recorded(), "gateway") | {"position": "42", "streamversion": "3"}
    assert from_cloudevent(ce) == recorded()


def good() -> dict[str, Any]:
    return to_cloudevent(recorded(), "gateway")


def without(name: str) -> dict[str, Any]:
    ce = good()
    del ce[name]
    return ce


@pytest.mark.parametrize(
    ("ce", "problem"),
    [
        (without("id"), "missing 'id'"),
        (good() | {"id": "not-a-uuid"}, "'id' is not a UUID"),
        (good() | {"specversion": "0.3"}, "specversion"),
        (good() | {"type": "MessageSent"}, "'type' must look like"),
        (good() | {"type": "ledgerline.MessageSent.1"}, "'type' must look like"),
        (good() | {"type": "ledgerline.MessageSent.v0"}, "'type' must look like"),
        (good() | {"time": "yesterday"}, "'time' is not an RFC 3339 time"),
        (good() | {"time": "2026-11-22T10:00:00"}, "'time' has no time zone"),
        (without("subject"), "missing 'subject'"),
        (good() | {"source": "crm/x"}, "'source' must start with"),
        (good() | {"position": 4.2}, "'position' must be an integer"),
        (good() | {"streamversion": True}, "'streamversion' must be an integer"),
        (good() | {"data": [1]}, "'data' must be a JSON object"),
        (good() | {"datacontenttype": "text/plain"}, "'datacontenttype'"),
        (good() | {"metadata": "{"}, "'metadata' is not valid JSON"),
        (good() | {"metadata": "[1]"}, "'metadata' must encode a JSON object"),
        (good() | {"correlationid": 7}, "'correlationid' must be a string"),
        (without("hash"), "missing 'hash'"),
    ],
)
def test_malformed_cloudevent_is_rejected_naming_the_problem(ce: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidCloudEvent, match=problem) as caught:
        from_cloudevent(ce)
    assert isinstance(caught.value, LedgerlineError)
    assert problem in caught.value.problem


def test_error_names_the_event_id_when_there_is_one() -> None:
    with pytest.raises(InvalidCloudEvent) as caught:
        from_cloudevent(good() | {"time": "yesterday"})
    assert caught.value.event_id == str(EVENT_ID)


def test_bytes_that_are_not_json_are_rejected() -> None:
    with pytest.raises(InvalidCloudEvent, match="not JSON"):
        from_cloudevent_bytes(b"{nope")


def test_json_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(InvalidCloudEvent, match="expected a JSON object"):
        from_cloudevent_bytes(orjson.dumps([1, 2]))
