"""The broker port: publish events (batched, confirmed), durable consume with ack, ephemeral pub/sub, health.

Adapters: shared.broker.nats (JetStream, the default) and shared.broker.rabbit (RabbitMQ), chosen by
LEDGERLINE_BROKER_URL through shared.broker.factory.connect_broker(). Names (stream, subjects, exchange,
routing keys, CloudEvents form) are fixed by the public contract: see docs/broker.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from shared.events.envelope import RecordedEvent

EphemeralHandler = Callable[[str, bytes], Awaitable[None]]
"""Called with (subject, data) for each ephemeral message."""


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class EventPublisher(Protocol):
    async def publish_events(self, events: Sequence[RecordedEvent]) -> None:
        """Publish in order and return once the broker confirmed every one (durably stored).
        The event id is the de-duplication id, so republishing after a crash stores nothing twice."""
        ...


class Broker(EventPublisher, Protocol):
    """See the adapters for the consumer side, which the worker runtime (shared.broker.runtime) drives."""

    async def publish_ephemeral(self, subject: str, data: bytes) -> None: ...

    async def subscribe_ephemeral(self, subject: str, handler: EphemeralHandler) -> Subscription: ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...
