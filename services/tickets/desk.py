"""The tickets worker's decisions wired to the store and its tables: chat messages to tickets, SLA
clocks, auto-assignment and the queue.

Every effect is derived from state, so a redelivered event decides nothing new:
- a requester's message in their support conversation links to the open ticket, reopens a ticket
  resolved within the reopen window, or opens a new one (its id derives from the message);
- after any change to a ticket, its clocks are reconciled (domain/clocks.py), its row and timers
  are saved, and an unassigned open ticket is offered to its line's pool;
- capacity that frees up (a ticket finished, moved or unassigned; an agent available again) hands
  out the queue in SLA order.
Assignment is serialised in this process (one lock): load is read and changed together. A second
tickets process may overshoot an agent's capacity by the tickets the two assign at the same moment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.commands.cache import LruCache
from services.gateway.commands.directory import user_stream_id
from services.tickets import agents, rows
from services.tickets.domain import clocks
from services.tickets.domain import ticket as decide
from services.tickets.domain.assignment import pick_agent
from services.tickets.domain.sla import SlaPolicy
from services.tickets.domain.state import ACTIVE, TicketState, apply
from services.tickets.domain.support import SUPPORT_CONTACT_ID, SYSTEM_ACTOR, is_support_conversation_of
from services.tickets.streams import Outcome, execute, fixed_steps, load
from shared.events.conversation import MemberAdded
from shared.events.envelope import NewEvent, RecordedEvent
from shared.events.ids import deterministic_id
from shared.events.tickets import Clock, TicketAssigned
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.port import ANY, EventStore

log = get_logger(__name__)

SUBJECT_FALLBACK = "(no text)"
DEFAULT_SEGMENT = "customers"
# Tickets handed out per queue pass: a freed slot needs one; a newly available agent up to capacity.
DISPATCH_BATCH = 50
# Tickets whose last settled version this process remembers (a few MB): the echo of what it appended
# itself is then skipped instead of folded and decided again.
SETTLED_CACHE = 100_000


Pick = tuple[str, int] | None  # the agent picked, and the line they were picked for


class FrameSink(Protocol):
    async def send(self, user_ids: list[str], frame: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class DeskSettings:
    capacity: int
    reopen_window_seconds: int
    policy: SlaPolicy


class Desk:
    def __init__(
        self,
        engine: AsyncEngine,
        read_engine: AsyncEngine,
        store: EventStore,
        settings: DeskSettings,
        frames: FrameSink,
        metrics: MetricsRegistry,
        now: Callable[[], datetime],
    ) -> None:
        self._engine = engine  # writes (SQLite: BEGIN IMMEDIATE, see services/common/worker_service.py)
        self._read = read_engine  # reads, without taking SQLite's write lock
        self._store = store
        self._settings = settings
        self._frames = frames
        self._now = now
        self._assigning = asyncio.Lock()
        # Passes over a queue (dispatch) begun so far. A ticket that found nobody is saved as queued
        # after the lock is released; an agent who became available meanwhile had their queue read
        # before that row existed. A pick that sees this number move hands the queue out again, so
        # the ticket cannot wait for an agent who is already free (a lost wake-up).
        self._dispatches = 0
        self._freed: list[str] = []  # agents whose slot freed while the lock was held
        self._joins: list[tuple[TicketState, str]] = []  # assignments whose agent has yet to join
        self._settled: LruCache[str, int] = LruCache(SETTLED_CACHE)  # ticket -> version fully handled here
        # Whether presence sees the user online now (set by the worker's presence listener).
        self.online: Callable[[str], bool] = lambda _user: False
        self._opened = metrics.counter("tickets_opened", "Tickets opened from support chat by the tickets worker")
        self._assigned = metrics.counter("tickets_auto_assigned", "Tickets assigned by the tickets worker")
        self._breaches = metrics.counter(
            "tickets_sla_breaches", "SLA breaches appended, by the line breached and the clock", ["line", "clock"]
        )

    @property
    def policy(self) -> SlaPolicy:
        return self._settings.policy

    # --- events -------------------------------------------------------------------------------

    async def on_claims(self, record: RecordedEvent) -> None:
        p = record.payload
        async with self._engine.begin() as conn:
            await agents.save_claims(
                conn,
                p["user_id"],
                p.get("roles", ()),
                p.get("segment"),
                p.get("lines", ()),
                record.position,
                online=self.online(p["user_id"]),
            )
        await self.dispatch_for_agent(p["user_id"])

    async def on_availability(self, agent_id: str, available: bool) -> None:
        async with self._engine.begin() as conn:
            await agents.set_explicit(conn, agent_id, available)
        if available:
            await self.dispatch_for_agent(agent_id)

    async def on_presence(self, agent_id: str, online: bool) -> None:
        async with self._engine.begin() as conn:
            known = await agents.set_online(conn, agent_id, online)
        if known and online:
            await self.dispatch_for_agent(agent_id)

    async def on_assigned(self, record: RecordedEvent) -> None:
        """Every assignment (auto or a supervisor's): the agent joins the support conversation (again,
        harmlessly, after an auto-assignment: the join's id is fixed) and a supervisor's assignment is
        announced to the agent (auto-assignments were announced when made)."""
        p = record.payload
        state = await load(self._store, p["ticket_id"])
        if state.assignee != p["agent_id"]:
            return  # reassigned since: the later assignment's event does this
        await self._join_conversation(state, p["agent_id"])
        if p["assigned_by"] != SYSTEM_ACTOR:
            await self._frames.send([p["agent_id"]], assigned_frame(state))

    async def latest_tickets(self, batch: Sequence[RecordedEvent]) -> dict[str, rows.TicketRow | None]:
        """The latest ticket of each conversation the batch's messages are in, in one query: every chat
        message comes here, nearly all in conversations without a ticket (a query each, before)."""
        ids = {
            conversation_id
            for r in batch
            if r.type == "MessageSent"
            and r.payload.get("sender_id") != SUPPORT_CONTACT_ID
            and isinstance(conversation_id := r.payload.get("conversation_id"), str)
        }
        if not ids:
            return {}
        async with self._read.connect() as conn:
            return await rows.latest_of_conversations(conn, ids)

    async def on_message(self, record: RecordedEvent, latest_tickets: dict[str, rows.TicketRow | None]) -> None:
        """`latest_tickets`: from latest_tickets() for this batch; an entry is dropped once this
        message opened or joined a ticket, so that a later message of the batch reads the row again."""
        p = record.payload
        conversation_id, sender = p["conversation_id"], p["sender_id"]
        if sender == SUPPORT_CONTACT_ID:
            return
        if conversation_id in latest_tickets:
            latest = latest_tickets[conversation_id]
        else:
            async with self._read.connect() as conn:
                latest = await rows.latest_of_conversation(conn, conversation_id)
        if not is_support_conversation_of(conversation_id, sender):
            if latest is not None:  # an agent's reply in a support conversation
                latest_tickets.pop(conversation_id, None)
                await self._link(latest.ticket_id, record)
            return
        latest_tickets.pop(conversation_id, None)
        if latest is not None:
            state = await load(self._store, latest.ticket_id)
            if p["message_id"] in state.linked or self._continues(state, record.occurred_at):
                await self._link(latest.ticket_id, record)
                return
        await self._open_from_chat(record)

    def _continues(self, state: TicketState, at: datetime) -> bool:
        """An open ticket takes the message; a resolved one too, within the reopen window."""
        if state.active:
            return True
        window = timedelta(seconds=self._settings.reopen_window_seconds)
        return (
            state.status in ("resolved", "closed")
            and state.resolved_at is not None
            and at - state.resolved_at <= window
        )

    async def _link(self, ticket_id: str, record: RecordedEvent) -> None:
        p = record.payload

        def link(state: TicketState) -> list[clocks.Timed]:
            events = decide.link_message(
                state, p["conversation_id"], p["message_id"], p["seq"], p["sender_id"], SYSTEM_ACTOR
            )
            return fixed_steps(events, record.occurred_at, ticket_id, p["message_id"])

        await execute(self._store, ticket_id, SYSTEM_ACTOR, link)
        await self.reconcile(ticket_id)

    async def _open_from_chat(self, record: RecordedEvent) -> None:
        """TicketOpened, the first message's link, the clocks and the assignment: one append."""
        p = record.payload
        ticket_id = str(deterministic_id("chat-ticket", p["conversation_id"], p["message_id"]))
        requester, segment = p["sender_id"], await self._segment_of(p["sender_id"])
        subject = " ".join(str(p.get("text") or "").split())[:200] or SUBJECT_FALLBACK

        def open_(state: TicketState, agent: Pick) -> list[clocks.Timed]:
            if state.exists:
                return []
            opened = decide.open_ticket(ticket_id, requester, segment, "chat", subject, "normal", p["conversation_id"])
            linked = decide.link_message(
                _opened_state(ticket_id, requester), p["conversation_id"], p["message_id"], p["seq"], requester, ""
            )
            steps = fixed_steps([*opened, *linked], record.occurred_at, ticket_id, "opened")
            for step in steps:
                apply(state, step.event, step.at)
            return steps + self._follow_ups(state, agent)

        async def open_with(agent: Pick) -> Outcome:
            return await self._after(await execute(self._store, ticket_id, SYSTEM_ACTOR, lambda s: open_(s, agent)))

        outcome: Outcome | None = None
        async with self._assigning:
            seen = self._dispatches
            agent = await self._pick(1, segment)
            if agent is not None:
                outcome = await open_with(agent)
        if outcome is None:
            outcome = await self._queued(await open_with(None), seen)
        await self._hand_out_freed()
        if outcome.appended:
            self._opened.inc()
            log.info("ticket_opened", ticket_id=ticket_id, segment=segment, channel="chat")

    async def _segment_of(self, user_id: str) -> str:
        """The requester's segment from their latest claims (UserSeen/UserProfileChanged in the store:
        the gateway appends them before the request that sent the message)."""
        segment = DEFAULT_SEGMENT
        for record in await self._store.read_stream(user_stream_id(user_id)):
            if record.type in ("UserSeen", "UserProfileChanged"):
                segment = record.payload.get("segment") or DEFAULT_SEGMENT
        return segment

    # --- a ticket after any change --------------------------------------------------------------

    async def reconcile(self, ticket_id: str, version: int | None = None) -> TicketState | None:
        """Clocks and (for an open ticket without an agent) assignment in one append; then the row and
        timers; then the queue, where this freed capacity. With `version` (of the event that calls
        for it), nothing is done when this process already settled the ticket at that version or later
        (the event is the echo of its own append); after a restart the memory is empty and the ticket
        is settled again, which decides nothing new."""
        settled = self._settled.get(ticket_id)
        if version is not None and settled is not None and settled >= version:
            return None
        state = await load(self._store, ticket_id)
        if not state.exists:
            return state
        outcome: Outcome | None = None
        seen = self._dispatches
        if state.active and state.assignee is None:
            async with self._assigning:
                seen = self._dispatches
                agent = await self._pick(state.line, state.segment)
                if agent is not None:  # loads are read and changed under the lock
                    outcome = await self._decide(state, agent)
        if outcome is None:  # nobody to assign: nothing to serialise with other tickets
            outcome = await self._queued(await self._decide(state, None), seen)
        await self._hand_out_freed()
        return outcome.state

    async def _queued(self, outcome: Outcome, seen: int) -> Outcome:
        """A ticket saved without an agent: when a queue pass began since its pick (`seen`), that
        pass may have missed its row, so its queue is handed out again."""
        state = outcome.state
        if state.exists and state.active and state.assignee is None and self._dispatches != seen:
            await self.dispatch(state.line, None if state.line == 3 else state.segment)
        return outcome

    async def _decide(self, state: TicketState, agent: Pick) -> Outcome:
        decided = await execute(
            self._store, state.ticket_id, SYSTEM_ACTOR, lambda s: self._follow_ups(s, agent), first=state
        )
        return await self._after(decided)

    async def _settle(self, state: TicketState) -> Outcome:
        """The caller holds the assignment lock: pick an agent for the ticket's pool and decide."""
        return await self._decide(state, await self._pick(state.line, state.segment))

    def _follow_ups(self, state: TicketState, agent: Pick) -> list[clocks.Timed]:
        """What the state calls for: clock events, and the picked agent's assignment if it still fits."""
        steps = clocks.reconcile(state, self.policy)
        if agent is not None and state.active and state.assignee is None and state.line == agent[1]:
            events = decide.assign(state, agent[0], SYSTEM_ACTOR)
            # The agent is part of the id: two processes choosing different agents at one version must
            # conflict (and decide again), not have the second answered with the first one's append.
            steps += fixed_steps(events, self._now(), state.ticket_id, "auto-assign", str(state.version), agent[0])
        return steps

    async def _pick(self, line: int, segment: str) -> Pick:
        async with self._read.connect() as conn:
            pool = await agents.pool(conn, line, segment)
        agent = pick_agent(pool, line, segment, self._settings.capacity)
        return None if agent is None else (agent, line)

    async def _after(self, outcome: Outcome) -> Outcome:
        """Row and timers; the assigned agent's counter, conversation and frame; freed capacity."""
        state = outcome.state
        if not state.exists:
            return outcome
        assigned = next((s.event.agent_id for s in outcome.appended if isinstance(s.event, TicketAssigned)), None)
        async with self._engine.begin() as conn:
            before = await rows.save(conn, state, self.policy.warning_lead_seconds)
            if assigned is not None:
                await agents.mark_assigned(conn, assigned, time.time_ns())
        self._settled.put(state.ticket_id, state.version)
        if assigned is not None:
            self._assigned.inc()
            self._joins.append((state, assigned))  # outside the lock: other tickets need not wait for it
        if (
            before is not None
            and before.assignee is not None
            and before.status in ACTIVE  # it held a slot until now
            and (before.assignee != state.assignee or not state.active)
        ):
            self._freed.append(before.assignee)  # handed out once the assignment lock is released
        return outcome

    async def _hand_out_freed(self) -> None:
        """What waited for the assignment lock to be released (callers do not hold it): assigned
        agents join their conversations and hear of it; queues of agents whose capacity freed up are
        handed out."""
        while self._joins:
            state, agent = self._joins.pop()
            await self._join_conversation(state, agent)
            await self._frames.send([agent], assigned_frame(state))
        while self._freed:
            await self.dispatch_for_agent(self._freed.pop())

    async def breach(self, ticket_id: str, clock: Clock, now: datetime) -> Outcome:
        """Append the breach (and escalation). What follows — the row, the timers, the new line's
        assignment — is the handler's, when these events come back: the timer loop stays short."""
        breached_line = 0

        def decide(state: TicketState) -> list[clocks.Timed]:
            nonlocal breached_line
            breached_line = state.line  # before the escalation moves the ticket to another line
            return list(clocks.breach(state, clock, now, SYSTEM_ACTOR))

        outcome = await execute(self._store, ticket_id, SYSTEM_ACTOR, decide)
        if outcome.appended:  # counted once per breach appended: a timer fired twice appends nothing
            self._breaches.labels(str(breached_line), clock).inc()
            log.info("sla_breached", ticket_id=ticket_id, clock=clock, line=breached_line)
        return outcome

    # --- assignment -----------------------------------------------------------------------------

    async def dispatch_for_agent(self, agent_id: str) -> None:
        async with self._read.connect() as conn:
            pools = await agents.pools_of(conn, agent_id)
        for line, segment in pools:
            await self.dispatch(line, segment)

    async def dispatch(self, line: int, segment: str | None) -> None:
        """Hand out a queue in SLA order while its pool has capacity."""
        async with self._assigning:
            self._dispatches += 1
            async with self._read.connect() as conn:
                waiting = await rows.queued(conn, line, segment, DISPATCH_BATCH)
            for ticket_id in waiting:
                state = await load(self._store, ticket_id)
                if not state.active or state.assignee is not None:
                    continue
                if (await self._settle(state)).state.assignee is None:
                    break  # nobody left with capacity in this pool
        await self._hand_out_freed()

    async def _join_conversation(self, state: TicketState, agent_id: str) -> None:
        """The assigned agent becomes a member of the requester's support conversation (once)."""
        if state.conversation_id is None:
            return
        added = MemberAdded(conversation_id=state.conversation_id, user_id=agent_id, added_by=SYSTEM_ACTOR)
        event_id = deterministic_id("support-member", state.conversation_id, agent_id)
        await self._store.append(
            f"conversation-{state.conversation_id}", [NewEvent(added, SYSTEM_ACTOR, event_id)], expected_version=ANY
        )

    async def warn(self, ticket_id: str, clock: Clock, warn_at: datetime) -> None:
        """An SLA warning frame to the assignee and the segment's supervisors, if the clock still runs
        towards the deadline this warning was set for."""
        state = await load(self._store, ticket_id)
        c = state.clocks.get(clock)
        lead = timedelta(seconds=self.policy.warning_lead_seconds)
        if c is None or c.status != "running" or c.due_at - lead != warn_at:
            return
        due_at = c.due_at
        async with self._read.connect() as conn:
            recipients = await agents.supervisors(conn, state.segment)
        if state.assignee is not None:
            recipients.append(state.assignee)
        frame = {
            "type": "ticket",
            "event": "sla_warning",
            "ticket_id": ticket_id,
            "clock": clock,
            "due_at": due_at.isoformat(),
            "line": state.line,
            "segment": state.segment,
            "assignee_id": state.assignee,
        }
        await self._frames.send(sorted(set(recipients)), frame)


def assigned_frame(state: TicketState) -> dict[str, Any]:
    return {
        "type": "ticket",
        "event": "assigned",
        "ticket_id": state.ticket_id,
        "conversation_id": state.conversation_id,
        "line": state.line,
        "segment": state.segment,
        "priority": state.priority,
        "assignee_id": state.assignee,
    }


def _opened_state(ticket_id: str, requester: str) -> TicketState:
    """The state right after TicketOpened, for deciding the first message's link in the same append."""
    state = TicketState(ticket_id, requester_id=requester, status="open")
    return state
