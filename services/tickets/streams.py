"""Ticket streams against the event store: fold the stream, decide, append at the folded version.

Optimistic concurrency: the append's `expected_version` is the folded version. When another writer
(the gateway's command, the worker's clock or assignment, a second worker) appended first, the
stream is folded again and the decision taken again on what it now holds. Decisions are functions of
the state, so deciding twice never doubles an effect; deterministic event ids make a retried append
of the same fact answer the stored one.
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.gateway.errors import Conflict
from services.tickets.domain.clocks import Timed
from services.tickets.domain.state import TicketState, apply
from services.tickets.domain.ticket import stream_id
from shared.events.base import Event
from shared.events.envelope import NewEvent
from shared.events.ids import deterministic_id
from shared.store.port import EventIdConflict, EventStore, WrongExpectedVersion

# A ticket stream has a handful of writers at most (an agent, a supervisor, the worker): past this
# many conflicts in a row the caller is better told than kept waiting.
MAX_ATTEMPTS = 10
RETRY_PAUSE_SECONDS = 0.005

Decide = Callable[[TicketState], Sequence[Timed]]


@dataclass(frozen=True, slots=True)
class Outcome:
    state: TicketState  # with the appended events applied
    appended: tuple[Timed, ...]
    position: int  # the last appended event's position; 0 when nothing was appended


async def load(store: EventStore, ticket_id: str) -> TicketState:
    state = TicketState(ticket_id)
    for record in await store.read_stream(stream_id(ticket_id)):
        apply(state, record.event, record.occurred_at)
        state.version = record.stream_version
    return state


async def execute(
    store: EventStore, ticket_id: str, actor: str, decide: Decide, *, first: TicketState | None = None
) -> Outcome:
    """Fold, decide, append; again on a version conflict. Domain errors from `decide` pass through.
    `first`: a state the caller has just folded, used for the first attempt instead of a read."""
    for attempt in range(MAX_ATTEMPTS):
        state = first if first is not None and attempt == 0 else await load(store, ticket_id)
        version = state.version
        steps = tuple(decide(copy.deepcopy(state)))  # a decision may fold its own events as it goes
        if not steps:
            return Outcome(state, (), 0)
        events = [NewEvent(s.event, actor, s.event_id, occurred_at=s.at) for s in steps]
        try:
            result = await store.append(stream_id(ticket_id), events, expected_version=version)
        except (WrongExpectedVersion, EventIdConflict):
            await asyncio.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * 2**attempt))
            continue
        if result.first_version != version + 1:
            continue  # the store answered an earlier append of these ids: decide again on what it holds
        for step in steps:
            apply(state, step.event, step.at)
        state.version = result.last_version
        return Outcome(state, steps, result.last_position)
    raise Conflict(f"ticket {ticket_id!r} kept changing; retry the request")


def now_steps(events: Sequence[Event], at: datetime) -> list[Timed]:
    """A command's events, at `at`, with fresh ids (a command's retry is decided again on the state)."""
    return [Timed(e, at, uuid.uuid4()) for e in events]


def fixed_steps(events: Sequence[Event], at: datetime, *key: str) -> list[Timed]:
    """Events whose ids derive from `key` (one per event, by index): a retried fact appends once."""
    return [Timed(e, at, deterministic_id("ticket-fact", *key, e.type, str(i))) for i, e in enumerate(events)]
