"""Choose and connect the broker adapter from LEDGERLINE_BROKER_URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.broker.errors import UnsupportedBrokerUrl
from shared.broker.port import ConsumingBroker

NATS_SCHEMES = ("nats", "tls")
AMQP_SCHEMES = ("amqp", "amqps")


async def connect_broker(url: str, **names: Any) -> ConsumingBroker:
    """Connect to `url` and create the topology when missing.

    `names` go to the adapter: `namespace` (both, for tests), `partitions`, `source`, and the
    adapter's own (`names=NatsNames(...)`, `max_age` for JetStream; `names=RabbitNames(...)`)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in NATS_SCHEMES:
        from shared.broker.nats import NatsBroker

        return await NatsBroker.connect(url, **names)
    if scheme in AMQP_SCHEMES:
        from shared.broker.rabbit import RabbitBroker

        return await RabbitBroker.connect(url, **names)
    raise UnsupportedBrokerUrl(url, tuple(f"{s}://" for s in NATS_SCHEMES + AMQP_SCHEMES))
