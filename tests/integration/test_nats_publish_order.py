"""The events stream on JetStream stays in position order across a lost publish (the machine's NATS).

A server that crashes can lose the tail of one relay page while the next page, still in the client's
buffer, is stored after the reconnect; workers whose checkpoints passed those later events would then
skip the lost tail for good (the fault-injection run found exactly that). Each event therefore carries
`Nats-Expected-Last-Msg-Id` = its predecessor's id, and the server refuses it unless that predecessor
is the stream's last message.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
from conftest import unique_suffix

from shared.broker.errors import PublishFailed
from shared.broker.factory import connect_broker
from shared.broker.nats.broker import NatsBroker
from shared.events.envelope import RecordedEvent


def events(count: int) -> list[RecordedEvent]:
    now = datetime.now(UTC)
    return [
        RecordedEvent(
            p, f"conversation-{uuid.uuid4()}", 1, uuid.uuid4(), "MessageSent", 1, now, now, "user-a",
            None, None, {"text": f"event {p}"}, {}, "", f"{p:064x}",
        )
        for p in range(1, count + 1)
    ]  # fmt: skip


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[NatsBroker]:
    b = await connect_broker(nats_url, namespace=f"t{unique_suffix()}")
    assert isinstance(b, NatsBroker)
    try:
        yield b
    finally:
        await b.delete_topology([])
        await b.close()


async def stored_positions(broker: NatsBroker) -> list[int]:
    info = await broker._js.stream_info(broker.names.stream)
    positions = []
    for seq in range(1, info.state.last_seq + 1):
        msg = await broker._js.get_msg(broker.names.stream, seq)
        assert msg.data is not None
        positions.append(int(orjson.loads(msg.data)["position"]))
    return positions


async def test_a_page_after_a_lost_event_is_refused_and_the_retry_restores_position_order(broker: NatsBroker) -> None:
    page = events(6)
    await broker.publish_events(page[:3])
    # Event 4 went out but the server lost it with its crash (no ack); the client then sends 5 and 6.
    broker._last_sent = (4, str(page[3].event_id))  # what the adapter remembers after sending event 4
    with pytest.raises(PublishFailed, match="wrong last msg ID"):
        await broker.publish_events(page[4:])
    assert await stored_positions(broker) == [1, 2, 3], "5 and 6 must not overtake the lost 4"
    # The relay retries from its last confirmed position: 4, 5, 6, stored in order.
    await broker.publish_events(page[3:])
    assert await stored_positions(broker) == [1, 2, 3, 4, 5, 6]


async def test_a_republished_page_is_answered_as_duplicates_and_stores_nothing_twice(broker: NatsBroker) -> None:
    page = events(4)
    await broker.publish_events(page)
    await broker.publish_events(page[1:])  # a relay that crashed before its checkpoint republishes
    assert await stored_positions(broker) == [1, 2, 3, 4]
