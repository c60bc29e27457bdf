"""Event handlers of the tickets worker: the ticket lifecycle, assignment and SLA timers.

The worker runtime calls the handler with each batch of the types in TYPES (the broker filters the
rest: Read and Delivered alone are as many as the messages). What matters here:
- UserSeen / UserProfileChanged: agents and supervisors (tk_agents, from token claims);
- AgentAvailabilityChanged: an agent's explicit availability;
- MessageSent: a message in a support conversation opens, continues or reopens a ticket;
- any Ticket* event: the ticket is reconciled once per batch (clocks, row, timers, assignment);
  TicketAssigned also has the agent join the support conversation.
Anything else that arrives is counted and acknowledged. An event this worker cannot use (a payload without the
fields it needs) is logged and skipped: one bad event never stops the worker.
"""

from __future__ import annotations

from services.gateway.errors import GatewayError
from services.tickets.desk import Desk
from services.tickets.rows import TicketRow
from shared.broker.consume import Handler
from shared.events.envelope import RecordedEvent
from shared.events.registry import registry
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

KIND = "tickets"
CLAIMS = frozenset({"UserSeen", "UserProfileChanged"})
TYPES = frozenset(
    {*CLAIMS, "AgentAvailabilityChanged", "MessageSent", *(t for t in registry.types() if t.startswith("Ticket"))}
)


def tickets_handler(desk: Desk, metrics: MetricsRegistry) -> Handler:
    seen = metrics.counter("worker_events_seen", "Events a worker received, by kind and type", ["kind", "type"])

    async def handle(batch: list[RecordedEvent]) -> None:
        touched: dict[str, int] = {}  # ticket id -> the highest stream version in the batch
        latest_tickets = await desk.latest_tickets(batch)
        for record in batch:
            seen.labels(KIND, record.type).inc()
            try:
                await _one(desk, record, touched, latest_tickets)
            except (KeyError, TypeError, ValueError, GatewayError) as e:
                log.error("event_skipped", type=record.type, position=record.position, error=repr(e))
        for ticket_id, version in touched.items():
            await desk.reconcile(ticket_id, version)

    return handle


async def _one(
    desk: Desk, record: RecordedEvent, touched: dict[str, int], latest_tickets: dict[str, TicketRow | None]
) -> None:
    if record.type in CLAIMS:
        await desk.on_claims(record)
    elif record.type == "AgentAvailabilityChanged":
        await desk.on_availability(record.payload["agent_id"], bool(record.payload["available"]))
    elif record.type == "MessageSent":
        await desk.on_message(record, latest_tickets)
    elif record.type.startswith("Ticket") and record.stream_id.startswith("ticket-"):
        if record.type == "TicketAssigned":
            await desk.on_assigned(record)
        ticket_id = record.stream_id.removeprefix("ticket-")
        touched[ticket_id] = max(touched.get(ticket_id, 0), record.stream_version)
