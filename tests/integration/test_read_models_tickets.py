"""The support read models on SQLite and PostgreSQL: real ticket and chat events appended through the
store, applied by the projector, read back as the gateway reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import test_read_models_support as support
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection
from test_read_models_support import Env
from ticket_writer import Desk

from services.projections import support as support_projection
from services.projections import support_queries as q
from services.projections.rebuild import rebuild
from services.projections.support_queries import Scope
from services.projections.tables import TABLES
from shared.events.envelope import NewEvent
from shared.events.tickets import TicketAssigned

env = support.env
SUPPORT_TABLES = ("rm_tickets", "rm_ticket_events")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


async def _dump(conn: AsyncConnection) -> dict[str, list[tuple[str, ...]]]:
    out = {}
    for table in SUPPORT_TABLES:
        rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
        out[table] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


async def _conversation(env: Env, desk: Desk) -> None:
    """T1 from a support conversation: the requester writes, agent a1 replies, a note, a rating."""
    conv = "support-u1"
    await env.start(conv, "support", ["u1", "ledgerline:support", "a1"])
    await desk.open("T1", "u1", minutes(0), subject="Printer on fire")
    await desk.message("T1", "u1", minutes(0), seq=await env.send(conv, "u1", "my printer is on fire"))
    await desk.assign("T1", "a1", minutes(1))
    await desk.note("T1", "a1", "customer sounds calm, probably fine", minutes(2))
    await desk.message("T1", "a1", minutes(3), seq=await env.send(conv, "a1", "please unplug it"))
    await desk.to("T1", "resolved", minutes(4), "a1")
    await desk.rate("T1", 5, minutes(5), comment="quick")


async def test_agents_see_the_whole_history_and_the_requester_only_public_replies(env: Env) -> None:
    desk = Desk(env.store)
    await _conversation(env, desk)
    await env.project()
    async with env.engine.connect() as conn:
        row = await q.ticket_row(conn, "T1")
        assert row is not None
        full = await q.detail(conn, row)
        mine = await q.requester_view(conn, row)
    types = [h.type for h in full.history]
    assert types == [
        "TicketOpened",
        "TicketMessageLinked",
        "TicketAssigned",
        "TicketNoteAdded",
        "TicketMessageLinked",
        "TicketStatusChanged",
        "TicketRated",
    ]
    assert [h.text for h in full.history if h.type == "TicketMessageLinked"] == [
        "my printer is on fire",
        "please unplug it",
    ]
    assert full.history[3].data["text"] == "customer sounds calm, probably fine"
    assert (full.ticket.status, full.ticket.assignee_id, full.rating, full.agent_replies) == ("resolved", "a1", 5, 1)

    assert [(r.author_id, r.from_requester, r.text) for r in mine.replies] == [
        ("u1", True, "my printer is on fire"),
        ("a1", False, "please unplug it"),
    ]
    assert (mine.status, mine.line, mine.rating, mine.subject) == ("resolved", 1, 5, "Printer on fire")
    shown = repr(mine)
    assert "calm" not in shown and "assignee" not in shown and "clocks" not in shown


async def test_queues_are_in_sla_order_with_due_and_waiting_times(env: Env) -> None:
    desk = Desk(env.store)
    await desk.open("late", "u1", minutes(0))
    await desk.clock("late", "first_response", minutes(30), minutes(0))
    await desk.open("soon", "u2", minutes(10))
    await desk.clock("soon", "first_response", minutes(70), minutes(10))
    await desk.open("answered", "u3", minutes(5))
    await desk.clock("answered", "first_response", minutes(20), minutes(5))
    await desk.message("answered", "a1", minutes(15))
    await desk.fulfilled("answered", "first_response", minutes(15))
    await desk.open("paused", "u4", minutes(1))
    await desk.clock("paused", "first_response", minutes(10), minutes(1))
    await desk.to("paused", "pending", minutes(2), "a1")
    await desk.paused("paused", "first_response", minutes(2))
    await desk.open("supplier", "s1", minutes(0), segment="suppliers")
    await desk.open("done", "u5", minutes(0))
    await desk.to("done", "resolved", minutes(1), "a1")
    await env.project()
    now = minutes(60)
    async with env.engine.connect() as conn:
        queues = await q.queues(conn, None, now)
        line_two_only = await q.queues(conn, Scope("e1", (2,), "customers"), now)
        engineers = await q.queues(conn, Scope("e3", (3,), None), now)
    assert [(x.line, x.segment) for x in queues] == [(n, s) for n in (1, 2, 3) for s in ("customers", "suppliers")]
    customers = queues[0].tickets
    assert [t.ticket_id for t in customers] == ["late", "soon", "paused", "answered"]
    late, soon, paused, answered = customers
    assert (late.due_at, late.due_clock, late.overdue, late.waiting_seconds) == (
        minutes(30),
        "first_response",
        True,
        3600.0,
    )
    assert (soon.due_at, soon.overdue, soon.waiting_seconds) == (minutes(70), False, 3000.0)
    assert (paused.due_at, paused.waiting_since) == (None, None)  # the desk waits on the requester
    assert (answered.due_at, answered.waiting_since) == (None, None)
    assert [t.ticket_id for t in queues[1].tickets] == ["supplier"]
    assert [(x.line, x.segment, x.tickets) for x in line_two_only] == [(2, "customers", [])]
    assert [(x.line, x.segment, x.tickets) for x in engineers] == [(3, "customers", []), (3, "suppliers", [])]


async def test_ticket_list_filters_and_agent_scope(env: Env) -> None:
    desk = Desk(env.store)
    await desk.open("c1", "u1", minutes(0))
    await desk.open("s1", "u2", minutes(1), segment="suppliers")
    await desk.open("c2", "u3", minutes(2))
    await desk.escalate("c2", 2, minutes(3))
    await desk.assign("c2", "e1", minutes(4))
    await desk.to("c1", "pending", minutes(5), "a1")
    await desk.open("s3", "u4", minutes(6), segment="suppliers")
    await desk.escalate("s3", 3, minutes(7))
    await env.project()
    async with env.engine.connect() as conn:
        everything = await q.tickets(conn, None)
        pending = await q.tickets(conn, None, status="pending")
        suppliers = await q.tickets(conn, None, segment="suppliers")
        line_one_customers = await q.tickets(conn, Scope("a1", (1,), "customers"))
        engineer = await q.tickets(conn, Scope("e1", (3,), None))
        no_segment = await q.tickets(conn, Scope("a9", (1, 2), None))
        by_assignee = await q.tickets(conn, None, assignee="e1", line=2)
    ids = [[t.ticket_id for t in answer] for answer in (everything, pending, suppliers)]
    assert ids == [["s3", "c2", "s1", "c1"], ["c1"], ["s3", "s1"]]
    assert [t.ticket_id for t in line_one_customers] == ["c1"]
    assert [t.ticket_id for t in engineer] == ["s3", "c2"]  # line 3: every segment; c2: assigned to them
    assert no_segment == []  # lines 1 and 2 serve one segment: a token without one sees none
    assert [(t.ticket_id, t.line) for t in by_assignee] == [("c2", 2)]


async def test_redelivery_and_replayed_slices_change_nothing(env: Env) -> None:
    desk = Desk(env.store)
    await _conversation(env, desk)
    await desk.open("T2", "u2", minutes(0))
    await desk.message("T2", "a2", minutes(9))
    await env.project(page=4)
    async with env.engine.connect() as conn:
        before = await _dump(conn)
    everything = await env.store.read_all(0, 1000)
    await env.projector.apply(everything)  # the broker redelivers: the checkpoints skip it all
    async with env.engine.begin() as conn:  # a replayed slice without checkpoints: the row versions skip it
        await support_projection.apply(conn, TABLES, everything[3:])
        after = await _dump(conn)
        row = await q.ticket_row(conn, "T2")
    assert after == before
    assert row is not None and row.agent_replies == 1 and row.first_response_at == minutes(9)


async def test_an_event_of_an_unknown_ticket_is_skipped_and_the_rest_applied(env: Env) -> None:
    event = TicketAssigned(ticket_id="ghost", agent_id="a1", line=1, assigned_by="sup")
    await env.store.append("ticket-ghost", [NewEvent(event, "sup")])
    await Desk(env.store).open("real", "u1", minutes(0))
    await env.project()
    async with env.engine.connect() as conn:
        assert await q.ticket_row(conn, "ghost") is None
        assert await q.ticket_row(conn, "real") is not None


def _columns(sync_conn: Any) -> dict[str, list[str]]:
    inspector = inspect(sync_conn)
    return {t: [c["name"] for c in inspector.get_columns(t)] for t in SUPPORT_TABLES}


async def test_rebuild_gives_identical_support_rows(env: Env) -> None:
    desk = Desk(env.store)
    await _conversation(env, desk)
    await desk.open("T2", "u2", minutes(0))
    await desk.clock("T2", "resolution", minutes(90), minutes(0))
    await desk.to("T2", "pending", minutes(10), "a1")
    await env.project(page=3)
    async with env.engine.connect() as conn:
        before, columns_before = await _dump(conn), await conn.run_sync(_columns)
    await rebuild(env.engine, env.store, ["support"], partitions=16)
    async with env.engine.connect() as conn:
        after, columns_after = await _dump(conn), await conn.run_sync(_columns)
    assert after == before and columns_after == columns_before
    assert len(after["rm_ticket_events"]) == 10
