"""RabbitMQ adapter (aio-pika): topic exchange `ledgerline.events`, routing key `<Type>.<p>`, one quorum
queue per (worker kind, partition), publisher confirms, a dead-letter exchange; ephemeral traffic on
a non-durable topic exchange, every subscription of a broker on one queue (ephemeral.py). Bodies are
structured CloudEvents JSON (`application/cloudevents+json`).

RabbitMQ keeps no history: an event reaches only the queues bound when it is published. Workers
declare the queues of every partition of their kind when they start (`declare_consumers`), and
`ledgerline migrate` can do it ahead of them; anything older is replayed from the event store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aio_pika
import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from shared.broker.errors import BrokerUnavailable, PublishFailed
from shared.broker.headers import DeadLetterHeader
from shared.broker.port import ConsumerSpec, DeadLetter, EphemeralHandler, PartitionConsumer, Subscription
from shared.broker.rabbit.consumer import RabbitPartitionConsumer
from shared.broker.rabbit.ephemeral import EphemeralMultiplexer
from shared.broker.rabbit.names import RabbitNames
from shared.broker.rabbit.topology import declare_dead_queue, declare_exchanges, declare_partition_queue
from shared.events.cloudevents import CONTENT_TYPE, to_cloudevent_bytes
from shared.events.envelope import RecordedEvent
from shared.events.partition import DEFAULT_PARTITIONS, partition_of

# Unconfirmed publishes in flight: BASELINES.md measured the quorum-queue rate flattening at 256.
PUBLISH_WINDOW = 256
PUBLISH_TIMEOUT = 10.0
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
# Two batches of prefetch: the next batch arrives while the handler works on the current one.
PREFETCH_BATCHES = 2


class RabbitBroker:
    def __init__(self, connection: AbstractRobustConnection, names: RabbitNames, partitions: int, source: str) -> None:
        self._connection = connection
        self.names = names
        self._partitions = partitions
        self._source = source
        self._publish_channel: AbstractChannel | None = None
        self._ephemeral_channel: AbstractChannel | None = None
        # Every ephemeral subscription shares one channel and one queue (see ephemeral.py): a channel
        # each would stop a gateway at channel_max (2,047) connected users.
        self.ephemeral = EphemeralMultiplexer(connection, names.ephemeral_exchange)
        # One window for every call, and concurrent calls (the relay's pipeline) send one after the
        # other (FIFO), so the frames leave in call order and confirms of two calls overlap.
        self._window = asyncio.Semaphore(PUBLISH_WINDOW)
        self._send_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        namespace: str | None = None,
        names: RabbitNames | None = None,
        partitions: int = DEFAULT_PARTITIONS,
        source: str = "ledgerline/gateway",
    ) -> RabbitBroker:
        try:
            connection = await aio_pika.connect_robust(url, client_properties={"connection_name": "ledgerline"})
        except (OSError, aiormq.exceptions.AMQPError) as err:
            raise BrokerUnavailable(url, str(err) or type(err).__name__) from err
        broker = cls(connection, names or RabbitNames.for_namespace(namespace), partitions, source)
        broker._publish_channel = await connection.channel(publisher_confirms=True)
        broker._ephemeral_channel = await connection.channel(publisher_confirms=False)
        await declare_exchanges(broker._publish_channel, broker.names)
        return broker

    @property
    def partitions(self) -> int:
        return self._partitions

    def _channel(self) -> AbstractChannel:
        if self._publish_channel is None:
            raise BrokerUnavailable("amqp", "not connected (use RabbitBroker.connect)")
        return self._publish_channel

    async def publish_events(self, events: Sequence[RecordedEvent]) -> None:
        """Publish in order with up to PUBLISH_WINDOW unconfirmed, then wait for every confirm.

        Tasks start in order and aiormq's channel lock is FIFO, so the frames leave in event order;
        concurrent calls send one after the other and wait for their confirms side by side."""
        if not events:
            return
        channel = self._channel()
        if channel.is_closed:
            raise PublishFailed(str(events[0].event_id), self.names.exchange, "channel closed", 0, len(events))
        # aiormq directly, as aio_pika's Exchange.publish does, without building an aio_pika.Message
        # per event (measured at ~15 % of the relay's CPU on RabbitMQ).
        underlay = await channel.get_underlay_channel()
        exchange = self.names.exchange
        window = self._window
        tasks: list[asyncio.Task[object]] = []
        try:
            await self._send(events, underlay, exchange, window, tasks)
        except BaseException:
            # Cancelled (the relay abandons a page) or failed mid-send: the publishes already started
            # would otherwise finish unobserved ("Task exception was never retrieved" on their timeout).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for confirmed, (e, result) in enumerate(zip(events, results, strict=True)):
            if isinstance(result, BaseException):
                raise PublishFailed(str(e.event_id), self.names.exchange, repr(result), confirmed, len(events))

    async def _send(
        self,
        events: Sequence[RecordedEvent],
        underlay: aiormq.abc.AbstractChannel,
        exchange: str,
        window: asyncio.Semaphore,
        tasks: list[asyncio.Task[object]],
    ) -> None:
        async with self._send_lock:
            for e in events:
                await window.acquire()
                p = partition_of(e.stream_id, self._partitions)
                properties = aiormq.spec.Basic.Properties(
                    content_type=CONTENT_TYPE,
                    message_id=str(e.event_id),
                    message_type=e.type,
                    delivery_mode=PERSISTENT,
                )
                # Not mandatory: an event no queue is bound to yet is dropped, as RabbitMQ keeps no history.
                publish = underlay.basic_publish(
                    to_cloudevent_bytes(e, self._source, self._partitions, partition=p),
                    exchange=exchange,
                    routing_key=self.names.routing_key(e.type, p),
                    properties=properties,
                    mandatory=False,
                    timeout=PUBLISH_TIMEOUT,
                )
                task: asyncio.Task[object] = asyncio.create_task(publish)
                task.add_done_callback(lambda _: window.release())
                tasks.append(task)

    async def publish_ephemeral(self, subject: str, data: bytes) -> None:
        assert self._ephemeral_channel is not None
        exchange = await self._ephemeral_channel.get_exchange(self.names.ephemeral_exchange, ensure=False)
        await exchange.publish(aio_pika.Message(data), subject, mandatory=False)

    async def subscribe_ephemeral(self, subject: str, handler: EphemeralHandler) -> Subscription:
        """A binding of `subject` (as an AMQP pattern) on the broker's one ephemeral queue, and the
        handler in-process; the first call declares the channel and the queue."""
        return await self.ephemeral.subscribe(subject, handler)

    async def declare_consumers(self, specs: Sequence[ConsumerSpec]) -> None:
        for spec in specs:
            await declare_partition_queue(self._channel(), self.names, spec)

    async def open_consumer(self, spec: ConsumerSpec) -> PartitionConsumer:
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=spec.batch_size * PREFETCH_BATCHES)
        queue = await declare_partition_queue(channel, self.names, spec)
        consumer = RabbitPartitionConsumer(channel, queue, self.names, spec)
        await consumer.start()
        return consumer

    async def dead_letters(self, kind: str, limit: int = 100) -> list[DeadLetter]:
        # Read without removing: get unacked on a throwaway channel, whose close requeues them.
        channel = await self._connection.channel()
        try:
            queue = await declare_dead_queue(channel, self.names, kind)
            letters: list[DeadLetter] = []
            while len(letters) < limit:
                msg = await queue.get(fail=False, timeout=5)
                if msg is None:
                    break
                letters.append(_dead_letter(kind, msg))
            return letters
        finally:
            await channel.close()

    async def healthy(self) -> bool:
        return not self._connection.is_closed and self._publish_channel is not None

    async def delete_topology(self, kinds: Sequence[str] = ()) -> None:
        """Remove the exchanges and the queues of `kinds`: for tests and uninstall."""
        channel = await self._connection.channel()
        try:
            for kind in kinds:
                for p in range(self._partitions):
                    await channel.queue_delete(self.names.queue(kind, p))
                await channel.queue_delete(self.names.dead_queue(kind))
            for name in (self.names.exchange, self.names.dead_exchange, self.names.ephemeral_exchange):
                await channel.exchange_delete(name)
        finally:
            await channel.close()

    async def close(self) -> None:
        await self.ephemeral.close()
        await self._connection.close()


def _dead_letter(kind: str, msg: AbstractIncomingMessage) -> DeadLetter:
    headers = msg.headers or {}
    return DeadLetter(
        kind=kind,
        event_id=str(headers.get(DeadLetterHeader.EVENT_ID.value, msg.message_id or "")),
        type=str(headers.get(DeadLetterHeader.TYPE.value, "")),
        error=str(headers.get(DeadLetterHeader.ERROR.value, "delivery limit reached")),
        deliveries=int(str(headers.get(DeadLetterHeader.DELIVERIES.value, 0))),
        body=msg.body,
    )
