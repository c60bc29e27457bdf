"""The support desk's pure decisions: SLA clocks on a business calendar, the breach, assignment and
the ticket's rules — due times and choices a support manager can check by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.gateway.errors import Conflict, Invalid
from services.tickets.domain import clocks
from services.tickets.domain import ticket as decide
from services.tickets.domain.assignment import AgentLoad, pick_agent
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.sla import SlaPolicy
from services.tickets.domain.state import TicketState, apply
from shared.events.base import Event
from shared.events.tickets import TicketMessageLinked, TicketStatusChanged

MSK = ZoneInfo("Europe/Moscow")
WORKDAY = ((time(9), time(13)), (time(14), time(18)))
OFFICE = BusinessCalendar(MSK, {d: WORKDAY for d in range(5)}, frozenset({date(2027, 1, 4)}))
HOUR = 3600


def policy(calendar: BusinessCalendar = OFFICE, **targets: int | None) -> SlaPolicy:
    entry = {"first_response": HOUR, "next_response": None, "resolution": None} | targets
    return SlaPolicy(calendar, 300, {"default": entry})  # type: ignore[dict-item]


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, minute, tzinfo=MSK).astimezone(UTC)


def opened(at: datetime, requester: str = "carl") -> TicketState:
    state = TicketState("t-1")
    for event in decide.open_ticket("t-1", requester, "customers", "chat", "Help", "normal", "c-1"):
        apply(state, event, at)
    return state


def fold(state: TicketState, events: list[Event], at: datetime) -> TicketState:
    for event in events:
        apply(state, event, at)
    return state


def status(state: TicketState, to: str, at: datetime) -> TicketState:
    return fold(state, decide.change_status(state, to, "ann"), at)


def link(state: TicketState, author: str, at: datetime, n: int) -> TicketState:
    return fold(state, decide.link_message(state, "c-1", f"m-{n}", n, author, "system:tickets"), at)


def test_first_response_clock_runs_on_business_time_from_the_opening() -> None:
    state = opened(msk(1, 17, 30))  # a Friday; Monday 4 Jan is a holiday
    [started] = clocks.reconcile(state, policy())
    assert started.event.type == "TicketSlaClockStarted"
    assert started.event.due_at == msk(5, 9, 30)  # type: ignore[attr-defined]
    assert started.at == msk(1, 17, 30)  # the clock event carries the fact's time
    assert clocks.reconcile(state, policy()) == []  # decided once: nothing more to say


def test_pending_pauses_with_the_business_time_left_and_the_reply_resumes_it() -> None:
    p = policy()
    state = opened(msk(5, 10, 0))
    clocks.reconcile(state, p)  # due 11:00
    status(state, "pending", msk(5, 10, 20))
    [paused] = clocks.reconcile(state, p)
    assert paused.event.type == "TicketSlaClockPaused"
    assert paused.event.remaining_seconds == 40 * 60  # type: ignore[attr-defined]
    link(state, "carl", msk(5, 16, 0), 2)  # the requester answers in the afternoon: back to open
    assert state.status == "open"
    [resumed] = clocks.reconcile(state, p)
    assert resumed.event.type == "TicketSlaClockResumed"
    assert resumed.event.due_at == msk(5, 16, 40)  # type: ignore[attr-defined]


def test_a_clock_paused_past_due_stays_past_due() -> None:
    p = policy(BusinessCalendar.twenty_four_seven())
    state = opened(msk(5, 10, 0))
    clocks.reconcile(state, p)  # due 11:00
    status(state, "pending", msk(5, 11, 30))
    [paused] = clocks.reconcile(state, p)
    assert paused.event.remaining_seconds == -30 * 60  # type: ignore[attr-defined]
    status(state, "open", msk(5, 12, 0))
    [resumed] = clocks.reconcile(state, p)
    assert resumed.event.due_at == msk(5, 11, 30)  # type: ignore[attr-defined]


def test_the_first_agent_reply_fulfils_first_response_and_a_later_question_starts_next_response() -> None:
    p = policy(BusinessCalendar.twenty_four_seven(), next_response=2 * HOUR)
    state = opened(msk(5, 10, 0))
    link(state, "carl", msk(5, 10, 0), 1)
    clocks.reconcile(state, p)
    link(state, "ann", msk(5, 10, 25), 2)
    [fulfilled] = clocks.reconcile(state, p)
    assert (fulfilled.event.clock, fulfilled.event.elapsed_seconds) == ("first_response", 25 * 60)  # type: ignore[attr-defined]
    link(state, "carl", msk(5, 11, 0), 3)
    [started] = clocks.reconcile(state, p)
    assert (started.event.clock, started.event.due_at) == ("next_response", msk(5, 13, 0))  # type: ignore[attr-defined]
    link(state, "ann", msk(5, 11, 5), 4)
    [answered] = clocks.reconcile(state, p)
    assert (answered.event.type, answered.event.clock) == ("TicketSlaClockFulfilled", "next_response")  # type: ignore[attr-defined]


def test_breach_escalates_to_the_next_line_once_with_ids_from_the_deadline() -> None:
    p = policy(BusinessCalendar.twenty_four_seven())
    state = opened(msk(5, 10, 0))
    clocks.reconcile(state, p)
    assert clocks.breach(state, "first_response", msk(5, 10, 59), "system:tickets") == []  # not due yet
    twin = opened(msk(5, 10, 0))
    clocks.reconcile(twin, p)

    steps = clocks.breach(state, "first_response", msk(5, 11, 0), "system:tickets")
    again = clocks.breach(twin, "first_response", msk(5, 11, 3), "system:tickets")  # another process, later

    assert [s.event.type for s in steps] == ["TicketSlaBreached", "TicketEscalated"]
    assert steps[1].event.to_line == 2 and steps[1].event.reason == "sla_first_response"  # type: ignore[attr-defined]
    assert [s.event_id for s in steps] == [s.event_id for s in again]  # the store keeps one of each
    assert clocks.breach(state, "first_response", msk(5, 12, 0), "system:tickets") == []  # breached stays breached
    assert state.line == 2 and state.assignee is None


def test_least_loaded_agent_wins_and_ties_go_round_robin() -> None:
    def agent(name: str, load: int, last: int, segment: str = "customers", lines: tuple[int, ...] = (1,)) -> AgentLoad:
        return AgentLoad(name, segment, lines, True, load, last)

    pool = [agent("ann", 2, 1), agent("bob", 1, 5), agent("cid", 1, 3), agent("sue", 0, 0, "suppliers")]
    assert pick_agent(pool, 1, "customers", capacity=5) == "cid"  # bob and cid tie on load; cid waited longer
    assert pick_agent(pool, 1, "suppliers", capacity=5) == "sue"
    assert pick_agent(pool, 1, "customers", capacity=1) is None  # everyone is full
    assert pick_agent(pool, 2, "customers", capacity=5) is None  # nobody serves line 2
    engineer = AgentLoad("igor", None, (3,), True, 0, 0)
    assert pick_agent([engineer], 3, "suppliers", capacity=5) == "igor"  # line 3 serves every segment
    away = AgentLoad("amy", "customers", (1,), False, 0, 0)
    assert pick_agent([away], 1, "customers", capacity=5) is None


def test_status_rules() -> None:
    state = opened(msk(5, 10, 0))
    with pytest.raises(Conflict):
        decide.change_status(state, "reopened", "ann")
    status(state, "resolved", msk(5, 11, 0))
    with pytest.raises(Conflict):
        decide.change_status(state, "pending", "ann")
    assert [e.to_status for e in decide.change_status(state, "reopened", "ann")] == ["reopened"]  # type: ignore[attr-defined]
    with pytest.raises(Invalid):
        decide.escalate(opened(msk(5, 10, 0)), "ann", 0, None, may_lower=True)


def test_a_requester_message_reopens_a_resolved_ticket_and_an_agent_message_does_not() -> None:
    state = opened(msk(5, 10, 0))
    status(state, "resolved", msk(5, 11, 0))
    assert decide.link_message(state, "c-1", "m-9", 9, "ann", "system:tickets") == []
    events = decide.link_message(state, "c-1", "m-9", 9, "carl", "system:tickets")
    assert [type(e) for e in events] == [TicketStatusChanged, TicketMessageLinked]
    fold(state, events, msk(5, 12, 0))
    assert state.status == "reopened" and state.active_since == msk(5, 12, 0)
    assert decide.link_message(state, "c-1", "m-9", 9, "carl", "system:tickets") == []  # linked once


def test_tags_become_exactly_the_given_set() -> None:
    state = opened(msk(5, 10, 0))
    fold(state, decide.set_tags(state, ["a", "b"], "ann"), msk(5, 10, 1))
    [tagged] = decide.set_tags(state, ["b", "c"], "ann")
    assert (tagged.added, tagged.removed) == (("c",), ("a",))  # type: ignore[attr-defined]
    fold(state, [tagged], msk(5, 10, 2))
    assert decide.set_tags(state, ["c", "b"], "ann") == []


def test_a_ticket_clock_never_starts_without_a_target() -> None:
    state = opened(msk(5, 10, 0))
    assert clocks.reconcile(state, policy(first_response=None)) == []
