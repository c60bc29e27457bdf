"""RabbitMQ topology: the events topic exchange, one quorum queue per (worker kind, partition), dead letters.

Quorum queues replicate through Raft and fsync before confirming, so a publisher confirm means the
message is on disk (on a majority, in a cluster). Queue arguments are fixed at declaration: changing
`max_deliver` for an existing queue needs the queue re-created (or a policy; see docs/broker.md).
"""

from __future__ import annotations

from typing import Any

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, ExchangeType

from shared.broker.errors import TopologyError
from shared.broker.port import ConsumerSpec
from shared.broker.rabbit.names import RabbitNames

# As on NATS: the broker's own limit is a backstop above the runtime's (which dead-letters with the
# error text); only a process that dies on every delivery lets a message reach it.
BROKER_DELIVERY_LIMIT_MARGIN = 3


async def declare_exchanges(channel: AbstractChannel, names: RabbitNames) -> None:
    try:
        await channel.declare_exchange(names.exchange, ExchangeType.TOPIC, durable=True)
        await channel.declare_exchange(names.dead_exchange, ExchangeType.TOPIC, durable=True)
        # Ephemeral signals must not outlive a broker restart: a non-durable exchange.
        await channel.declare_exchange(names.ephemeral_exchange, ExchangeType.TOPIC, durable=False)
    except aiormq.exceptions.AMQPError as err:
        raise TopologyError(names.exchange, str(err)) from err


async def declare_dead_queue(channel: AbstractChannel, names: RabbitNames, kind: str) -> AbstractQueue:
    name = names.dead_queue(kind)
    try:
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(names.dead_exchange, routing_key=f"{kind}.#")
    except aiormq.exceptions.AMQPError as err:
        raise TopologyError(name, str(err)) from err
    return queue


async def declare_partition_queue(channel: AbstractChannel, names: RabbitNames, spec: ConsumerSpec) -> AbstractQueue:
    name = names.queue(spec.kind, spec.partition)
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        # A second consumer (a lease overlap after a clock jump) waits instead of sharing the queue.
        "x-single-active-consumer": True,
        "x-delivery-limit": spec.max_deliver + BROKER_DELIVERY_LIMIT_MARGIN,
        "x-dead-letter-exchange": names.dead_exchange,
        "x-dead-letter-routing-key": f"{spec.kind}.delivery-limit",
    }
    try:
        await declare_dead_queue(channel, names, spec.kind)
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        for key in _binding_keys(names, spec):
            await queue.bind(names.exchange, routing_key=key)
    except aiormq.exceptions.AMQPError as err:
        raise TopologyError(name, str(err)) from err
    return queue


def _binding_keys(names: RabbitNames, spec: ConsumerSpec) -> list[str]:
    if spec.types is None:
        return [f"*.{spec.partition}"]
    return sorted(names.routing_key(t, spec.partition) for t in spec.types)


async def events_exchange(channel: AbstractChannel, names: RabbitNames) -> AbstractExchange:
    return await channel.get_exchange(names.exchange, ensure=False)
