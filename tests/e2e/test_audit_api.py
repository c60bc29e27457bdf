"""The audit API through HTTP on the real gateway and projections worker (both databases): auditors
only (everyone else gets the 404 of a path that does not exist), filters with keyset paging, replay,
streamed exports that parse back to the records queried, and every audit call recorded as an event."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import chat_support
import orjson
import pytest
from chat_support import ChatStack, token
from sqlalchemy import text

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures
PROBLEM = "application/problem+json"
AUDITOR = "audrey"


def as_auditor(user: str = AUDITOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, roles=['auditor'])}"}


async def audit_get(s: ChatStack, path: str, **params: Any) -> Any:
    r = await s.http.get(path, params=params, headers=as_auditor())
    assert r.status_code == 200, r.text
    return r


async def caught_up(s: ChatStack) -> int:
    """Wait until the audit read model holds everything appended so far; returns that head."""
    head = await s.head()
    engine = s.app.state.gateway.engine
    for _ in range(300):
        async with engine.connect() as conn:
            done = (await conn.execute(text("SELECT coalesce(max(position), 0) FROM rm_audit_events"))).scalar_one()
        if done >= head:
            return head
        await asyncio.sleep(0.05)
    raise AssertionError(f"the audit read model did not reach {head}")


async def conversation_with_history(s: ChatStack) -> str:
    c = await s.conversation("alice", "group", ["bob", "carol"], title="Tender 12")
    first = await s.send("alice", c, "Offer: 100")
    await s.send("bob", c, "Counter: 90")
    await s.call("PATCH", f"/v1/conversations/{c}/messages/{first['message_id']}", "alice", json={"text": "Offer: 95"})
    await s.call("POST", f"/v1/conversations/{c}/read", "carol", json={"up_to_seq": 2})
    await s.call("DELETE", f"/v1/conversations/{c}/members/carol", "carol")
    return c


async def test_non_auditors_get_404_on_every_audit_endpoint(stack: ChatStack) -> None:
    c = await conversation_with_history(stack)
    paths = [
        "/v1/audit/events",
        f"/v1/audit/events?conversation_id={c}&limit=5",
        "/v1/audit/events?limit=0",  # even bad input does not reveal the endpoint
        f"/v1/audit/conversations/{c}/replay",
        "/v1/audit/export?format=csv",
        "/v1/audit/verify",
    ]
    unknown = await stack.call("GET", "/v1/audit/no-such-thing", "mallory")
    for roles in (["user"], ["admin"], ["agent", "supervisor"], []):
        headers = {"Authorization": f"Bearer {token('mallory', roles=roles)}"}
        for path in paths:
            r = await stack.http.get(path, headers=headers)
            assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, (roles, path)
            assert r.json() == unknown.json(), (roles, path)
    assert await stack.app.state.store.read_stream("audit") == []  # no audit query happened


async def test_every_audit_call_is_recorded_and_visible_in_the_trail(stack: ChatStack) -> None:
    c = await conversation_with_history(stack)
    await caught_up(stack)
    await audit_get(stack, "/v1/audit/events", conversation_id=c, limit=3)
    await audit_get(stack, f"/v1/audit/conversations/{c}/replay")
    exported = await audit_get(stack, "/v1/audit/export", conversation_id=c, format="csv")
    await audit_get(stack, "/v1/audit/verify")

    recorded = [e for e in await stack.app.state.store.read_stream("audit") if e.payload["auditor_id"] == AUDITOR]
    assert [(e.actor, e.payload["action"]) for e in recorded] == [
        (AUDITOR, "query"),
        (AUDITOR, "replay"),
        (AUDITOR, "export"),
        (AUDITOR, "verify"),
    ]
    query, replay, export, verify = (e.payload for e in recorded)
    assert query["filters"] == {"conversation_id": c, "after_position": 0, "limit": 3} and query["record_count"] == 3
    assert replay["filters"]["conversation_id"] == c and replay["record_count"] == 2
    assert export["filters"] == {"conversation_id": c, "format": "csv"}
    assert export["record_count"] == len(exported.text.splitlines()) - 1  # the header
    assert verify["record_count"] >= recorded[-1].position - 1

    metrics = (await stack.http.get("/metrics")).text
    for action in ("query", "replay", "export", "verify"):
        assert f'ledgerline_audit_queries_total{{action="{action}"}}' in metrics

    await caught_up(stack)
    trail = (await audit_get(stack, "/v1/audit/events", type="AuditQueried", user_id=AUDITOR, limit=1000)).json()
    seen = [(e["position"], e["actor"]) for e in trail["events"]]
    assert all((e.position, AUDITOR) in seen for e in recorded)
    assert any("ran export" in e["summary"] for e in trail["events"])


async def test_events_filters_and_keyset_paging(stack: ChatStack) -> None:
    c = await conversation_with_history(stack)
    await caught_up(stack)
    stored = [e.position for e in await stack.app.state.store.read_stream(f"conversation-{c}")]

    pages, after = [], 0
    while True:
        body = (await audit_get(stack, "/v1/audit/events", conversation_id=c, after_position=after, limit=2)).json()
        pages.append([e["position"] for e in body["events"]])
        if body["next_after_position"] is None:
            break
        after = body["next_after_position"]
    assert [p for page in pages for p in page] == stored and all(len(p) <= 2 for p in pages)

    sent = (await audit_get(stack, "/v1/audit/events", conversation_id=c, type="MessageSent")).json()["events"]
    assert [e["payload"]["text"] for e in sent] == ["Offer: 100", "Counter: 90"]
    assert [e["actor"] for e in sent] == ["alice", "bob"] and "alice sent message #1" in sent[0]["summary"]
    carol = (await audit_get(stack, "/v1/audit/events", conversation_id=c, user_id="carol")).json()["events"]
    assert [e["type"] for e in carol] == ["ConversationStarted", "Read", "MemberRemoved"]
    middle = sent[1]["recorded_at"]
    before = (await audit_get(stack, "/v1/audit/events", conversation_id=c, to=middle)).json()["events"]
    since = (await audit_get(stack, "/v1/audit/events", **{"conversation_id": c, "from": middle})).json()["events"]
    assert [e["position"] for e in before + since] == stored and since[0]["position"] == sent[1]["position"]
    assert all(len(e["hash"]) == 64 for e in sent)
    # A position past 64 bits is a 422 naming it, not a 500 from the database (found by schemathesis).
    for huge in (2**63, 108319026645735795851264):
        bad = await stack.http.get(f"/v1/audit/events?after_position={huge}", headers=as_auditor())
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM and "after_position" in bad.text


async def test_replay_endpoint_shows_the_conversation_at_a_moment(stack: ChatStack) -> None:
    c = await conversation_with_history(stack)
    await caught_up(stack)
    events = (await audit_get(stack, "/v1/audit/events", conversation_id=c)).json()["events"]
    edited_at = next(e["recorded_at"] for e in events if e["type"] == "MessageEdited")
    before_edit = next(e["recorded_at"] for e in events if e["position"] == events[2]["position"])

    then = (await audit_get(stack, f"/v1/audit/conversations/{c}/replay", as_of=before_edit)).json()
    now = (await audit_get(stack, f"/v1/audit/conversations/{c}/replay")).json()
    assert [m["text"] for m in then["messages"]] == ["Offer: 100", "Counter: 90"]
    assert then["members"] == ["alice", "bob", "carol"] and then["messages"][0]["read_by"] == ["bob"]  # by replying
    assert [m["text"] for m in now["messages"]] == ["Offer: 95", "Counter: 90"]
    assert now["messages"][0]["edited_at"] == edited_at
    assert now["members"] == ["alice", "bob"] and now["messages"][0]["read_by"] == ["bob", "carol"]

    missing = await stack.http.get("/v1/audit/conversations/nope/replay", headers=as_auditor())
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    bad = await stack.http.get(f"/v1/audit/conversations/{c}/replay?as_of=yesterday", headers=as_auditor())
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM and "Traceback" not in bad.text


async def test_exports_parse_back_to_exactly_the_records_queried(stack: ChatStack) -> None:
    c = await conversation_with_history(stack)
    await caught_up(stack)
    queried = (await audit_get(stack, "/v1/audit/events", conversation_id=c, limit=1000)).json()["events"]

    jsonl = await audit_get(stack, "/v1/audit/export", conversation_id=c)
    assert jsonl.headers["content-type"].startswith("application/jsonl")
    assert [orjson.loads(line) for line in jsonl.content.splitlines()] == queried

    as_csv = await audit_get(stack, "/v1/audit/export", conversation_id=c, format="csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [{**r, "payload": orjson.loads(r["payload"])} for r in rows] == [
        {k: ("" if v is None else str(v)) if k != "payload" else v for k, v in e.items()} for e in queried
    ]
    bad = await stack.http.get("/v1/audit/export?format=xml", headers=as_auditor())
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    # A bare number is not read as Unix time: the document promises ISO 8601 (found by schemathesis).
    for query in ("to=342", "from=1733100000", "from=-5.5"):
        bad = await stack.http.get(f"/v1/audit/export?{query}", headers=as_auditor())
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM, query
        assert "ISO 8601" in bad.text, bad.text
