"""NATS JetStream adapter: the default broker (ARCHITECTURE.md "The broker").

Events go to the JetStream stream `LEDGERLINE_EVENTS` on `ledgerline.events.<Type>.<p>` as
CloudEvents JSON with `Nats-Msg-Id` = event id; ephemeral traffic uses core NATS subjects as given.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
import orjson
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
# The server stores a message with this header only when the stream's last message has that id.
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
# Atomic batches (NATS 2.12+): the server stores a batch's messages together, or none of them, and
# answers its commit with one ack. With `sync_interval: always` that is one flush per batch instead of
# one per message: ~4,200 -> ~33,000 publishes/s here, ~115 -> ~23 µs of the server's CPU each
# (decision 0024). The server takes at most 1,000 messages per batch.
ATOMIC_BATCH = 256
ATOMIC_EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"  # on a batch's first message
ERR_BATCH_HAS_DUPLICATE = 10201  # "atomic publish batch contains duplicate message id"

_Pending = tuple[RecordedEvent, str, "asyncio.Future[api.PubAck]"]


class _BatchHasDuplicate(Exception):
    """The server refused an atomic batch because the stream already holds one of its events."""


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
        _settle_refused_publishes(self._js)
        self.names = names
        self._partitions = partitions
        self._source = source
        self._multi_filter = supports_filter_subjects(nc)
        # Concurrent publish_events calls (the relay's pipeline) send one after the other, each
        # call's events in order, so the stream stores them in call order; confirms overlap.
        self._send_lock = asyncio.Lock()
        # (position, event id) of the last event sent to the events stream, for the next one's
        # expected-last header (publish_events); None when unknown (start, or after a failure).
        self._last_sent: tuple[int, str] | None = None
        self.atomic = False  # the events stream takes atomic batches (set by connect)
        # The stream sequence of the last batch committed (atomic publishing), for the next batch's
        # expected-last-sequence; None when unknown (start, a failure, a batch sent one by one).
        self._last_seq: int | None = None
        # Atomic batch ids: unique per connection and batch without a random draw per batch
        # (os.urandom releases the GIL, and the relay's loop then waited for it back: decision 0027).
        self._batch_prefix = uuid.uuid4().hex
        self._batches = itertools.count(1)

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
        replicas: int = 1,
    ) -> NatsBroker:
        """Connect and create the streams when missing. `max_age` (seconds) bounds the events stream;
        None keeps events until removed (the event store can always republish them)."""
        try:
            nc = await nats.connect(url, name="ledgerline", connect_timeout=5, max_reconnect_attempts=-1)
        except (OSError, nats.errors.Error) as err:
            raise BrokerUnavailable(url, str(err) or type(err).__name__) from err
        broker = cls(nc, names or NatsNames.for_namespace(namespace), partitions, source)
        try:
            broker.atomic = await ensure_streams(broker._js, broker.names, max_age, replicas)
        except BaseException:
            await nc.close()  # a service that cannot start must not keep reconnecting in the background
            raise
        return broker

    @property
    def partitions(self) -> int:
        return self._partitions

    async def publish_events(self, events: Sequence[RecordedEvent]) -> None:
        """Publish all with up to PUBLISH_WINDOW acks in flight, then wait for every ack.

        One connection sends them in order, and concurrent calls send one after the other (FIFO)
        and wait for their acks side by side. That alone does not keep the stream in position order
        across a server crash: the tail of one call can be lost with the server while the next
        call's messages, still in the client's buffer, are stored after the reconnect, ahead of the
        tail's republication — and workers whose checkpoints passed them would skip the tail for
        good. So each event whose predecessor (position - 1) was the last one sent carries
        `Nats-Expected-Last-Msg-Id`: the server stores it only right after that predecessor, and
        refuses it otherwise (it checks duplicates first, so a republished copy is still answered
        as a duplicate). The caller's retry from its last confirmed position then restores the order.
        """
        try:
            if self.atomic:
                async with self._send_lock:
                    await self._publish_atomic(events)
                return
            async with self._send_lock:
                pending = await self._send(events)
            await self._confirm(pending, len(events))
        except BaseException:
            self._last_sent = None  # what the server holds is unknown: the retry's first event goes unchecked
            self._last_seq = None
            raise

    async def _publish_atomic(self, events: Sequence[RecordedEvent]) -> None:
        """In atomic batches of up to ATOMIC_BATCH, each committed before the next is sent (under the
        send lock), so no later event can be stored ahead of an earlier one that a crash lost: a
        batch is stored whole or not at all, and nothing follows it until it is. Each batch after
        the first names the stream sequence it must follow, which refuses it if anyone else wrote to
        the stream meanwhile. A batch holding an event the stream already has (the relay
        republishing after a crash) is refused whole by the server: that batch goes one by one
        instead, where each copy is answered as a duplicate."""
        for at in range(0, len(events), ATOMIC_BATCH):
            batch = events[at : at + ATOMIC_BATCH]
            try:
                self._last_seq = await self._commit_batch(batch, at, len(events))
            except _BatchHasDuplicate:
                self._last_sent = self._last_seq = None
                await self._confirm(await self._send(batch), len(batch))
                self._last_sent = None  # the next batch is atomic again, and checks nothing on its first

    async def _commit_batch(self, batch: Sequence[RecordedEvent], offset: int, total: int) -> int:
        """Send one atomic batch and wait for its commit; the stream sequence of its last message."""
        batch_id = f"{self._batch_prefix}-{next(self._batches)}"
        last = len(batch) - 1
        commit: Msg | None = None
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT + len(batch) / 1000):
                for n, e in enumerate(batch):
                    subject, body, headers = self._message(e)
                    headers["Nats-Batch-Id"] = batch_id
                    headers["Nats-Batch-Sequence"] = str(n + 1)
                    if n == 0 and self._last_seq is not None:
                        headers[ATOMIC_EXPECTED_LAST_SEQUENCE] = str(self._last_seq)
                    if n < last:
                        await self._nc.publish(subject, body, headers=headers)
                    else:
                        headers["Nats-Batch-Commit"] = "1"
                        commit = await self._nc.request(subject, body, timeout=PUBLISH_TIMEOUT, headers=headers)
        except (TimeoutError, nats.errors.Error) as err:
            raise PublishFailed(str(batch[0].event_id), self.names.stream, repr(err), offset, total) from err
        assert commit is not None
        try:
            answer = orjson.loads(commit.data)
        except orjson.JSONDecodeError as err:
            raise PublishFailed(str(batch[0].event_id), self.names.stream, f"not an ack: {commit.data[:200]!r}",
                                offset, total) from err  # fmt: skip
        error = answer.get("error")
        if error is not None:
            if error.get("err_code") == ERR_BATCH_HAS_DUPLICATE:
                raise _BatchHasDuplicate
            reason = f"refused: {error.get('description')} (code {error.get('err_code')})"
            raise PublishFailed(str(batch[0].event_id), self.names.stream, reason, offset, total)
        if answer.get("stream") != self.names.stream or answer.get("count") != len(batch):
            reason = f"unexpected commit: {commit.data[:200]!r}"
            raise PublishFailed(str(batch[0].event_id), self.names.stream, reason, offset, total)
        return int(answer["seq"])

    def _message(self, e: RecordedEvent) -> tuple[str, bytes, dict[str, str]]:
        """Subject, CloudEvents body and the headers every event carries, on either publish path."""
        p = partition_of(e.stream_id, self._partitions)
        body = to_cloudevent_bytes(e, self._source, self._partitions, partition=p)
        return self.names.event_subject(e.type, p), body, {"Nats-Msg-Id": str(e.event_id), "Content-Type": CONTENT_TYPE}

    async def _send(self, events: Sequence[RecordedEvent]) -> list[_Pending]:
        pending: list[_Pending] = []
        # One timer for the whole send loop (a full window waits for acks); assumes >= 1,000 events/s.
        budget = PUBLISH_TIMEOUT + len(events) / 1000
        try:
            async with asyncio.timeout(budget):
                for e in events:
                    subject, body, headers = self._message(e)
                    if self._last_sent is not None and self._last_sent[0] == e.position - 1:
                        headers[EXPECTED_LAST_MSG_ID] = self._last_sent[1]
                    self._last_sent = (e.position, headers["Nats-Msg-Id"])
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
        for future in futures:  # mark every refusal as seen: only the first is raised
            if not future.cancelled():
                future.exception()
        for confirmed, (e, subject, future) in enumerate(pending):
            if future.cancelled():
                raise PublishFailed(str(e.event_id), subject, "no ack in time", confirmed, total)
            err = future.exception()
            if err is not None:  # str(): nats-py's repr drops the server's description
                raise PublishFailed(str(e.event_id), subject, f"{type(err).__name__}: {err}", confirmed, total) from err
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
        durable, stream = config.durable_name, self.names.stream

        async def subscribe() -> JetStreamContext.PullSubscription:
            return await self._js.pull_subscribe_bind(
                durable=durable, stream=stream, pending_msgs_limit=spec.batch_size * 4
            )

        server_filters = self._multi_filter and spec.types is not None
        return NatsPartitionConsumer(self._js, subscribe, await subscribe(), self.names, spec, server_filters)

    async def dead_letters(self, kind: str, limit: int = 100) -> list[DeadLetter]:
        sub = await self._js.pull_subscribe(
            f"{self.names.dead_prefix}.{kind}.>",
            stream=self.names.dead_stream,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, inactive_threshold=5.0),
        )
        try:
            msgs = await sub.fetch(limit, timeout=1.0)
        except TimeoutError:  # nats-py's, or asyncio's when the server's end of the pull came first
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


def _settle_refused_publishes(js: JetStreamContext) -> None:
    """Make a refused publish_async fail its future at once.

    nats-py 2.16's reply handler raises the server's error (`APIError.from_error` raises instead of
    returning) inside the subscription callback, so the publish's future is never settled and the
    caller only learns of the refusal (e.g. "wrong last msg ID") from its own timeout. The wrapper
    settles the future with that error. It must be installed before the first publish_async, which
    subscribes the handler; tests/integration/test_nats_publish_order.py fails if this stops working.
    """
    original = js._handle_async_reply
    prefix_length = len(js._nc._inbox_prefix) + 22 + 2  # inbox prefix, "." + 22-char nuid + "."; as nats-py

    async def handle(msg: Msg) -> None:
        try:
            await original(msg)
        except nats.js.errors.APIError as err:
            future = js._publish_async_futures.get(msg.subject[prefix_length:])
            if future is not None and not future.done():
                future.set_exception(err)

    js._handle_async_reply = handle  # type: ignore[method-assign]
