"""RabbitMQ's event flow against the machine's real RabbitMQ.

Publishing (frames written in chunks, confirms tracked per delivery tag): every event arrives once,
in order, with its properties; a lost connection or a missing exchange is a PublishFailed naming an
event, never a hang or a cancelled caller. Consuming: a worker whose connection is cut mid-flow
consumes again once it is back, and every event is applied once, in stream order.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from conftest import unique_suffix
from helpers.tcp_proxy import TcpProxy
from sqlalchemy.ext.asyncio import AsyncEngine
from test_broker_contract import (  # noqa: F401  (engine: the fixture)
    KINDS,
    Recorder,
    assert_in_stream_order,
    engine,
    eventually,
    make_events,
    worker,
)

from shared.broker.errors import PublishFailed
from shared.broker.rabbit import RabbitBroker
from shared.broker.rabbit.broker import PUBLISH_WINDOW, SEND_CHUNK
from shared.broker.rabbit.topology import declare_exchanges
from shared.events.cloudevents import CONTENT_TYPE, from_cloudevent_bytes
from shared.events.envelope import RecordedEvent


async def until_published(broker: RabbitBroker, events: list[RecordedEvent], when: str, within: float = 20) -> None:
    """Publish until it succeeds (the robust connection reopens the channel in the background)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await asyncio.wait_for(broker.publish_events(events), 10)
            return
        except (PublishFailed, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"publishing did not recover {when}") from None
            await asyncio.sleep(0.1)


async def test_a_large_batch_arrives_once_in_order_with_its_properties(rabbit_url: str) -> None:
    broker = await RabbitBroker.connect(rabbit_url, namespace=f"t{unique_suffix()}")
    events = make_events(streams=7, per_stream=300)  # 2,100: many chunks, several windows
    assert len(events) > 4 * PUBLISH_WINDOW > 4 * SEND_CHUNK
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(broker.names.exchange, routing_key="#")
        # Two concurrent calls, as the relay's pipeline makes them: the first call's events leave first.
        await asyncio.gather(broker.publish_events(events[:1000]), broker.publish_events(events[1000:]))
        got = []
        async with queue.iterator() as messages:
            async for message in messages:
                got.append(message)
                await message.ack()
                if len(got) == len(events):
                    break
        assert [m.message_id for m in got] == [str(e.event_id) for e in events]
        first = got[0]
        assert (first.content_type, first.type, first.delivery_mode) == (
            CONTENT_TYPE,
            events[0].type,
            aio_pika.DeliveryMode.PERSISTENT,
        )
        assert [from_cloudevent_bytes(m.body).payload for m in got[:50]] == [e.payload for e in events[:50]]
        await asyncio.sleep(0.5)
        assert await queue.get(fail=False) is None  # nothing doubled
    finally:
        await connection.close()
        await broker.delete_topology()
        await broker.close()


async def test_a_missing_exchange_fails_the_publish_and_the_next_one_works(rabbit_url: str) -> None:
    broker = await RabbitBroker.connect(rabbit_url, namespace=f"t{unique_suffix()}")
    events = make_events(streams=2, per_stream=100)
    try:
        await broker.delete_topology()  # the exchange is gone: RabbitMQ closes the publishing channel
        with pytest.raises(PublishFailed) as failed:
            await asyncio.wait_for(broker.publish_events(events), 30)
        assert failed.value.total == len(events) and failed.value.event_id in {str(e.event_id) for e in events}
        async with await aio_pika.connect(rabbit_url) as connection:
            await declare_exchanges(await connection.channel(), broker.names)
        await until_published(broker, events, "once the exchange was back")  # the channel reopens by itself
    finally:
        await broker.delete_topology()
        await broker.close()


async def test_a_connection_cut_mid_publish_is_a_publish_failure_then_it_recovers(rabbit_url: str) -> None:
    events = make_events(streams=5, per_stream=400)
    async with TcpProxy("127.0.0.1", 5672) as proxy:
        url = rabbit_url.replace("127.0.0.1:5672", proxy.address) + "?reconnect_interval=0.2"
        broker = await RabbitBroker.connect(url, namespace=f"t{unique_suffix()}")
        try:
            publishing = asyncio.create_task(broker.publish_events(events))
            await asyncio.sleep(0.02)
            await proxy.cut()
            with pytest.raises(PublishFailed):
                await asyncio.wait_for(publishing, 30)
            await proxy.restore()
            await until_published(broker, events[:300], "after the connection came back")
        finally:
            await broker.delete_topology()
            await broker.close()


async def test_a_worker_cut_off_mid_flow_consumes_again_and_applies_every_event_once(
    rabbit_url: str,
    engine: AsyncEngine,  # noqa: F811  (the fixture imported above)
) -> None:
    namespace = f"t{unique_suffix()}"
    publisher = await RabbitBroker.connect(rabbit_url, namespace=namespace)
    recorder = Recorder()
    async with TcpProxy("127.0.0.1", 5672) as proxy:
        url = rabbit_url.replace("127.0.0.1:5672", proxy.address) + "?reconnect_interval=0.2"
        consuming = await RabbitBroker.connect(url, namespace=namespace)
        try:
            async with worker("projections", None, recorder, "proj-a", consuming, engine):
                events = make_events(streams=20, per_stream=100)
                await publisher.publish_events(events[:1000])
                await eventually(lambda: recorder.count() > 100, "the first events to be applied")
                await proxy.cut()
                await publisher.publish_events(events[1000:])  # queued while the worker is away
                await asyncio.sleep(1.0)
                await proxy.restore()
                await eventually(lambda: recorder.count() == len(events), "every event after the cut", within=60)
            assert_in_stream_order(recorder, events)
        finally:
            await consuming.close()
            await publisher.delete_topology(KINDS)
            await publisher.close()
