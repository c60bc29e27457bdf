"""The broker connection of a service, when one is configured (LEDGERLINE_BROKER_URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.broker.factory import NATS_SCHEMES, connect_broker
from shared.broker.nats.topology import ReplicasNotHonoured
from shared.broker.port import ConsumingBroker
from shared.config import Settings
from shared.errors import ConfigError
from shared.logging import get_logger

log = get_logger(__name__)


async def connect_configured_broker(settings: Settings, service: str) -> ConsumingBroker | None:
    """The broker named by the settings (topology created when missing); None when no URL is set,
    which a service run on its own without a broker accepts (its /readyz then checks no broker)."""
    if settings.broker_url is None:
        log.warning("broker_not_configured", setting="LEDGERLINE_BROKER_URL")
        return None
    options: dict[str, Any] = {"partitions": settings.partitions, "source": f"ledgerline/{service}"}
    if settings.broker_namespace:
        options["namespace"] = settings.broker_namespace
    if urlsplit(settings.broker_url).scheme.lower() in NATS_SCHEMES:
        options["replicas"] = settings.nats_replicas
    try:
        return await connect_broker(settings.broker_url, **options)
    except ReplicasNotHonoured as err:
        # A setting the server cannot honour: a configuration error (exit 2), not a crash.
        raise ConfigError([f"LEDGERLINE_NATS_REPLICAS: {err.reason}"]) from err
