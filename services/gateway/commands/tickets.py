"""TicketService: the support desk's commands, as the routes call them (docs/support.md).

Who may do what is decided here, from the token's roles: a caller who may not see a ticket learns
nothing (NotFound, as for an unknown id); one who sees it but may not do this gets NotAllowed. The
ticket's own rules (status transitions, lines, rating once after resolve) are the domain's
(services/tickets/domain/ticket.py). Events are appended on the ticket's stream at the version they
were decided on (services/tickets/streams.py). What follows a command (SLA clocks, auto-assignment,
the queue) is the tickets worker's work, on the events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from services.gateway.auth import Principal
from services.gateway.commands.executor import Clock, utcnow
from services.gateway.commands.results import StartedConversation
from services.gateway.commands.service import ConversationService
from services.gateway.commands.state import ConversationState
from services.gateway.errors import GatewayError, Invalid, NotAllowed, NotFound
from services.tickets.domain import ticket as decide
from services.tickets.domain.clocks import Timed
from services.tickets.domain.state import TicketState
from services.tickets.domain.support import SUPPORT_CONTACT_ID, SUPPORT_TITLE, support_conversation_id
from services.tickets.streams import Outcome, execute, fixed_steps, load, now_steps
from shared.events.base import Event
from shared.events.conversation import ConversationStarted
from shared.events.envelope import NewEvent
from shared.events.ids import deterministic_id
from shared.events.tickets import AgentAvailabilityChanged
from shared.store.port import EventStore

STAFF = frozenset({"agent", "supervisor"})
SUPERVISORS = frozenset({"supervisor", "admin"})
# Who may open a ticket on someone else's behalf (an e-mail or web-form integration's token).
INTEGRATIONS = frozenset({"agent", "supervisor", "admin"})
DEFAULT_PRIORITY = "normal"
# Tickets worked on at once by a bulk request: enough to finish 500 quickly, few enough not to crowd
# out other requests on the store's writer.
BULK_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class TicketResult:
    state: TicketState
    position: int  # 0: nothing was appended
    note_id: str | None = None


def may_see(principal: Principal, state: TicketState) -> bool:
    """Supervisors see every ticket; agents their lines' queues (line 3: every segment) and what is
    assigned to them; a requester their own tickets."""
    if not state.exists:
        return False
    if principal.roles & SUPERVISORS or state.requester_id == principal.user_id:
        return True
    if "agent" not in principal.roles:
        return False
    if state.assignee == principal.user_id:
        return True
    return state.line in principal.lines and (state.line == 3 or principal.segment == state.segment)


class TicketService:
    def __init__(self, store: EventStore, conversations: ConversationService, clock: Clock = utcnow) -> None:
        self._store = store
        self._conversations = conversations
        self._clock = clock

    async def support_conversation(self, principal: Principal) -> StartedConversation:
        """The caller's conversation with the "Technical support" contact, started on first ask."""
        user = principal.user_id
        conversation_id = support_conversation_id(user)
        started = ConversationStarted(
            conversation_id=conversation_id,
            kind="support",
            title=SUPPORT_TITLE,
            members=(user, SUPPORT_CONTACT_ID),
            created_by=user,
        )

        def start(state: ConversationState) -> list[Event]:
            return [] if state.exists else [started]

        def answer(state: ConversationState, position: int) -> StartedConversation:
            return StartedConversation(state.view(), created=position > 0, position=position)

        return await self._conversations.executor.execute(user, conversation_id, start, answer)

    async def open(
        self,
        principal: Principal,
        subject: str,
        channel: str,
        priority: str | None = None,
        requester_id: str | None = None,
        segment: str | None = None,
        client_ticket_id: str | None = None,
    ) -> tuple[TicketResult, bool]:
        """A ticket from a web form or e-mail; (result, created). With `client_ticket_id` a retry
        answers the same ticket."""
        if channel == "chat":
            raise Invalid("channel", "chat tickets open from the support conversation")
        on_behalf = requester_id is not None and requester_id != principal.user_id
        if on_behalf and not principal.roles & INTEGRATIONS:
            raise NotAllowed("only agents, supervisors and integrations open tickets for someone else")
        requester = requester_id or principal.user_id
        # A user's own segment is the token's; an integration names the requester's.
        segment = (segment if on_behalf else principal.segment) or "customers"
        if not subject.strip():
            raise Invalid("subject", "must not be blank")
        if client_ticket_id is None:
            ticket_id = str(uuid.uuid4())
        else:
            ticket_id = str(deterministic_id("ticket", requester, client_ticket_id))
        events = decide.open_ticket(ticket_id, requester, segment, channel, subject, priority or DEFAULT_PRIORITY)
        outcome = await execute(
            self._store,
            ticket_id,
            principal.user_id,
            lambda s: [] if s.exists else fixed_steps(events, self._clock(), ticket_id, "opened"),
        )
        if not may_see(principal, outcome.state):
            raise NotFound("ticket", ticket_id)  # a client id another caller used for someone else
        return TicketResult(outcome.state, outcome.position), bool(outcome.appended)

    async def assign(self, principal: Principal, ticket_id: str, agent_id: str | None) -> TicketResult:
        """Supervisors assign and reassign (None: back to the queue); an agent may take a ticket."""
        taking = agent_id == principal.user_id and "agent" in principal.roles
        if not (principal.roles & SUPERVISORS or taking):
            return await self._refuse(principal, ticket_id, "only a supervisor assigns tickets")
        if agent_id is None:
            return await self._run(principal, ticket_id, lambda s: decide.unassign(s, principal.user_id))
        return await self._run(principal, ticket_id, lambda s: decide.assign(s, agent_id, principal.user_id))

    async def escalate(
        self, principal: Principal, ticket_id: str, to_line: int | None, reason: str | None
    ) -> TicketResult:
        lower = bool(principal.roles & SUPERVISORS)
        return await self._run(
            principal, ticket_id, lambda s: decide.escalate(s, principal.user_id, to_line, reason, may_lower=lower)
        )

    async def set_status(self, principal: Principal, ticket_id: str, status: str) -> TicketResult:
        return await self._run(principal, ticket_id, lambda s: decide.change_status(s, status, principal.user_id))

    async def set_priority(self, principal: Principal, ticket_id: str, priority: str) -> TicketResult:
        return await self._run(principal, ticket_id, lambda s: decide.change_priority(s, priority, principal.user_id))

    async def add_note(self, principal: Principal, ticket_id: str, text: str) -> TicketResult:
        if not text.strip():
            raise Invalid("text", "must not be blank")
        note_id = str(uuid.uuid4())
        result = await self._run(principal, ticket_id, lambda s: decide.add_note(s, note_id, principal.user_id, text))
        return TicketResult(result.state, result.position, note_id)

    async def set_tags(self, principal: Principal, ticket_id: str, tags: Sequence[str]) -> TicketResult:
        return await self._run(principal, ticket_id, lambda s: decide.set_tags(s, tags, principal.user_id))

    async def rate(self, principal: Principal, ticket_id: str, score: int, comment: str | None) -> TicketResult:
        def rate(state: TicketState) -> list[Event]:
            if state.requester_id != principal.user_id:
                raise NotAllowed("only the requester rates a ticket")
            return decide.rate(state, principal.user_id, score, comment)

        return await self._run(principal, ticket_id, rate, staff_only=False)

    async def set_availability(self, principal: Principal, available: bool) -> int:
        """An agent takes tickets (or stops); the store position of the change."""
        if "agent" not in principal.roles:
            raise NotAllowed("only agents set their availability")
        event = AgentAvailabilityChanged(agent_id=principal.user_id, available=available)
        result = await self._store.append(
            f"agent-{principal.user_id}", [NewEvent(event, principal.user_id, occurred_at=self._clock())]
        )
        return result.last_position

    async def bulk(
        self,
        principal: Principal,
        ticket_ids: Sequence[str],
        command: Callable[[str], Awaitable[TicketResult]],
    ) -> list[TicketResult | GatewayError]:
        """One command per ticket (each its own events); a failure is that ticket's answer only."""
        if not principal.roles & SUPERVISORS:
            raise NotAllowed("only supervisors act on many tickets at once")
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(ticket_id: str) -> TicketResult | GatewayError:
            async with gate:
                try:
                    return await command(ticket_id)
                except GatewayError as e:
                    return e

        return list(await asyncio.gather(*(one(t) for t in ticket_ids)))

    # --- helpers ---------------------------------------------------------------------------------

    async def _run(
        self,
        principal: Principal,
        ticket_id: str,
        command: Callable[[TicketState], list[Event]],
        *,
        staff_only: bool = True,
    ) -> TicketResult:
        def guarded(state: TicketState) -> list[Timed]:
            if not may_see(principal, state):
                raise NotFound("ticket", ticket_id)
            if staff_only and not principal.roles & (STAFF | SUPERVISORS):
                raise NotAllowed("only agents and supervisors do this")
            return now_steps(command(state), self._clock())

        outcome: Outcome = await execute(self._store, ticket_id, principal.user_id, guarded)
        return TicketResult(outcome.state, outcome.position)

    async def _refuse(self, principal: Principal, ticket_id: str, reason: str) -> TicketResult:
        """NotAllowed for a caller who sees the ticket, NotFound for one who does not."""
        state = await load(self._store, ticket_id)
        if not may_see(principal, state):
            raise NotFound("ticket", ticket_id)
        raise NotAllowed(reason)
