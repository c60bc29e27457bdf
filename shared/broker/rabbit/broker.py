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
from collections import deque
from collections.abc import Sequence

import aio_pika
import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.abc import ChannelFrame

from shared.broker.errors import BrokerUnavailable, PublishFailed
from shared.broker.headers import DeadLetterHeader
from shared.broker.port import ConsumerSpec, DeadLetter, EphemeralHandler, PartitionConsumer, Subscription
from shared.broker.rabbit import frames
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
# Events handed to aiormq's writer in one write (a relay page is 256..1,000).
SEND_CHUNK = 64
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
_CONTENT_TYPE = frames.shortstr(CONTENT_TYPE)
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
        self._unconfirmed: deque[asyncio.Future[object]] = deque()
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

        Events go out SEND_CHUNK at a time, each chunk's frames encoded by hand (frames.py) and
        handed to aiormq's writer as one write, with one confirmation future per event registered
        under its delivery tag, as aiormq's basic_publish does for one. Concurrent calls (the relay's
        pipeline) send one after the other, so the frames leave in call order, and wait for their
        confirms side by side."""
        if not events:
            return
        channel = self._channel()
        if channel.is_closed:
            raise PublishFailed(str(events[0].event_id), self.names.exchange, "channel closed", 0, len(events))
        underlay = await channel.get_underlay_channel()
        confirmations: list[asyncio.Future[object]] = []
        try:
            async with self._send_lock:
                for start in range(0, len(events), SEND_CHUNK):
                    chunk = events[start : start + SEND_CHUNK]
                    if not await self._window_for(len(chunk)):
                        reason = "no confirm in time for the window"
                        raise PublishFailed(str(chunk[0].event_id), self.names.exchange, reason, 0, len(events))
                    confirmations += await self._write(underlay, chunk)
        except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as e:  # closed under us
            index = min(len(confirmations), len(events) - 1)
            raise PublishFailed(str(events[index].event_id), self.names.exchange, repr(e), 0, len(events)) from e
        _, late = await asyncio.wait(confirmations, timeout=PUBLISH_TIMEOUT)
        for confirmed, (event, confirmation) in enumerate(zip(events, confirmations, strict=True)):
            failure = "no confirm in time" if confirmation in late else _failure(confirmation)
            if failure is not None:
                raise PublishFailed(str(event.event_id), self.names.exchange, failure, confirmed, len(events))

    async def _window_for(self, n: int) -> bool:
        """Wait until `n` more publishes fit in the window of unconfirmed ones (every call's);
        False if the oldest gets no answer within PUBLISH_TIMEOUT."""
        unconfirmed = self._unconfirmed
        while True:
            while unconfirmed and unconfirmed[0].done():
                unconfirmed.popleft()
            if len(unconfirmed) + n <= PUBLISH_WINDOW:
                return True
            done, _ = await asyncio.wait((unconfirmed[0],), timeout=PUBLISH_TIMEOUT)
            if not done:
                return False

    async def _write(
        self, underlay: aiormq.abc.AbstractChannel, chunk: Sequence[RecordedEvent]
    ) -> list[asyncio.Future[object]]:
        """Hand one chunk's frames to the connection's writer; a confirmation future per event."""
        assert isinstance(underlay, aiormq.Channel)
        number, exchange, max_body = underlay.number, self.names.exchange, underlay.max_content_size
        parts = []
        for e in chunk:
            p = partition_of(e.stream_id, self._partitions)
            # Not mandatory: an event no queue is bound to yet is dropped, as RabbitMQ keeps no history.
            parts.append(frames.publish_method(number, exchange, self.names.routing_key(e.type, p)))
            body = to_cloudevent_bytes(e, self._source, self._partitions, partition=p)
            parts.append(frames.content(number, body, _CONTENT_TYPE, str(e.event_id), e.type, PERSISTENT, max_body))
        drained = underlay.create_future()
        frame = ChannelFrame(payload=b"".join(parts), should_close=False, drain_future=drained)
        async with underlay.lock:  # aiormq's: delivery tags count publishes in the order their frames leave
            await underlay.write_queue.put(frame)
            # Registered right after the frames are queued, with no await in between: the broker's
            # confirms are read by this same loop, so none can arrive before its future exists, and a
            # cancelled put queued nothing and registered nothing.
            futures = []
            for _ in chunk:
                underlay.delivery_tag += 1
                future = underlay.create_future()
                underlay.confirmations[underlay.delivery_tag] = future
                futures.append(future)
            self._unconfirmed.extend(futures)
        # The writer has it: back-pressure when the socket is slower than the relay. Awaited through
        # wait(): a channel closing cancels the future, which must not read as this task's cancellation.
        await asyncio.wait((drained,))
        if (failure := _failure(drained)) is not None:
            raise aiormq.exceptions.ChannelInvalidStateError(f"channel closed while writing ({failure})")
        return futures

    async def publish_ephemeral(self, subject: str, data: bytes) -> None:
        """Fire and forget on the channel without confirms: the frames written by hand (frames.py)
        and queued for aiormq's writer, without an aio_pika.Message, the channel lock or a wait for
        the socket per frame (~0.2 ms of CPU each before; a delivery worker publishes one per
        recipient of every message). The bounded write queue still pushes back when it is full."""
        assert self._ephemeral_channel is not None
        underlay = await self._ephemeral_channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        if underlay.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{underlay!r} closed")
        number = underlay.number
        payload = frames.publish_method_uncached(number, self.names.ephemeral_exchange, subject) + frames.bare_content(
            number, data, underlay.max_content_size
        )
        await underlay.write_queue.put(ChannelFrame(payload=payload, should_close=False))

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


def _failure(future: asyncio.Future[object]) -> str | None:
    """Why a done confirmation (or drain) future failed; None when it succeeded."""
    if future.cancelled():
        return "cancelled (channel closed)"
    error = future.exception()
    return None if error is None else repr(error)
