"""SLA clocks through the real stack: a 2-second first-response target that nobody meets breaches
exactly once and escalates to line 2 exactly once — also when the tickets worker is killed before
the deadline and started again after it; a pending ticket's clock is paused and resumes on the
requester's reply; a warning reaches the assignee's socket before the breach."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import chat_support
import pytest
import pytest_asyncio
from helpers.processes import wait_until
from tickets_support import Desk, desk_on, fast_sla

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats
# After the escalation, long enough for several timer rounds (0.1 s) and redeliveries to add a
# second breach if they were going to.
SETTLE_SECONDS = 1.5


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(loop_scope="module")
async def desk(backend: str, embedded_nats: str, tmp_path: Path) -> AsyncIterator[Desk]:
    async with desk_on(backend, embedded_nats, tmp_path, sla=fast_sla(2)) as d:
        yield d


async def _open(desk: Desk, user: str, text: str) -> str:
    desk.customer(user)
    conversation_id = await desk.support_conversation(user)
    await desk.say(user, conversation_id, text)
    return await desk.ticket_of(conversation_id)


async def _types(desk: Desk, ticket_id: str, *types: str) -> list[dict[str, object]]:
    return [e.payload for e in await desk.ticket_events(ticket_id) if e.type in types]


async def _escalated(desk: Desk, ticket_id: str) -> list[dict[str, object]]:
    return await _types(desk, ticket_id, "TicketEscalated")


async def test_unanswered_first_response_breaches_once_and_escalates_to_line_2(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    await desk.agent("lena", "customers", [2])
    ticket = await _open(desk, "carl", "Nothing works")
    assert await desk.first_assignee(ticket) == "ann"

    await desk.wait_for("the escalation", lambda: _escalated(desk, ticket))
    await asyncio.sleep(SETTLE_SECONDS)

    breached = await _types(desk, ticket, "TicketSlaBreached")
    escalated = await _escalated(desk, ticket)
    assert [b["clock"] for b in breached] == ["first_response"]
    assert [(e["from_line"], e["to_line"], e["reason"]) for e in escalated] == [(1, 2, "sla_first_response")]
    assert await desk.assignee(ticket) == "lena"  # line 2's pool takes it
    # One breach appended, one counted, on the line it breached (1), not the line it escalated to.
    breaches = desk.tickets_metrics.registry.get_sample_value
    assert breaches("ledgerline_tickets_sla_breaches_total", {"line": "1", "clock": "first_response"}) == 1
    assert breaches("ledgerline_tickets_sla_breaches_total", {"line": "2", "clock": "first_response"}) is None


async def test_pending_pauses_the_clock_and_the_reply_resumes_it(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    desk.customer("carl")
    conversation_id = await desk.support_conversation("carl")
    await desk.say("carl", conversation_id, "Where is my order?")
    ticket = await desk.ticket_of(conversation_id)
    await desk.assignee(ticket)
    r = await desk.post(f"/v1/tickets/{ticket}/status", "ann", {"status": "pending"})
    assert r.status_code == 200, r.text

    await desk.wait_for("the pause", lambda: _types(desk, ticket, "TicketSlaClockPaused"))
    await asyncio.sleep(2.5)  # past the 2-second target, had the clock kept running
    assert await _types(desk, ticket, "TicketSlaBreached") == []

    await desk.say("carl", conversation_id, "Order 42")
    resumed = await desk.wait_for("the resume", lambda: _types(desk, ticket, "TicketSlaClockResumed"))
    assert [r["clock"] for r in resumed] == ["first_response"]
    changes = await _types(desk, ticket, "TicketStatusChanged")
    assert [(c["from_status"], c["to_status"]) for c in changes] == [("open", "pending"), ("pending", "open")]
    # Running again, unanswered: it breaches now.
    await desk.wait_for("the breach after resuming", lambda: _types(desk, ticket, "TicketSlaBreached"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_breach_happens_once_when_the_worker_is_killed_and_restarted_around_the_deadline(
    backend: str, embedded_nats: str, tmp_path: Path
) -> None:
    async with desk_on(backend, embedded_nats, tmp_path, sla=fast_sla(4), worker=False) as desk:
        await desk.agent("ann", "customers", [1])
        await desk.agent("lena", "customers", [2])
        first = desk.tickets_process(tmp_path, "tickets-1")
        try:
            await wait_until(lambda: first.printed("worker ready"), 30, "the worker", [first])
            ticket = await _open(desk, "carl", "Still broken")
            [started] = await desk.wait_for("the clock", lambda: _types(desk, ticket, "TicketSlaClockStarted"))
            first.kill()  # SIGKILL before the deadline: nothing is cleaned up
        finally:
            first.kill()
        assert await _escalated(desk, ticket) == []
        due = datetime.fromisoformat(str(started["due_at"]))
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)  # passes with no worker
        second = desk.tickets_process(tmp_path, "tickets-2")
        try:
            await wait_until(lambda: second.printed("worker ready"), 30, "the restarted worker", [second])
            await desk.wait_for("the escalation", lambda: _escalated(desk, ticket))
            await asyncio.sleep(SETTLE_SECONDS)
            breached = await _types(desk, ticket, "TicketSlaBreached")
            escalated = await _escalated(desk, ticket)
        finally:
            second.stop()
    assert len(breached) == 1
    assert [(e["from_line"], e["to_line"], e["reason"]) for e in escalated] == [(1, 2, "sla_first_response")]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_two_workers_at_the_deadline_breach_once(backend: str, embedded_nats: str, tmp_path: Path) -> None:
    async with desk_on(backend, embedded_nats, tmp_path, sla=fast_sla(2), worker=False) as desk:
        await desk.agent("lena", "customers", [2])
        one, two = desk.tickets_process(tmp_path, "tickets-a"), desk.tickets_process(tmp_path, "tickets-b")
        try:
            await wait_until(
                lambda: one.printed("worker ready") and two.printed("worker ready"), 30, "workers", [one, two]
            )
            ticket = await _open(desk, "carl", "Help")
            await desk.wait_for("the escalation", lambda: _escalated(desk, ticket))
            await asyncio.sleep(SETTLE_SECONDS)
            breached = await _types(desk, ticket, "TicketSlaBreached")
            escalated = await _escalated(desk, ticket)
        finally:
            one.stop()
            two.stop()
    assert len(breached) == 1
    assert len(escalated) == 1


async def test_a_warning_reaches_the_assignee_before_the_breach(
    backend: str, embedded_nats: str, tmp_path: Path
) -> None:
    async with desk_on(backend, embedded_nats, tmp_path, sla=fast_sla(3, warning=2)) as desk:
        await desk.agent("ann", "customers", [1])
        async with desk.socket("ann") as ann:
            ticket = await _open(desk, "carl", "Slow site")
            assigned = await ann.next("ticket", event="assigned")
            assert assigned["ticket_id"] == ticket
            warning = await ann.next("ticket", event="sla_warning", timeout=15)
        assert warning["ticket_id"] == ticket
        assert warning["clock"] == "first_response"
        breached = await desk.wait_for("the breach", lambda: _types(desk, ticket, "TicketSlaBreached"))
        # The warning was for this very deadline.
        assert datetime.fromisoformat(str(breached[0]["due_at"])) == datetime.fromisoformat(warning["due_at"])
