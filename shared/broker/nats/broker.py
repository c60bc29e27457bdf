"""NATS JetStream adapter: the default broker (ARCHITECTURE.md "The broker").

Events go to the JetStream stream `LEDGERLINE_EVENTS` on `ledgerline.events.<Type>.<p>` as
CloudEvents JSON with `Nats-Msg-Id` = event id; ephemeral traffic uses core NATS subjects as given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext, api

from shared.broker.errors import BrokerUnavailable, PublishFailed, TopologyError
from shared.broker.headers import DeadLetterHeader
from shared.broker.nats.consumer import NatsPartitionConsumer
from shared.broker.nats.names import NatsNames
from shared.broker.nats.topology import (
    consumer_config,
    ensure_consumer,
    ensure_streams,
    supports_filter_subjects,
)
from shared.broker.port import ConsumerSpec, DeadLetter, EphemeralHandler, PartitionConsumer, Subscription
from shared.events.cloudevents import CONTENT_TYPE, to_cloudevent_bytes
from shared.events.envelope import RecordedEvent
from shared.events.partition import DEFAULT_PARTITIONS, partition_of

# In-flight publish window: BASELINES.md measured ~69k msgs/s at 256 in flight; more buys little
# and holds more unconfirmed data in memory.
PUBLISH_WINDOW = 256
# How long a publish waits for the server's ack (or for room in the window) before it fails.
PUBLISH_TIMEOUT = 10.0

_Pending = tuple[RecordedEvent, str, "asyncio.Future[api.PubAck]"]


class _NatsSubscription:
    def __init__(self, sub: NatsSubscription) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        await self._sub.unsubscribe()


class NatsBroker:
    def __init__(
        self,
        nc: NATS,
        names: NatsNames,
        partitions: int = DEFAULT_PARTITIONS,
        source: str = "ledgerline/gateway",
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW)
        self.names = names
        self._partitions = partitions
        self._source = source
        self._multi_filter = supports_filter_subjects(nc)
        # Concurrent publish_events calls (the relay's pipeline) send one after the other, each
        # call's events in order, so the stream stores them in call order; confirms overlap.
        self._send_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        namespace: str | None = None,
        names: NatsNames | None = None,
        partitions: int = DEFAULT_PARTITIONS,
        source: str = "ledgerline/gateway",
        max_age: float | None = None,
    ) -> NatsBroker:
        """Connect and create the streams when missing. `max_age` (seconds) bounds the events stream;
        None keeps events until removed (the event store can always republish them)."""
        try:
            nc = await nats.connect(url, name="ledgerline", connect_timeout=5, max_reconnect_attempts=-1)
        except (OSError, nats.errors.Error) as err:
            raise BrokerUnavailable(url, str(err) or type(err).__name__) from err
        broker = cls(nc, names or NatsNames.for_namespace(namespace), partitions, source)
        await ensure_streams(broker._js, broker.names, max_age)
        return broker

    @property
    def partitions(self) -> int:
        return self._partitions

    async def publish_events(self, events: Sequence[RecordedEvent]) -> None:
        """Publish all with up to PUBLISH_WINDOW acks in flight, then wait for every ack.

        One connection sends them in order, so the stream stores them in order. Concurrent calls
        send one after the other (FIFO) and wait for their acks side by side."""
        async with self._send_lock:
            pending = await self._send(events)
        await self._confirm(pending, len(events))

    async def _send(self, events: Sequence[RecordedEvent]) -> list[_Pending]:
        pending: list[_Pending] = []
        # One timer for the whole send loop (a full window waits for acks); assumes >= 1,000 events/s.
        budget = PUBLISH_TIMEOUT + len(events) / 1000
        try:
            async with asyncio.timeout(budget):
                for e in events:
                    p = partition_of(e.stream_id, self._partitions)
                    subject = self.names.event_subject(e.type, p)
                    body = to_cloudevent_bytes(e, self._source, self._partitions, partition=p)
                    headers = {"Nats-Msg-Id": str(e.event_id), "Content-Type": CONTENT_TYPE}
                    # No wait_stall: nats-py would wrap every window wait in asyncio.wait_for (a task
                    # per event, measured at a third of the rate); the timer above bounds the loop.
                    future = await self._js.publish_async(subject, body, headers=headers)
                    pending.append((e, subject, future))
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as err:
            for _, _, future in pending:
                future.cancel()
            e = events[len(pending)]
            raise PublishFailed(str(e.event_id), self.names.stream, repr(err), 0, len(events)) from err
        return pending

    async def _confirm(self, pending: list[_Pending], total: int) -> None:
        futures = [future for _, _, future in pending]
        _, not_done = await asyncio.wait(futures, timeout=PUBLISH_TIMEOUT)
        for future in not_done:
            future.cancel()
        for confirmed, (e, subject, future) in enumerate(pending):
            if future.cancelled():
                raise PublishFailed(str(e.event_id), subject, "no ack in time", confirmed, total)
            err = future.exception()
            if err is not None:
                raise PublishFailed(str(e.event_id), subject, repr(err), confirmed, total) from err
            if future.result().stream != self.names.stream:
                raise PublishFailed(str(e.event_id), subject, "stored by another stream", confirmed, total)

    async def publish_ephemeral(self, subject: str, data: bytes) -> None:
        await self._nc.publish(subject, data)

    async def subscribe_ephemeral(self, subject: str, handler: EphemeralHandler) -> Subscription:
        async def deliver(msg: Msg) -> None:
            await handler(msg.subject, msg.data)

        return _NatsSubscription(await self._nc.subscribe(subject, cb=deliver))

    async def declare_consumers(self, specs: Sequence[ConsumerSpec]) -> None:
        for spec in specs:
            await ensure_consumer(self._nc, self.names.stream, consumer_config(self.names, spec, self._multi_filter))

    async def open_consumer(self, spec: ConsumerSpec) -> PartitionConsumer:
        config = consumer_config(self.names, spec, self._multi_filter)
        await ensure_consumer(self._nc, self.names.stream, config)
        sub = await self._js.pull_subscribe_bind(
            durable=config.durable_name, stream=self.names.stream, pending_msgs_limit=spec.batch_size * 4
        )
        server_filters = self._multi_filter and spec.types is not None
        return NatsPartitionConsumer(self._js, sub, self.names, spec, server_filters)

    async def dead_letters(self, kind: str, limit: int = 100) -> list[DeadLetter]:
        sub = await self._js.pull_subscribe(
            f"{self.names.dead_prefix}.{kind}.>",
            stream=self.names.dead_stream,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, inactive_threshold=5.0),
        )
        try:
            msgs = await sub.fetch(limit, timeout=1.0)
        except nats.errors.TimeoutError:
            msgs = []
        finally:
            await sub.unsubscribe()
        return [_dead_letter(kind, m) for m in msgs]

    async def healthy(self) -> bool:
        if not self._nc.is_connected:
            return False
        try:
            await self._js.stream_info(self.names.stream)
        except (nats.errors.Error, nats.js.errors.Error):
            return False
        return True

    async def delete_topology(self, kinds: Sequence[str] = ()) -> None:
        """Remove both streams, and so every consumer (`kinds` is for the same shape as RabbitMQ's)."""
        for stream in (self.names.stream, self.names.dead_stream):
            try:
                await self._js.delete_stream(stream)
            except nats.js.errors.NotFoundError:
                pass
            except nats.js.errors.Error as err:
                raise TopologyError(stream, str(err)) from err

    async def close(self) -> None:
        if not self._nc.is_closed:
            await self._nc.drain()


def _dead_letter(kind: str, msg: Msg) -> DeadLetter:
    headers = msg.headers or {}
    return DeadLetter(
        kind=kind,
        event_id=headers.get(DeadLetterHeader.EVENT_ID, ""),
        type=headers.get(DeadLetterHeader.TYPE, ""),
        error=headers.get(DeadLetterHeader.ERROR, ""),
        deliveries=int(headers.get(DeadLetterHeader.DELIVERIES, "0")),
        body=msg.data,
    )
