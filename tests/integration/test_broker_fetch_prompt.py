"""A fetch hands over what is there as soon as something is there, on both real brokers.

The realtime hop passes through a worker's fetch (docs/realtime.md): on a quiet partition the fetch
must return the moment an event arrives, with whatever else is pending, not when its window (here
30 s) runs out or its batch (256) fills — also after a run of empty fetches, each of which ended at
its window (on JetStream a pull request's end, a 404/408 status, then races the client's own
timeout; a stale one must not turn the next fetch into a lingering pull). The bounds below are a
third of the window: they tell the two behaviours apart on any machine, they do not time anything.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from test_broker_contract import broker  # noqa: F401  (the fixture: both real brokers, a namespace each)

from shared.broker.port import ConsumerSpec, ConsumingBroker, Delivery
from shared.events.conversation import Read
from shared.events.envelope import RecordedEvent
from shared.events.partition import partition_of

WINDOW = 30.0
PROMPT = WINDOW / 3
QUIET_FETCHES = 40


def events(stream: str, versions: range) -> list[RecordedEvent]:
    """Read watermarks of one stream; position = version (one stream per test)."""
    now = datetime.now(UTC)
    conversation = stream.removeprefix("conversation-")
    return [
        RecordedEvent(
            v, stream, v, uuid.uuid4(), "Read", 1, now, now, "user-a", None, None,
            Read(conversation_id=conversation, user_id="user-b", up_to_seq=v).payload(), {}, "", f"{v:064x}",
        )
        for v in versions
    ]  # fmt: skip


def ids(deliveries: list[Delivery]) -> list[uuid.UUID]:
    return [d.event.event_id for d in deliveries if d.event is not None]


async def test_a_fetch_on_a_quiet_partition_returns_as_soon_as_events_arrive(broker: ConsumingBroker) -> None:  # noqa: F811
    stream = f"conversation-{uuid.uuid4()}"
    partition = partition_of(stream, broker.partitions)
    spec = ConsumerSpec("delivery", None, partition, batch_size=256)
    await broker.declare_consumers([spec])  # as a worker does before it consumes
    consumer = await broker.open_consumer(spec)
    try:
        first = events(stream, range(1, 2))
        await broker.publish_events(first)
        got = await consumer.fetch(256, WINDOW)
        assert ids(got) == [first[0].event_id]
        await consumer.ack_all(got)
        for _ in range(QUIET_FETCHES):  # each ends empty at its window: the race that left a stale end
            assert await consumer.fetch(256, 0.05) == []

        lone = events(stream, range(2, 3))
        await broker.publish_events(lone)
        started = time.monotonic()
        got = await consumer.fetch(256, WINDOW)
        waited = time.monotonic() - started
        assert ids(got) == [lone[0].event_id]
        assert waited < PROMPT, f"a lone event waited {waited:.1f} s of a {WINDOW:.0f} s window"
        await consumer.ack_all(got)

        several = events(stream, range(3, 8))  # pending together: one fetch takes them all, in order
        await broker.publish_events(several)
        got = []
        started = time.monotonic()
        while len(got) < len(several) and time.monotonic() - started < PROMPT:
            got += await consumer.fetch(256, WINDOW)
        assert ids(got) == [e.event_id for e in several]
        assert time.monotonic() - started < PROMPT
        await consumer.ack_all(got)
    finally:
        await consumer.close()
