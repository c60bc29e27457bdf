"""The support read model's per-ticket fold (services/projections/support_state.py), pure: the facts
the metrics and queues read, event by event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.projections.support_state import TicketRecord, apply
from shared.events import tickets as ev

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def opened() -> TicketRecord:
    e = ev.TicketOpened(
        ticket_id="t", requester_id="u", segment="customers", channel="chat", subject="s", priority="high", line=1
    )
    return TicketRecord.opened(e, T0)


def fold(r: TicketRecord, *steps: tuple[int, object]) -> TicketRecord:
    for n, (minutes, event) in enumerate(steps, start=r.version + 1):
        apply(r, event, at(minutes), n)  # type: ignore[arg-type]
    return r


def status(a: str, b: str, by: str = "a1") -> ev.TicketStatusChanged:
    return ev.TicketStatusChanged(ticket_id="t", from_status=a, to_status=b, by=by)  # type: ignore[arg-type]


def reply(author: str, seq: int) -> ev.TicketMessageLinked:
    return ev.TicketMessageLinked(
        ticket_id="t", conversation_id="c", message_id=f"m{seq}", seq=seq, author_id=author, public=True
    )


def test_replies_waiting_and_the_first_response() -> None:
    r = fold(opened(), (1, reply("ledgerline:support", 1)), (2, reply("u", 2)), (5, reply("a1", 3)), (7, reply("u", 4)))
    assert (r.first_response_at, r.first_response_by, r.agent_replies) == (at(5), "a1", 1)  # the bot is no reply
    assert r.waiting_since == at(7)  # the requester wrote after the last agent reply


def test_pending_periods_before_the_first_resolution_only() -> None:
    r = fold(
        opened(),
        (10, status("open", "pending")),
        (30, status("pending", "open", "u")),
        (40, status("open", "pending")),
        (50, status("pending", "resolved")),  # resolved while pending: the period ends at the resolve
        (60, status("resolved", "reopened", "u")),
        (70, status("reopened", "pending")),
        (80, status("pending", "resolved")),
    )
    assert r.pending_periods == [[at(10).isoformat(), at(30).isoformat()], [at(40).isoformat(), at(50).isoformat()]]
    assert (r.first_resolved_at, r.resolved_at, r.first_reopened_at, r.reopen_count) == (at(50), at(80), at(60), 1)


def test_the_handling_agent_is_frozen_at_the_first_resolution_and_escalation_clears_the_assignee() -> None:
    assigned = ev.TicketAssigned(ticket_id="t", agent_id="a1", line=1, assigned_by="sup")
    escalated = ev.TicketEscalated(ticket_id="t", from_line=1, to_line=2, reason="manual", by="a1")
    r = fold(opened(), (1, assigned), (2, escalated))
    assert (r.line, r.assignee_id, r.handler_id) == (2, None, None)
    r = fold(r, (3, ev.TicketAssigned(ticket_id="t", agent_id="e1", line=2, assigned_by="sup")))
    r = fold(r, (4, status("open", "resolved", "e1")), (5, ev.TicketUnassigned(
        ticket_id="t", agent_id="e1", unassigned_by="sup", reason="manual")))  # fmt: skip
    assert (r.assignee_id, r.handler_id, r.replies_at_resolve) == (None, "e1", 0)


def test_the_next_due_time_follows_running_and_breached_clocks() -> None:
    def started(clock: str, due: int) -> ev.TicketSlaClockStarted:
        return ev.TicketSlaClockStarted(ticket_id="t", clock=clock, target_seconds=60, due_at=at(due))  # type: ignore[arg-type]

    r = fold(opened(), (0, started("first_response", 15)), (0, started("resolution", 240)))
    assert (r.next_due_at, r.next_due_clock) == (at(15), "first_response")
    r = fold(r, (15, ev.TicketSlaBreached(ticket_id="t", clock="first_response", due_at=at(15))))
    assert (r.next_due_at, r.next_due_clock) == (at(15), "first_response")  # breached: still overdue
    r = fold(r, (20, ev.TicketSlaClockFulfilled(ticket_id="t", clock="first_response", elapsed_seconds=1200)))
    assert (r.next_due_at, r.next_due_clock) == (at(240), "resolution")
    r = fold(r, (30, ev.TicketSlaClockPaused(ticket_id="t", clock="resolution", remaining_seconds=100)))
    assert (r.next_due_at, r.next_due_clock) == (None, None)
    r = fold(r, (40, ev.TicketSlaClockResumed(ticket_id="t", clock="resolution", due_at=at(300))))
    assert r.next_due_at == at(300) and r.clocks["resolution"]["state"] == "running"
