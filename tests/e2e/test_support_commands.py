"""Manual work on tickets through HTTP: escalation up to line 3 (and a supervisor's de-escalation),
tickets from web forms and e-mail integrations, status, priority, notes, tags, CSAT, bulk actions,
and who may do what (a caller who may not see a ticket gets 404)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import chat_support
import pytest
import pytest_asyncio
from tickets_support import Desk, desk_on

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(params=["sqlite", "postgres"], loop_scope="module")
async def desk(request: pytest.FixtureRequest, embedded_nats: str, tmp_path: Path) -> AsyncIterator[Desk]:
    async with desk_on(request.param, embedded_nats, tmp_path) as d:
        d.person("sara", ["supervisor"], "customers")
        yield d


async def _web_ticket(desk: Desk, user: str, subject: str = "Form: refund", **fields: Any) -> dict[str, Any]:
    r = await desk.post("/v1/tickets", user, {"subject": subject, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_manual_escalation_goes_up_to_line_3_and_a_supervisor_brings_it_down(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    await desk.agent("lena", "customers", [2])
    await desk.agent("igor", None, [3])  # an engineer: line 3 serves every segment
    desk.customer("carl")
    ticket = (await _web_ticket(desk, "carl"))["ticket_id"]
    assert await desk.assignee(ticket) == "ann"

    r = await desk.post(f"/v1/tickets/{ticket}/escalate", "ann", {"reason": "needs billing rights"})
    assert r.status_code == 200, r.text
    assert (r.json()["line"], r.json()["assignee_id"]) == (2, None)
    assert await desk.assignee(ticket) == "lena"
    r = await desk.post(f"/v1/tickets/{ticket}/escalate", "lena", {"reason": "a bug"})
    assert r.json()["line"] == 3
    assert await desk.assignee(ticket) == "igor"
    r = await desk.post(f"/v1/tickets/{ticket}/escalate", "igor", {"reason": "higher?"})
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM

    r = await desk.post(f"/v1/tickets/{ticket}/escalate", "igor", {"to_line": 1})
    assert r.status_code == 422  # only a supervisor de-escalates
    r = await desk.post(f"/v1/tickets/{ticket}/escalate", "sara", {"to_line": 1, "reason": "fixed, explain it"})
    assert r.status_code == 200, r.text
    escalations = [e.payload for e in await desk.ticket_events(ticket) if e.type == "TicketEscalated"]
    assert [(e["from_line"], e["to_line"], e["reason"], e["by"]) for e in escalations] == [
        (1, 2, "manual", "ann"),
        (2, 3, "manual", "lena"),
        (3, 1, "de_escalation", "sara"),
    ]
    assert escalations[0]["comment"] == "needs billing rights"


async def test_bulk_resolve_of_100_tickets_with_one_invalid(desk: Desk) -> None:
    desk.customer("carl")
    tickets = [(await _web_ticket(desk, "carl", f"Form {i}"))["ticket_id"] for i in range(100)]
    unknown = str(uuid.uuid4())
    body = {"ticket_ids": [*tickets[:50], unknown, *tickets[50:]], "action": "status", "status": "resolved"}

    r = await desk.post("/v1/tickets/bulk", "sara", body)

    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["succeeded"], answer["failed"]) == (100, 1)
    failed = [i for i in answer["results"] if not i["ok"]]
    assert [(i["ticket_id"], i["status"]) for i in failed] == [(unknown, 404)]
    resolved = [e for e in await desk.events("TicketStatusChanged") if e.payload["to_status"] == "resolved"]
    assert sorted(e.payload["ticket_id"] for e in resolved) == sorted(tickets)  # one event per ticket
    assert len({e.stream_id for e in resolved}) == 100


async def test_bulk_is_for_supervisors_and_checks_its_action_fields(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    desk.customer("carl")
    ticket = (await _web_ticket(desk, "carl"))["ticket_id"]
    r = await desk.post("/v1/tickets/bulk", "ann", {"ticket_ids": [ticket], "action": "status", "status": "closed"})
    assert r.status_code == 403
    r = await desk.post("/v1/tickets/bulk", "sara", {"ticket_ids": [ticket], "action": "status"})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert [e for e in await desk.ticket_events(ticket) if e.type == "TicketStatusChanged"] == []


async def test_priority_notes_tags_and_csat(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    desk.customer("carl")
    ticket = (await _web_ticket(desk, "carl", channel="email", priority="low"))["ticket_id"]
    await desk.assignee(ticket)

    r = await desk.post(f"/v1/tickets/{ticket}/priority", "ann", {"priority": "urgent"})
    assert r.json()["priority"] == "urgent"
    r = await desk.post(f"/v1/tickets/{ticket}/notes", "ann", {"text": "Customer is upset, call back"})
    assert r.status_code == 201, r.text
    note_id = r.json()["note_id"]
    r = await desk.post(f"/v1/tickets/{ticket}/tags", "ann", {"tags": ["billing", "vip"]})
    assert r.json()["tags"] == ["billing", "vip"]
    r = await desk.post(f"/v1/tickets/{ticket}/tags", "ann", {"tags": ["vip"]})
    assert r.json()["tags"] == ["vip"]

    r = await desk.post(f"/v1/tickets/{ticket}/notes", "carl", {"text": "I am the requester"})
    assert r.status_code == 403  # notes are internal
    r = await desk.post(f"/v1/tickets/{ticket}/rating", "carl", {"score": 5})
    assert r.status_code == 409  # not resolved yet
    await desk.post(f"/v1/tickets/{ticket}/status", "ann", {"status": "resolved"})
    r = await desk.post(f"/v1/tickets/{ticket}/rating", "ann", {"score": 5})
    assert r.status_code == 403  # only the requester rates
    r = await desk.post(f"/v1/tickets/{ticket}/rating", "carl", {"score": 6})
    assert r.status_code == 422
    r = await desk.post(f"/v1/tickets/{ticket}/rating", "carl", {"score": 4, "comment": "Quick, thanks"})
    assert r.status_code == 200, r.text
    assert r.json()["rated"] is True
    r = await desk.post(f"/v1/tickets/{ticket}/rating", "carl", {"score": 1})
    assert r.status_code == 409  # once

    events = await desk.ticket_events(ticket)
    by_type = {e.type: e.payload for e in events}
    assert by_type["TicketPriorityChanged"]["to_priority"] == "urgent"
    assert by_type["TicketNoteAdded"]["note_id"] == note_id
    assert by_type["TicketRated"]["score"] == 4
    tagged = [(e.payload["added"], e.payload["removed"]) for e in events if e.type == "TicketTagged"]
    assert tagged == [(["billing", "vip"], []), ([], ["billing"])]


async def test_a_caller_who_may_not_see_a_ticket_gets_404(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    await desk.agent("sue", "suppliers", [1])
    desk.customer("carl")
    desk.customer("mallory")
    ticket = (await _web_ticket(desk, "carl"))["ticket_id"]
    for user in ("sue", "mallory"):  # another segment's agent; another user
        r = await desk.post(f"/v1/tickets/{ticket}/status", user, {"status": "closed"})
        assert r.status_code == 404, user
        assert r.headers["content-type"] == PROBLEM
    r = await desk.post(f"/v1/tickets/{ticket}/assign", "ann", {"agent_id": "sue"})
    assert r.status_code == 403  # an agent takes tickets, a supervisor assigns them
    r = await desk.post(f"/v1/tickets/{ticket}/assign", "sara", {"agent_id": "ann"})
    assert r.status_code == 200 and r.json()["assignee_id"] == "ann"
    r = await desk.post(f"/v1/tickets/{uuid.uuid4()}/notes", "ann", {"text": "x"})
    assert r.status_code == 404


async def test_bad_input_is_a_problem_and_changes_nothing(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    desk.customer("carl")
    ticket = (await _web_ticket(desk, "carl"))["ticket_id"]
    await desk.assignee(ticket)  # the worker's part (clock, assignment) is done
    before = len(await desk.ticket_events(ticket))
    cases = [
        ("/v1/tickets", {"subject": ""}),
        ("/v1/tickets", {"subject": "chat?", "channel": "chat"}),
        ("/v1/tickets", {"subject": "x", "priority": "asap"}),
        (f"/v1/tickets/{ticket}/status", {"status": "done"}),
        (f"/v1/tickets/{ticket}/status", {"status": "reopened"}),
        (f"/v1/tickets/{ticket}/tags", {"tags": ["x" * 65]}),
        (f"/v1/tickets/{ticket}/notes", {"text": "   "}),
        (f"/v1/tickets/{ticket}/escalate", {"to_line": 4}),
        ("/v1/support/availability", {"available": "yes"}),
    ]
    for path, body in cases:
        user = "carl" if path == "/v1/tickets" else "ann"
        r = await desk.post(path, user, body)
        assert r.status_code in (409, 422), (path, body, r.status_code)
        assert r.headers["content-type"] == PROBLEM
        assert "Traceback" not in r.text
    assert len(await desk.ticket_events(ticket)) == before


async def test_an_integration_opens_tickets_for_requesters_once_per_client_id(desk: Desk) -> None:
    await desk.agent("ann", "customers", [1])
    await desk.agent("sue", "suppliers", [1])
    desk.person("mailbot", ["admin"])
    body = {"subject": "Re: tender 17", "channel": "email", "requester_id": "sam", "segment": "suppliers"}
    first = await desk.post("/v1/tickets", "mailbot", {**body, "client_ticket_id": "<msg-1@mail>"})
    again = await desk.post("/v1/tickets", "mailbot", {**body, "client_ticket_id": "<msg-1@mail>"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["ticket_id"] == again.json()["ticket_id"]
    assert (first.json()["channel"], first.json()["segment"], first.json()["line"]) == ("email", "suppliers", 1)
    assert await desk.assignee(first.json()["ticket_id"]) == "sue"
    desk.customer("carl")
    r = await desk.post("/v1/tickets", "carl", {**body, "client_ticket_id": "x"})
    assert r.status_code == 403  # a user opens tickets for themselves only
