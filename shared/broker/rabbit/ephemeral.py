"""Ephemeral subscriptions on RabbitMQ: one channel and one queue per broker, handlers kept in-process.

A gateway subscribes once per connected user (`ledgerline.rt.user.<token>`). A channel per
subscription would stop a gateway at RabbitMQ's `channel_max` (2,047 per connection by default) and
cost several round trips per connect. Here every subscription of a `RabbitBroker` shares one channel
and one exclusive, auto-delete queue consumed with no_ack; a subscription adds a binding for its
pattern (only the first subscription of a pattern binds, the last one to leave unbinds) and a
handler in a table, and each incoming message is dispatched in-process to the handlers whose pattern
matches its routing key, with AMQP topic semantics (`*` one word, `#` zero or more).

Reconnect: the channel, exchange and queue are declared through aio-pika's robust objects, which
record them. After a connection loss the robust connection reopens the channel, re-declares the
exchange and the queue under the same name (aio-pika names it client-side, `amq_<uuid>`, for that
reason), re-binds every pattern bound and not unbound, and restarts the consumer with the same
callback. The handler table is not touched, so subscriptions carry on. Messages published while the
connection was down are lost, as ephemeral messages are at most once (clients resync).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

import aiormq.exceptions
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    ExchangeType,
)

from shared.broker.errors import BrokerUnavailable
from shared.broker.port import EphemeralHandler
from shared.broker.rabbit.names import binding_pattern
from shared.logging import get_logger

log = get_logger(__name__)

# A subscribe or unsubscribe waits at most this long for the server (the connection may be down and
# being restored): the caller gets an error instead of it, and every call queued behind it, hanging.
RPC_TIMEOUT = 10.0
# What a failed unbind or close may raise (ChannelInvalidStateError is a RuntimeError).
_CHANNEL_ERRORS = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError, TimeoutError)


def is_wildcard(pattern: str) -> bool:
    return any(word in ("*", "#") for word in pattern.split("."))


def topic_regex(pattern: str) -> re.Pattern[str]:
    """An AMQP topic pattern as a regex over `"." + routing_key`: every word is `.word` there, so `#`
    (zero or more words) is simply `(?:\\.[^.]*)*`."""
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:\.[^.]*)*")
        elif word == "*":
            parts.append(r"\.[^.]*")
        else:
            parts.append(r"\." + re.escape(word))
    return re.compile("".join(parts))


class EphemeralSubscription:
    def __init__(self, mux: EphemeralMultiplexer, pattern: str, handler: EphemeralHandler) -> None:
        self.pattern = pattern
        self.handler = handler
        self.active = True
        self._mux = mux

    async def unsubscribe(self) -> None:
        await self._mux.unsubscribe(self)


@dataclass(slots=True)
class _Wildcard:
    regex: re.Pattern[str]
    subscriptions: list[EphemeralSubscription] = field(default_factory=list)


class EphemeralMultiplexer:
    def __init__(self, connection: AbstractRobustConnection, exchange: str) -> None:
        self._connection = connection
        self._exchange_name = exchange
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        # The hot path (per-user subjects) is a dict lookup; the few wildcard patterns (presence) are
        # tried one by one.
        self._exact: dict[str, list[EphemeralSubscription]] = {}
        self._wildcards: dict[str, _Wildcard] = {}
        # Held around each bind/unbind and the table change that goes with it, so that the unbind of a
        # pattern's last subscription and a new subscribe of that pattern run one after the other, in
        # the table's order. aiormq runs one RPC at a time per channel anyway, so it costs no overlap.
        self._lock = asyncio.Lock()
        self._closed = False
        self.dropped = 0
        """Messages that arrived for no live handler: in flight during an unsubscribe, or for a
        binding a failed unbind left behind."""

    async def subscribe(self, subject: str, handler: EphemeralHandler) -> EphemeralSubscription:
        pattern = binding_pattern(subject)
        subscription = EphemeralSubscription(self, pattern, handler)
        async with self._lock:
            if self._closed:
                raise BrokerUnavailable("amqp", "closed")
            if not self._subscriptions(pattern):
                async with asyncio.timeout(RPC_TIMEOUT):
                    channel, queue, exchange = await self._declared()
                    await channel.ready()  # after a connection loss: once the channel is restored
                    await queue.bind(exchange, routing_key=pattern)
            self._add(subscription)
        return subscription

    async def unsubscribe(self, subscription: EphemeralSubscription) -> None:
        if not subscription.active:
            return
        subscription.active = False  # no message reaches the handler from now on
        async with self._lock:
            pattern = subscription.pattern
            subscriptions = self._subscriptions(pattern)
            subscriptions.remove(subscription)
            if subscriptions:
                return
            self._exact.pop(pattern, None)
            self._wildcards.pop(pattern, None)
            if self._closed or self._channel is None or self._queue is None or self._exchange is None:
                return  # the queue goes with the channel
            try:
                async with asyncio.timeout(RPC_TIMEOUT):
                    await self._channel.ready()
                    await self._queue.unbind(self._exchange, routing_key=pattern)
            except _CHANNEL_ERRORS as err:
                # The binding stays (and a reconnect restores it): its messages are dropped here, and
                # the next subscribe of the pattern binds it again, its last unsubscribe unbinds it.
                log.warning("ephemeral_unbind_failed", pattern=pattern, error=repr(err))

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            for subscriptions in (*self._exact.values(), *(w.subscriptions for w in self._wildcards.values())):
                for subscription in subscriptions:
                    subscription.active = False
            self._exact.clear()
            self._wildcards.clear()
            channel, self._channel, self._queue, self._exchange = self._channel, None, None, None
        if channel is not None and not channel.is_closed:
            # Closing the channel cancels the consumer, and RabbitMQ deletes the auto-delete queue.
            with contextlib.suppress(*_CHANNEL_ERRORS):
                await channel.close()

    async def _declared(self) -> tuple[AbstractRobustChannel, AbstractQueue, AbstractExchange]:
        """The channel, exchange and queue, declared on the first subscribe (under the lock)."""
        if self._channel is not None and self._queue is not None and self._exchange is not None:
            return self._channel, self._queue, self._exchange
        channel = self._connection.channel(publisher_confirms=False)
        try:
            await channel.initialize()
            # Declared on this channel too, so that the robust channel re-declares it before re-binding
            # (a non-durable exchange does not survive a broker restart).
            exchange = await channel.declare_exchange(self._exchange_name, ExchangeType.TOPIC, durable=False)
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.consume(self._deliver, no_ack=True)
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        self._channel, self._exchange, self._queue = channel, exchange, queue
        return channel, queue, exchange

    def _subscriptions(self, pattern: str) -> list[EphemeralSubscription]:
        if pattern in self._exact:
            return self._exact[pattern]
        wildcard = self._wildcards.get(pattern)
        return wildcard.subscriptions if wildcard is not None else []

    def _add(self, subscription: EphemeralSubscription) -> None:
        pattern = subscription.pattern
        if not is_wildcard(pattern):
            self._exact.setdefault(pattern, []).append(subscription)
        elif pattern in self._wildcards:
            self._wildcards[pattern].subscriptions.append(subscription)
        else:
            self._wildcards[pattern] = _Wildcard(topic_regex(pattern), [subscription])

    async def _deliver(self, msg: AbstractIncomingMessage) -> None:
        key, body = msg.routing_key or "", msg.body
        # Copies: a handler may (un)subscribe while the others wait their turn.
        targets = list(self._exact.get(key, ()))
        if self._wildcards:
            dotted = "." + key
            for wildcard in tuple(self._wildcards.values()):
                if wildcard.regex.fullmatch(dotted):
                    targets.extend(wildcard.subscriptions)
        delivered = False
        for subscription in targets:
            if not subscription.active:
                continue
            delivered = True
            try:
                await subscription.handler(key, body)
            except Exception:
                # One handler's bug must not cost the others this message, nor stop the consumer.
                log.exception("ephemeral_handler_failed", routing_key=key, pattern=subscription.pattern)
        if not delivered:
            self.dropped += 1
