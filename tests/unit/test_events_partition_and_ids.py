"""Partitions and deterministic ids: both are contracts with data already stored or published, so
the expectations below are fixed values, not recomputed ones."""

from __future__ import annotations

import uuid
import zlib

import pytest

from shared.events.ids import LEDGERLINE_NAMESPACE, deterministic_id, message_event_id, message_id
from shared.events.partition import partition_of


@pytest.mark.parametrize(
    ("stream_id", "partitions", "expected"),
    [
        ("conversation-00000000-0000-0000-0000-000000000001", 16, 2),
        ("ticket-00000000-0000-0000-0000-000000000001", 16, 14),
        ("user-alice", 16, 5),
        ("audit", 16, 9),
        ("ticket-00000000-0000-0000-0000-000000000001", 4, 2),
        ("user-alice", 1, 0),
    ],
)
def test_partition_of_a_stream_never_changes(stream_id: str, partitions: int, expected: int) -> None:
    assert partition_of(stream_id, partitions) == expected


def test_partition_is_crc32_of_the_utf8_stream_id() -> None:
    stream_id = "user-Пётр"
    assert partition_of(stream_id) == zlib.crc32(stream_id.encode("utf-8")) % 16


def test_partition_defaults_to_16_partitions() -> None:
    assert {partition_of(f"conversation-{i}") for i in range(500)} == set(range(16))


def test_partition_count_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_of("user-alice", 0)


def test_namespace_is_the_hard_coded_one() -> None:
    assert uuid.UUID("69d2e414-234c-47e8-9644-8e9505c32193") == LEDGERLINE_NAMESPACE


def test_deterministic_id_is_the_same_for_the_same_parts() -> None:
    assert deterministic_id("a") == uuid.UUID("a819a4fb-c272-52f7-9cde-3f25d8ab3ac7")
    assert deterministic_id("a", "b") == deterministic_id("a", "b")
    assert deterministic_id("a", "b").version == 5


def test_deterministic_id_does_not_collide_when_parts_shift() -> None:
    assert deterministic_id("a:b", "c") != deterministic_id("a", "b:c")
    assert deterministic_id("ab") != deterministic_id("a", "b")


def test_deterministic_id_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        deterministic_id()


def test_retried_send_gets_the_same_message_event_id() -> None:
    first = message_event_id("c1", "u1", "m1")
    assert first == uuid.UUID("86bb845e-fdcc-5173-84a5-c1cc4b913f80")
    assert message_event_id("c1", "u1", "m1") == first
    assert message_event_id("c1", "u2", "m1") != first
    assert message_event_id("c2", "u1", "m1") != first


def test_message_event_id_accepts_a_uuid_conversation_id() -> None:
    conversation = uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert message_event_id(conversation, "u1", "m1") == message_event_id(str(conversation), "u1", "m1")


def test_message_id_differs_from_its_event_id() -> None:
    assert message_id("c1", "u1", "m1") != message_event_id("c1", "u1", "m1")
