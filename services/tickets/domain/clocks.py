"""SLA clocks as events (pure, no I/O): what the ticket's facts call for that its clock events do not
say yet, and the breach when a timer fires.

Each clock event carries the business time of the fact that caused it (a clock starts when the
ticket opened, pauses when it went pending, ...), not the time the worker noticed: the worker's lag
never moves a due time, and a replay of the stream gives the same answer. Event ids derive from
(ticket, clock, that time), so a second worker or a redelivery deciding the same thing appends
nothing new.

Rules: first_response runs from opening until the first agent reply; next_response from a requester
message that follows an agent reply until the next agent reply; resolution from opening (or reopening)
until resolved or closed. Every running clock pauses while the ticket is pending and resumes when it
leaves pending. A breached clock stays breached (it does not restart on the new line).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.tickets.domain.sla import SlaPolicy
from services.tickets.domain.state import ClockState, TicketState, apply
from shared.events.base import Event
from shared.events.ids import deterministic_id
from shared.events.tickets import (
    Clock,
    TicketEscalated,
    TicketSlaBreached,
    TicketSlaClockFulfilled,
    TicketSlaClockPaused,
    TicketSlaClockResumed,
    TicketSlaClockStarted,
)

CLOCKS: tuple[Clock, ...] = ("first_response", "next_response", "resolution")
TOP_LINE = 3
# Enough for every rule to fire once per clock; more would mean two rules undo each other (a bug).
MAX_STEPS = 16


@dataclass(frozen=True, slots=True)
class Timed:
    """An event to append, with its business time (occurred_at) and its deterministic id."""

    event: Event
    at: datetime
    event_id: uuid.UUID


def reconcile(state: TicketState, policy: SlaPolicy) -> list[Timed]:
    """The clock events to append now; `state` is left with them applied."""
    out: list[Timed] = []
    for _ in range(MAX_STEPS):
        step = _next_step(state, policy)
        if step is None:
            return out
        apply(state, step.event, step.at)
        out.append(step)
    raise RuntimeError(f"SLA clocks of ticket {state.ticket_id} did not settle")


def breach(state: TicketState, clock: Clock, now: datetime, by: str) -> list[Timed]:
    """TicketSlaBreached (and TicketEscalated to the next line, for first response and resolution)
    when `clock` is running and due by `now`; nothing otherwise (answered, paused, breached already)."""
    c = state.clocks.get(clock)
    if c is None or c.status != "running" or c.due_at > now or not state.active:
        return []
    key = (state.ticket_id, clock, c.due_at.isoformat())
    out = [Timed(TicketSlaBreached(ticket_id=state.ticket_id, clock=clock, due_at=c.due_at), c.due_at, _id("b", *key))]
    if clock != "next_response" and state.line < TOP_LINE:
        reason = "sla_first_response" if clock == "first_response" else "sla_resolution"
        escalated = TicketEscalated(
            ticket_id=state.ticket_id, from_line=state.line, to_line=state.line + 1, reason=reason, by=by
        )
        out.append(Timed(escalated, c.due_at, _id("e", *key)))
    for step in out:
        apply(state, step.event, step.at)
    return out


def signed_remaining(policy: SlaPolicy, at: datetime, due_at: datetime) -> int:
    """Business seconds from `at` to `due_at`; negative when `at` is past due."""
    if at <= due_at:
        return round(policy.calendar.seconds_between(at, due_at))
    return -round(policy.calendar.seconds_between(due_at, at))


def _next_step(state: TicketState, policy: SlaPolicy) -> Timed | None:
    return _fulfil(state, policy) or _start(state, policy) or _pause_or_resume(state, policy)


def _fulfil(state: TicketState, policy: SlaPolicy) -> Timed | None:
    done: dict[Clock, datetime | None] = {
        "first_response": state.first_reply_at,
        "next_response": state.last_reply_at if state.waiting_since is None else None,
        "resolution": state.status_since if state.status in ("resolved", "closed") else None,
    }
    for clock, at in done.items():
        c = state.clocks.get(clock)
        if at is None or c is None or c.status not in ("running", "paused") or at < c.started_at:
            continue
        left = c.remaining if c.status == "paused" else signed_remaining(policy, at, c.due_at)
        fulfilled = TicketSlaClockFulfilled(
            ticket_id=state.ticket_id, clock=clock, elapsed_seconds=max(0, c.target - left)
        )
        return Timed(fulfilled, at, _id("f", state.ticket_id, clock, at.isoformat()))
    return None


def _start(state: TicketState, policy: SlaPolicy) -> Timed | None:
    if not state.active or state.opened_at is None or state.active_since is None:
        return None
    targets = policy.targets_for(state.priority, state.line)
    wanted: dict[Clock, datetime | None] = {
        "first_response": state.opened_at if state.first_reply_at is None else None,
        "next_response": state.waiting_since,
        "resolution": state.active_since,
    }
    for clock, since in wanted.items():
        target = targets.of(clock)
        c = state.clocks.get(clock)
        if since is None or target is None or (c is not None and c.started_at >= since):
            continue
        if c is not None and c.status in ("running", "paused"):
            continue
        due = policy.calendar.add(since, target)
        started = TicketSlaClockStarted(ticket_id=state.ticket_id, clock=clock, target_seconds=target, due_at=due)
        return Timed(started, since, _id("s", state.ticket_id, clock, since.isoformat()))
    return None


def _pause_or_resume(state: TicketState, policy: SlaPolicy) -> Timed | None:
    at = state.status_since
    if at is None:
        return None
    pending = state.status == "pending"
    for clock in CLOCKS:
        c = state.clocks.get(clock)
        if c is None:
            continue
        if pending and c.status == "running":
            remaining = signed_remaining(policy, at, c.due_at)
            paused = TicketSlaClockPaused(ticket_id=state.ticket_id, clock=clock, remaining_seconds=remaining)
            return Timed(paused, at, _id("p", state.ticket_id, clock, at.isoformat()))
        if not pending and state.active and c.status == "paused":
            return Timed(_resumed(state, policy, clock, c, at), at, _id("r", state.ticket_id, clock, at.isoformat()))
    return None


def _resumed(state: TicketState, policy: SlaPolicy, clock: Clock, c: ClockState, at: datetime) -> Event:
    # A clock paused past due stays past due by as much as it was.
    due = policy.calendar.add(at, c.remaining) if c.remaining > 0 else at + timedelta(seconds=c.remaining)
    return TicketSlaClockResumed(ticket_id=state.ticket_id, clock=clock, due_at=due)


def _id(kind: str, *parts: str) -> uuid.UUID:
    return deterministic_id("ticket-clock", kind, *parts)
