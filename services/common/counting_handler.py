"""A handler that only logs and counts what it receives: the stand-in until a service's real handlers.

It has no effect to make idempotent, so it needs no checkpoint; the runtime acks after it returns.
"""

from __future__ import annotations

from shared.broker.consume import Handler
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)


def counting_handler(kind: str, metrics: MetricsRegistry) -> Handler:
    seen = metrics.counter("worker_events_seen", "Events a worker received, by kind and type", ["kind", "type"])

    async def handle(batch: list[RecordedEvent]) -> None:
        for event in batch:
            seen.labels(kind, event.type).inc()
            log.debug("event_seen", kind=kind, type=event.type, position=event.position, stream=event.stream_id)

    return handle
