"""NATS JetStream adapter (nats-py)."""

from shared.broker.nats.broker import NatsBroker
from shared.broker.nats.names import NatsNames

__all__ = ["NatsBroker", "NatsNames"]
