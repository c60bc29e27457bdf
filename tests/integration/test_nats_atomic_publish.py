"""Publishing events in atomic batches (NATS 2.12+, the embedded server), and the fallback on older servers.

What a subscriber of the stream checks: every event once, in position order, whatever the batches
were; a page republished after a relay crash (part of it already stored) adds only what is new, in
order; a batch sent while someone else wrote to the stream is refused and nothing of it is stored;
and on a server without atomic batches (the machine's NATS 2.9) the same calls still work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from conftest import unique_suffix
from nats.js import api

from services.embedded.nats_server import EmbeddedNats
from shared.broker.errors import PublishFailed
from shared.broker.nats import broker as nats_broker
from shared.broker.nats.broker import NatsBroker
from shared.events.cloudevents import from_cloudevent_bytes
from shared.events.conversation import Read
from shared.events.envelope import RecordedEvent


@pytest.fixture
async def embedded_url(tmp_path: Path) -> AsyncIterator[str]:
    async with EmbeddedNats(tmp_path / "nats") as server:
        yield server.url


@pytest.fixture
async def broker(embedded_url: str) -> AsyncIterator[NatsBroker]:
    b = await NatsBroker.connect(embedded_url, namespace=f"t{unique_suffix()}")
    try:
        yield b
    finally:
        await b.delete_topology([])
        await b.close()


def events(count: int, first_position: int = 1) -> list[RecordedEvent]:
    now = datetime.now(UTC)
    out = []
    for position in range(first_position, first_position + count):
        conversation = str(uuid.uuid4())
        payload = Read(conversation_id=conversation, user_id="user-b", up_to_seq=1).payload()
        out.append(
            RecordedEvent(
                position, f"conversation-{conversation}", 1, uuid.uuid4(), "Read", 1, now, now, "user-a",
                None, None, payload, {}, "", f"{position:064x}",
            )
        )  # fmt: skip
    return out


async def stored_positions(url: str, b: NatsBroker) -> list[int]:
    """The events stream as a subscriber reads it from the start: positions in stream order (all the
    messages the stream holds, by its own count)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        held = (await js.stream_info(b.names.stream)).state.messages
        sub = await js.pull_subscribe(
            f"{b.names.subject_prefix}.>",
            stream=b.names.stream,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, inactive_threshold=5.0),
        )
        out: list[int] = []
        deadline = time.monotonic() + 20
        while len(out) < held and time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(1000, timeout=1.0)
            except TimeoutError:  # nats-py raises its own and asyncio's (a late end of an earlier pull)
                continue
            out += [from_cloudevent_bytes(m.data).position for m in msgs]
        return out
    finally:
        await nc.close()


async def test_the_embedded_server_takes_atomic_batches_and_the_stream_holds_each_event_once_in_order(
    broker: NatsBroker, embedded_url: str
) -> None:
    assert broker.atomic
    batch = events(nats_broker.ATOMIC_BATCH * 2 + 17)  # three batches, the last one short
    await broker.publish_events(batch[:300])
    await broker.publish_events(batch[300:])
    assert await stored_positions(embedded_url, broker) == list(range(1, len(batch) + 1))


async def test_a_republished_page_adds_only_its_new_events_in_order(broker: NatsBroker, embedded_url: str) -> None:
    batch = events(120)
    await broker.publish_events(batch[:80])
    await broker.publish_events(batch[50:])  # the relay after a crash: 50..79 are stored already
    await broker.publish_events(events(10, first_position=121))  # atomic again afterwards
    assert await stored_positions(embedded_url, broker) == list(range(1, 131))


async def test_a_batch_after_someone_else_wrote_to_the_stream_is_refused_whole(
    broker: NatsBroker, embedded_url: str
) -> None:
    await broker.publish_events(events(5))
    other = await NatsBroker.connect(embedded_url, names=broker.names)  # a second relay, split-brained
    try:
        await other.publish_events(events(3, first_position=6))
    finally:
        await other.close()
    with pytest.raises(PublishFailed, match="wrong last sequence"):
        await broker.publish_events(events(4, first_position=9))
    assert await stored_positions(embedded_url, broker) == list(range(1, 9))
    await broker.publish_events(events(4, first_position=9))  # the relay's retry: unchecked, stored
    assert await stored_positions(embedded_url, broker) == list(range(1, 13))


async def test_a_server_without_atomic_batches_publishes_one_by_one(nats_url: str) -> None:
    b = await NatsBroker.connect(nats_url, namespace=f"t{unique_suffix()}")
    try:
        if b.atomic:
            pytest.skip("the machine's NATS takes atomic batches: nothing to fall back from")
        batch = events(300)
        await b.publish_events(batch[:200])
        await b.publish_events(batch[150:])
        assert await stored_positions(nats_url, b) == list(range(1, 301))
    finally:
        await b.delete_topology([])
        await b.close()
