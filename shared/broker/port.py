"""The broker port: publish events (batched, confirmed), durable consume with ack, ephemeral pub/sub, health.

Adapters: shared.broker.nats (JetStream, the default) and shared.broker.rabbit (RabbitMQ), chosen by
LEDGERLINE_BROKER_URL through shared.broker.factory.connect_broker(). Names (stream, subjects, exchange,
routing keys, CloudEvents form) are fixed by the public contract: see docs/broker.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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


# --- The consumer side, driven by the worker runtime (shared.broker.runtime) -----------------------


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """One durable consumer: the events of `types` (None = every type) in one partition, for one worker kind.

    `max_deliver` is the runtime's limit; adapters set the broker's own limit a little higher, as a
    backstop that only a crash loop reaches (the runtime dead-letters first, with the error text).
    """

    kind: str
    types: frozenset[str] | None
    partition: int
    max_deliver: int = 5
    ack_wait: float = 30.0
    batch_size: int = 256


class Delivery(Protocol):
    """One delivered message. `event` is None when the body could not be decoded (`decode_error` says why)."""

    @property
    def event(self) -> RecordedEvent | None: ...

    @property
    def decode_error(self) -> str | None: ...

    @property
    def deliveries(self) -> int:
        """How many times the broker has delivered this message, this delivery included (1 = first)."""
        ...

    async def ack(self) -> None: ...

    async def release(self) -> None:
        """Give it back for redelivery now (graceful stop with a batch in hand)."""
        ...

    async def in_progress(self) -> None:
        """Tell the broker the message is still being worked on (resets its ack timer, where there is one)."""
        ...

    async def dead_letter(self, error: str) -> None:
        """Store it with `error` in the dead-letter place, then remove it from the consumer for good."""
        ...


class DeliveriesLost(Exception):
    """Raised by `PartitionConsumer.fetch` when the broker's numbering shows that messages it delivered
    here never arrived (a connection dropped with a batch on the wire, a client buffer overflowed).
    Handling what did arrive would put newer events before the lost ones, and a read model whose
    checkpoint passed them would skip them for good. So nothing of the fetch is handed out: the
    consumer leaves it unsettled and the caller waits, as on a takeover, until the broker gives the
    lost messages and these back in order (`settle_seconds`)."""

    def __init__(self, missing: int, settle_seconds: float) -> None:
        super().__init__(f"{missing} delivered message(s) never arrived")
        self.missing = missing
        self.settle_seconds = settle_seconds


class PartitionConsumer(Protocol):
    async def fetch(self, max_messages: int, wait: float) -> list[Delivery]:
        """Up to `max_messages` in order; an empty list when none came within `wait` seconds.
        Raises DeliveriesLost when earlier deliveries to this consumer were lost in transit."""
        ...

    async def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """Ack every one of `deliveries` (fetched here, in fetch order), with as few frames as the
        broker allows; the same as acking each in turn."""
        ...

    async def lag(self) -> int | None:
        """Messages waiting in this partition (None when unknown)."""
        ...

    async def unsettled(self) -> int:
        """Messages of this partition delivered to an earlier consumer (a previous owner, perhaps a
        killed one) and neither acked nor returned yet. 0 on a broker that returns them at once."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered event as stored by the broker: the original body and the error that killed it."""

    kind: str
    event_id: str
    type: str
    error: str
    deliveries: int
    body: bytes


class ConsumingBroker(Broker, Protocol):
    """A broker the worker runtime can consume from: both adapters implement it."""

    @property
    def partitions(self) -> int: ...

    async def declare_consumers(self, specs: Sequence[ConsumerSpec]) -> None:
        """Create the durable consumers (queues) so that events are kept for them from now on, even
        for partitions no instance consumes yet. Idempotent."""
        ...

    async def open_consumer(self, spec: ConsumerSpec) -> PartitionConsumer: ...

    async def dead_letters(self, kind: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters of `kind`, without removing them (for operators and tests)."""
        ...
