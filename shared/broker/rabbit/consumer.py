"""The consumer side on RabbitMQ: one quorum queue per (worker kind, partition), on its own channel.

A channel per partition means closing it hands every unacknowledged message back to the queue, at
its front, which is what a released or lost partition needs to stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq.abc import DeliveredMessage

from shared.broker.errors import one_line
from shared.broker.headers import DeadLetterHeader
from shared.broker.port import ConsumerSpec, Delivery
from shared.broker.rabbit.names import RabbitNames
from shared.events.cloudevents import CONTENT_TYPE, InvalidCloudEvent, from_cloudevent_bytes
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger

log = get_logger(__name__)

# Queue depth is read with a passive declare (a round trip), so at most this often per partition.
LAG_REFRESH_SECONDS = 2.0


class RabbitDelivery:
    __slots__ = ("_consumer", "_msg", "decode_error", "deliveries", "event")

    def __init__(self, consumer: RabbitPartitionConsumer, msg: DeliveredMessage) -> None:
        self._consumer = consumer
        self._msg = msg
        # Quorum queues count earlier deliveries in x-delivery-count (absent on the first one).
        earlier = (msg.header.properties.headers or {}).get("x-delivery-count", 0)
        self.deliveries: int = (earlier if isinstance(earlier, int) else 0) + 1
        self.event: RecordedEvent | None = None
        self.decode_error: str | None = None
        try:
            self.event = from_cloudevent_bytes(msg.body)
        except InvalidCloudEvent as err:
            self.decode_error = str(err)

    @property
    def message(self) -> DeliveredMessage:
        return self._msg

    async def ack(self) -> None:
        await self._msg.channel.basic_ack(_tag(self._msg))
        self._consumer.settled(self._msg)

    async def release(self) -> None:
        await self._msg.channel.basic_nack(_tag(self._msg), requeue=True)
        self._consumer.settled(self._msg)

    async def in_progress(self) -> None:
        """RabbitMQ has no per-message ack timer (only the channel-wide consumer_timeout, 30 min)."""

    async def dead_letter(self, error: str) -> None:
        await self._consumer.store_dead_letter(self._msg, self.event, self.deliveries, error)
        # Ack only once the dead letter is confirmed: a crash in between redelivers it instead.
        await self.ack()


class RabbitPartitionConsumer:
    """Deliveries come straight from aiormq's channel (basic.consume), not through aio-pika's queue
    consumer, which built an IncomingMessage and ran a second task per message (~15 % of a worker's
    CPU on RabbitMQ). The robust channel still reopens itself after a lost connection; its reopen
    callback then consumes again on the new channel (aio-pika restores only its own consumers)."""

    def __init__(self, channel: AbstractRobustChannel, queue: AbstractQueue, names: RabbitNames, spec: ConsumerSpec):
        self._channel = channel
        self._queue = queue
        self._names = names
        self._spec = spec
        self._buffer: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self._consuming_on: aiormq.abc.AbstractChannel | None = None
        self._consume_lock = asyncio.Lock()
        self._lag: int | None = None
        self._lag_read_at = 0.0
        # Delivery tags handed out by fetch and not yet acked or released, per channel (a recovered
        # connection numbers its deliveries afresh): what a multiple ack must not cover by mistake.
        self._unsettled: dict[aiormq.abc.AbstractChannel, set[int]] = {}

    async def start(self) -> None:
        await self._consume()
        self._channel.reopen_callbacks.add(self._consume_again)

    async def _consume(self) -> None:
        """basic.consume on the robust channel's current aiormq channel, once per channel."""
        async with self._consume_lock:
            underlay = await self._channel.get_underlay_channel()
            if underlay is self._consuming_on:
                return
            await underlay.basic_consume(self._queue.name, self._received)
            self._consuming_on = underlay

    async def _consume_again(self, *_: object) -> None:
        # Deliveries still buffered from a closed channel went back to the queue with it; their acks
        # would fail, so they are dropped here and come again on the new channel. Those of an open
        # channel are kept: dropped, they would stay unacked (and hold the prefetch) until it closes.
        kept = [m for m in _drain(self._buffer) if not m.channel.is_closed]
        for m in kept:
            self._buffer.put_nowait(m)
        self._unsettled = {c: tags for c, tags in self._unsettled.items() if not c.is_closed}
        try:
            await self._consume()
        except Exception as err:  # aio-pika gathers reopen callbacks with return_exceptions: say it here
            log.warning("rabbit_consume_failed", queue=self._queue.name, error=repr(err))
            raise

    async def _still_consuming(self) -> bool:
        """The safety net behind the reopen callback: consume on a reopened channel the callback
        missed (a reopen that failed half-way and was completed by another path). False while
        the channel is not back yet; never waits for it (a basic.consume cut short by a timeout
        could leave a consumer the broker knows and this side does not)."""
        consuming_on = self._consuming_on
        if consuming_on is not None and not consuming_on.is_closed:
            return True
        if self._channel.is_closed:
            return False
        try:
            await self._consume_again()
        except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, RuntimeError):
            return False
        return self._consuming_on is not None and not self._consuming_on.is_closed

    async def _received(self, msg: DeliveredMessage) -> None:
        self._buffer.put_nowait(msg)

    async def fetch(self, max_messages: int, wait: float) -> list[Delivery]:
        if not await self._still_consuming():
            await asyncio.sleep(wait)  # not back yet: as an empty fetch would
            return []
        try:
            async with asyncio.timeout(wait):  # not wait_for: it can swallow a cancel (Python 3.11)
                first = await self._buffer.get()
        except TimeoutError:
            return []
        msgs = [first]
        while len(msgs) < max_messages and not self._buffer.empty():
            msgs.append(self._buffer.get_nowait())
        for m in msgs:
            self._unsettled.setdefault(m.channel, set()).add(_tag(m))
        return [RabbitDelivery(self, m) for m in msgs]

    def settled(self, msg: DeliveredMessage) -> None:
        tags = self._unsettled.get(msg.channel)
        if tags is not None:
            tags.discard(_tag(msg))
            if not tags:
                del self._unsettled[msg.channel]

    async def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """One `basic.ack` with `multiple` for the last tag when that covers exactly `deliveries`
        (every unsettled tag up to it is one of them, all on one channel); else one ack each. A
        quorum queue settles a multiple ack as one Raft command instead of one per message."""
        msgs = [d.message for d in deliveries if isinstance(d, RabbitDelivery)]
        if len(msgs) > 1 and len(msgs) == len(deliveries) and self._covers_exactly(msgs):
            last = max(msgs, key=_tag)
            await last.channel.basic_ack(_tag(last), multiple=True)
            for m in msgs:
                self.settled(m)
            return
        for d in deliveries:
            await d.ack()

    def _covers_exactly(self, msgs: list[DeliveredMessage]) -> bool:
        channel = msgs[0].channel
        tags = {_tag(m) for m in msgs if m.channel is channel}
        if len(tags) != len(msgs):
            return False
        top = max(tags)
        below = {t for t in self._unsettled.get(channel, ()) if t <= top}
        return below == tags

    async def lag(self) -> int | None:
        now = time.monotonic()
        if now - self._lag_read_at >= LAG_REFRESH_SECONDS:
            self._lag_read_at = now
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                result = await self._channel.declare_queue(self._queue.name, passive=True)
                self._lag = (result.declaration_result.message_count or 0) + self._buffer.qsize()
        return self._lag

    async def unsettled(self) -> int:
        # RabbitMQ returns a closed channel's (or a dead connection's) unacked messages to the queue
        # at once, in their place: a new owner never overtakes them.
        return 0

    async def close(self) -> None:
        self._channel.reopen_callbacks.discard(self._consume_again)  # a closed consumer never consumes again
        # Closing the channel returns every unacknowledged message (buffered ones included) to the queue.
        with contextlib.suppress(aiormq.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError):
            await self._channel.close()

    async def store_dead_letter(
        self, msg: DeliveredMessage, event: RecordedEvent | None, deliveries: int, error: str
    ) -> None:
        type_ = event.type if event is not None else (msg.routing_key or "Unknown.").split(".")[0]
        event_id = str(event.event_id) if event is not None else (msg.header.properties.message_id or "")
        headers: aio_pika.abc.HeadersType = {
            DeadLetterHeader.ERROR.value: one_line(error),
            DeadLetterHeader.KIND.value: self._spec.kind,
            DeadLetterHeader.EVENT_ID.value: event_id,
            DeadLetterHeader.TYPE.value: type_,
            DeadLetterHeader.PARTITION.value: self._spec.partition,
            DeadLetterHeader.DELIVERIES.value: deliveries,
            DeadLetterHeader.ORIGIN.value: self._queue.name,
        }
        message = aio_pika.Message(
            msg.body,
            headers=headers,
            content_type=CONTENT_TYPE,
            message_id=event_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        exchange = await self._channel.get_exchange(self._names.dead_exchange, ensure=False)
        await exchange.publish(message, self._names.dead_routing_key(self._spec.kind, type_), mandatory=False)


def _drain(buffer: asyncio.Queue[DeliveredMessage]) -> list[DeliveredMessage]:
    out = []
    while not buffer.empty():
        out.append(buffer.get_nowait())
    return out


def _tag(msg: DeliveredMessage) -> int:
    tag: int = msg.delivery.delivery_tag  # type: ignore[union-attr,assignment]  # a basic.deliver always has one
    return tag
