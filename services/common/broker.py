"""The broker connection of a service, when one is configured (LEDGERLINE_BROKER_URL)."""

from __future__ import annotations

from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.config import Settings
from shared.logging import get_logger

log = get_logger(__name__)


async def connect_configured_broker(settings: Settings, service: str) -> ConsumingBroker | None:
    """The broker named by the settings (topology created when missing); None when no URL is set,
    which a service run on its own without a broker accepts (its /readyz then checks no broker)."""
    if settings.broker_url is None:
        log.warning("broker_not_configured", setting="LEDGERLINE_BROKER_URL")
        return None
    return await connect_broker(settings.broker_url, partitions=settings.partitions, source=f"ledgerline/{service}")
