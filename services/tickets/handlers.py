"""Event handlers of the tickets worker: the ticket lifecycle, assignment and SLA timers.

The seam: the worker runtime calls the handler that build_handler() returns for every event of the
tickets consumer. Until the tickets handlers are written, each event is logged and counted
(`ledgerline_worker_events_seen_total{kind="tickets"}` on /metrics) and acknowledged.
"""

from __future__ import annotations

from services.common.counting_handler import counting_handler
from services.common.worker_service import WorkerContext
from shared.broker.consume import Handler

KIND = "tickets"


def build_handler(context: WorkerContext) -> Handler:
    return counting_handler(KIND, context.metrics)
