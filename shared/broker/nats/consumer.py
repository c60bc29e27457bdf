"""The consumer side on JetStream: one durable pull consumer per (worker kind, partition).

Lost deliveries: JetStream numbers every delivery of a consumer (the consumer sequence, redeliveries
included). Messages the server delivered into a connection that then dropped (or that overflowed the
client's buffer) are held on the server as unacked until `ack_wait` runs out, and meanwhile the next
fetch hands out newer ones. A jump in the consumer sequence is that loss, seen from here: the fetch
raises DeliveriesLost and leaves what it got unsettled (docs/broker.md, "Deliveries lost in transit").
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.broker.errors import one_line
from shared.broker.headers import DeadLetterHeader
from shared.broker.nats.names import NatsNames
from shared.broker.port import ConsumerSpec, DeliveriesLost, Delivery
from shared.events.cloudevents import InvalidCloudEvent, from_cloudevent_bytes
from shared.events.envelope import RecordedEvent


class NatsDelivery:
    __slots__ = ("_consumer", "_msg", "decode_error", "deliveries", "event")

    def __init__(self, consumer: NatsPartitionConsumer, msg: Msg) -> None:
        self._consumer = consumer
        self._msg = msg
        self.deliveries: int = msg.metadata.num_delivered
        self.event: RecordedEvent | None = None
        self.decode_error: str | None = None
        try:
            self.event = from_cloudevent_bytes(msg.data)
        except InvalidCloudEvent as err:
            self.decode_error = str(err)

    async def ack(self) -> None:
        await self._msg.ack()

    async def release(self) -> None:
        await self._msg.nak()

    async def in_progress(self) -> None:
        await self._msg.in_progress()

    async def dead_letter(self, error: str) -> None:
        await self._consumer.store_dead_letter(self._msg, self.event, self.deliveries, error)
        # Terminate only once the dead letter is stored: a crash in between redelivers it instead.
        await self._msg.term()


Subscribe = Callable[[], Awaitable[JetStreamContext.PullSubscription]]


class NatsPartitionConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        subscribe: Subscribe,
        sub: JetStreamContext.PullSubscription,
        names: NatsNames,
        spec: ConsumerSpec,
        server_filters_types: bool,
    ) -> None:
        self._js = js
        self._subscribe = subscribe
        self._sub = sub
        self._names = names
        self._spec = spec
        self._server_filters_types = server_filters_types
        self._lag: int | None = None
        self._last_delivery: int | None = None  # consumer sequence of the last message received

    async def fetch(self, max_messages: int, wait: float) -> list[Delivery]:
        try:
            msgs = await self._sub.fetch(max_messages, timeout=wait)
        except TimeoutError:  # nats.errors.TimeoutError derives from it
            self._lag = 0 if self._lag is None else self._lag
            return []
        if missing := self._missing_before(msgs):
            await self._start_afresh()
            # Pull requests of the old inbox may still deliver for up to `wait`; all of it expires
            # within ack_wait after that, and the server redelivers expired messages in stream order.
            raise DeliveriesLost(missing, self._spec.ack_wait + wait)
        out: list[Delivery] = []
        for msg in msgs:
            self._lag = msg.metadata.num_pending
            if not self._wanted(msg.subject):
                # A type this worker does not consume, on a server without multi-subject filters.
                await msg.ack()
                continue
            out.append(NatsDelivery(self, msg))
        return out

    def _missing_before(self, msgs: Sequence[Msg]) -> int:
        """Deliveries numbered by the server between the last one received here and these, or
        between these: never arrived. A sequence that goes back (a restarted server whose consumer
        state is older than what it sent) only starts the count again."""
        missing = 0
        last = self._last_delivery
        for msg in msgs:
            seq = msg.metadata.sequence.consumer
            if last is not None and seq > last + 1:
                missing += seq - last - 1
            last = seq
        self._last_delivery = last
        return missing

    async def _start_afresh(self) -> None:
        """A new inbox: what is still buffered here, or arrives late for the old one, is dropped
        unsettled and comes back from the server in order with the lost messages."""
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
        self._sub = await self._subscribe()
        self._last_delivery = None

    async def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        # Explicit-ack consumers take one ack per message (AckPolicy.ALL cannot be set on an
        # existing durable); each ack is a buffered publish without a reply to wait for.
        for d in deliveries:
            await d.ack()

    def _wanted(self, subject: str) -> bool:
        types = self._spec.types
        return self._server_filters_types or types is None or self._names.type_of(subject) in types

    async def lag(self) -> int | None:
        return self._lag

    async def unsettled(self) -> int:
        # Counted by the server for the durable consumer, so it includes what a killed owner held.
        info = await self._sub.consumer_info()
        return int(info.num_ack_pending or 0)

    async def close(self) -> None:
        # Unsubscribe the client side only: the durable consumer keeps its position on the server.
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()

    async def store_dead_letter(self, msg: Msg, event: RecordedEvent | None, deliveries: int, error: str) -> None:
        type_ = event.type if event is not None else self._names.type_of(msg.subject) or "Unknown"
        event_id = str(event.event_id) if event is not None else f"seq-{msg.metadata.sequence.stream}"
        headers: Mapping[str, Any] = {
            "Nats-Msg-Id": f"{self._spec.kind}:{event_id}",
            DeadLetterHeader.ERROR.value: one_line(error),
            DeadLetterHeader.KIND.value: self._spec.kind,
            DeadLetterHeader.EVENT_ID.value: event_id,
            DeadLetterHeader.TYPE.value: type_,
            DeadLetterHeader.PARTITION.value: str(self._spec.partition),
            DeadLetterHeader.DELIVERIES.value: str(deliveries),
            DeadLetterHeader.ORIGIN.value: msg.subject,
        }
        subject = self._names.dead_subject(self._spec.kind, type_)
        await self._js.publish(subject, msg.data, headers=dict(headers), stream=self._names.dead_stream)
