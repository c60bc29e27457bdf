"""The support desk's GET endpoints over HTTP with real tokens, on SQLite and PostgreSQL: the ticket
events are appended through the store (the write side is another service's), the real projections
worker applies them, and agents, supervisors, the requester and strangers each get what they may
see. Bad input gets problem+json."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import chat_support
import pytest
from chat_support import ChatStack, token

from services.projections import queries
from shared.events import tickets as ev
from shared.events.envelope import NewEvent
from shared.events.partition import partition_of

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures
PROBLEM = "application/problem+json"
NOTE = "internal: requester sounds upset, offer a discount"
AGENT = {"roles": ["agent"], "lines": [1], "segment": "customers"}
ENGINEER = {"roles": ["agent"], "lines": [3]}
SUPERVISOR = {"roles": ["supervisor"]}


def bearer(user: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, **claims)}"}


async def _append(s: ChatStack, ticket: str, *events: Any) -> None:
    """Append through the gateway's store, then wait (bounded) until the support projection has it."""
    stream = f"ticket-{ticket}"
    result = await s.app.state.store.append(stream, [NewEvent(e, "system:tickets") for e in events])
    position, partition = result.last_position, partition_of(stream, chat_support.PARTITIONS)
    deadline = time.monotonic() + 30
    while True:
        async with s.app.state.gateway.engine.connect() as conn:
            if await queries.checkpoint(conn, "support", partition) >= position:
                return
        assert time.monotonic() < deadline, "the support projection did not catch up"
        await asyncio.sleep(0.05)


async def _ticket(s: ChatStack) -> tuple[str, str]:
    """u1 writes, agent a1 answers in their conversation; the ticket links both messages and has a note."""
    conv = await s.conversation("u1", "group", ["a1"], title="Support")
    question = await s.send("u1", conv, "the invoice export fails")
    answer = await s.send("a1", conv, "fixed, please retry")
    ticket = "tk-1"

    def link(m: dict[str, Any], author: str) -> ev.TicketMessageLinked:
        return ev.TicketMessageLinked(
            ticket_id=ticket,
            conversation_id=conv,
            message_id=m["message_id"],
            seq=m["seq"],
            author_id=author,
            public=True,
        )

    await _append(
        s,
        ticket,
        ev.TicketOpened(
            ticket_id=ticket,
            conversation_id=conv,
            requester_id="u1",
            segment="customers",
            channel="chat",
            subject="Invoice export",
            priority="high",
            line=1,
        ),
        link(question, "u1"),
        ev.TicketAssigned(ticket_id=ticket, agent_id="a1", line=1, assigned_by="system:tickets"),
        ev.TicketNoteAdded(ticket_id=ticket, note_id="n1", author_id="a1", text=NOTE),
        link(answer, "a1"),
    )
    return ticket, conv


async def test_agent_and_supervisor_see_the_history_requester_only_public_replies_others_404(s: ChatStack) -> None:
    ticket, _ = await _ticket(s)
    for headers in (bearer("a1", **AGENT), bearer("boss", **SUPERVISOR)):
        r = await s.http.get(f"/v1/tickets/{ticket}", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [h["type"] for h in body["history"]][:4] == [
            "TicketOpened",
            "TicketMessageLinked",
            "TicketAssigned",
            "TicketNoteAdded",
        ]
        assert body["history"][3]["data"]["text"] == NOTE
        assert body["history"][4]["text"] == "fixed, please retry"
        assert body["ticket"]["assignee_id"] == "a1"

    mine = await s.http.get(f"/v1/tickets/{ticket}", headers=bearer("u1"))
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "open" and mine.json()["line"] == 1
    assert [(x["author_id"], x["text"]) for x in mine.json()["replies"]] == [
        ("u1", "the invoice export fails"),
        ("a1", "fixed, please retry"),
    ]
    assert "discount" not in mine.text and "assignee" not in mine.text and "history" not in mine.text

    for headers in (bearer("mallory"), bearer("e3", **ENGINEER)):
        r = await s.http.get(f"/v1/tickets/{ticket}", headers=headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, r.text
        assert "discount" not in r.text
    missing = await s.http.get("/v1/tickets/no-such-ticket", headers=bearer("boss", **SUPERVISOR))
    assert missing.status_code == 404


async def test_lists_and_queues_for_the_desk_only(s: ChatStack) -> None:
    ticket, _ = await _ticket(s)
    listed = await s.http.get("/v1/tickets?line=1&status=open", headers=bearer("a1", **AGENT))
    assert [t["ticket_id"] for t in listed.json()] == [ticket]
    assert (await s.http.get("/v1/tickets?line=2", headers=bearer("a1", **AGENT))).json() == []
    assert (await s.http.get("/v1/tickets", headers=bearer("e3", **ENGINEER))).json() == []
    queues = await s.http.get("/v1/support/queues", headers=bearer("boss", **SUPERVISOR))
    assert queues.status_code == 200, queues.text
    first = queues.json()[0]
    assert (first["line"], first["segment"], [t["ticket_id"] for t in first["tickets"]]) == (1, "customers", [ticket])
    assert first["tickets"][0]["waiting_since"] is None  # a1 answered last
    metrics = "/v1/support/metrics?from=2026-01-01T00:00Z&to=2026-02-01T00:00Z"
    for path in ("/v1/tickets", "/v1/support/queues", metrics):
        r = await s.http.get(path, headers=bearer("u1"))
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, path


async def test_metrics_for_supervisors_and_an_agent_s_own_with_clear_errors(s: ChatStack) -> None:
    await _ticket(s)
    period = "from=2000-01-01T00:00:00Z&to=2000-12-31T00:00:00Z"
    r = await s.http.get(f"/v1/support/metrics?{period}", headers=bearer("boss", **SUPERVISOR))
    assert r.status_code == 200, r.text
    assert r.json()["opened"] == 0 and r.json()["overdue_backlog"]["open"] == 1
    today = f"from={_day(-1)}&to={_day(+1)}"
    own = await s.http.get(f"/v1/support/metrics?{today}&agent=a1", headers=bearer("a1", **AGENT))
    assert own.status_code == 200, own.text
    assert own.json()["opened"] == 1 and own.json()["first_response"]["count"] == 1
    other = await s.http.get(f"/v1/support/metrics?{today}&agent=a2", headers=bearer("a1", **AGENT))
    assert other.status_code == 403
    bad = {
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z": "to",
        "from=2026-01-01T00:00:00&to=2026-02-01T00:00:00Z": "from",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z": "to",
        f"{period}&segment=aliens": "segment",
        f"{period}&line=4": "line",
        "to=2026-01-01T00:00:00Z": "from",
    }
    for query, field in bad.items():
        r = await s.http.get(f"/v1/support/metrics?{query}", headers=bearer("boss", **SUPERVISOR))
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, query
        assert field in r.text and "Traceback" not in r.text, r.text


def _day(offset: int) -> str:
    return time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + offset * 86400))


@pytest.fixture
def s(stack: ChatStack) -> ChatStack:
    return stack
