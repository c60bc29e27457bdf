"""The support desk against real processes (`ledgerline gateway`, `projections`, `tickets`, each a
child process, with an embedded NATS of their own), on SQLite and on PostgreSQL:

- opened: tickets/s opened through chat with auto-assignment — N requesters each write their first
  message in their support conversation at once; timed from the first send until every ticket has
  its TicketAssigned in the store (HTTP + relay + broker + tickets worker + its appends);
- sla delay: with BACKLOG open tickets holding SLA timers (one-hour targets), PROBES more tickets
  with a short first-response target; for each, the delay between its deadline (the breach's
  `due_at`) and the moment its TicketEscalated was recorded. Goal: within 1 s at 10,000 open tickets.

The backlog is appended straight to the event store (TicketOpened, as the gateway would), so that
building it does not dominate the run; the worker handles it like any other ticket (clock, row,
timers, assignment attempt).

    .venv/bin/python -m bench.tickets_bench [--tickets N] [--backlog N] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from sqlalchemy import func, select

from bench.service_procs import spawn, stop_all, until_ready
from services.embedded.nats_server import EmbeddedNats
from services.embedded.ports import free_port
from services.tickets.domain.ticket import open_ticket
from services.tickets.tables import timers
from shared.events.envelope import NewEvent
from shared.store.sql import SqlEventStore
from shared.store.tables import events as events_table

SECRET = "tickets-bench-secret-0123456789abcdef"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}
AGENTS = 20
CONCURRENCY = 32
PROBES = 20
PROBE_TARGET_SECONDS = 8  # long enough for the probes to be opened and clocked before their deadline
POLICY = {
    "calendar": "24/7",
    "warning_lead_seconds": 0,
    "targets": {"default": {"first_response": 3600}, "urgent": {"first_response": PROBE_TARGET_SECONDS}},
}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] tickets_bench: {message}", file=sys.stderr, flush=True)


def auth(user: str, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {"sub": user, "name": f"Bench {user}", "roles": ["user"], "iat": now, "exp": now + 3600} | claims
    return {"Authorization": f"Bearer {jwt.encode(body, SECRET, algorithm='HS256')}"}


def agent_auth(user: str) -> dict[str, str]:
    return auth(user, roles=["agent"], segment="customers", lines=[1, 2])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


@asynccontextmanager
async def services(database_url: str, tmp: Path) -> AsyncIterator[tuple[str, str]]:
    """Yields the gateway's URL and the tickets worker's /metrics URL."""
    async with EmbeddedNats(tmp / "nats") as nats:
        port = free_port()
        policy = tmp / "sla.json"
        policy.write_text(json.dumps(POLICY))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
        env |= {
            "LEDGERLINE_DATABASE_URL": database_url,
            "LEDGERLINE_BROKER_URL": nats.url,
            "LEDGERLINE_JWT_SECRET": SECRET,
            "LEDGERLINE_DATA_DIR": str(tmp / "data"),
            "LEDGERLINE_GATEWAY_PORT": str(port),
            "LEDGERLINE_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGERLINE_LOG_LEVEL": "warning",
            "LEDGERLINE_SLA_POLICY_FILE": str(policy),
            "LEDGERLINE_SUPPORT_AGENT_CAPACITY": "1000",
        }
        url = f"http://127.0.0.1:{port}"
        procs = [spawn("gateway", env | {"LEDGERLINE_WORKER_PORT": str(free_port())}, tmp)]
        try:
            await until_ready(f"{url}/readyz", procs[0])
            for service in ("projections", "tickets"):
                worker_port = str(free_port())
                procs.append(spawn(service, env | {"LEDGERLINE_WORKER_PORT": worker_port}, tmp))
                await until_ready(f"http://127.0.0.1:{worker_port}/readyz", procs[-1])
            yield url, f"http://127.0.0.1:{worker_port}/metrics"
        finally:
            stop_all(procs)


async def count_type(store: SqlEventStore, type_: str) -> int:
    async with store.engine.connect() as conn:
        query = select(func.count()).select_from(events_table).where(events_table.c.type == type_)
        return int((await conn.execute(query)).scalar_one())


async def until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def opened_through_chat(http: httpx.AsyncClient, store: SqlEventStore, tickets: int) -> dict[str, Any]:
    for i in range(AGENTS):
        r = await http.post("/v1/support/availability", headers=agent_auth(f"agent{i}"), json={"available": True})
        r.raise_for_status()
    users = [f"req{i}" for i in range(tickets)]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def conversation(user: str) -> str:
        async with gate:
            r = await http.post("/v1/support/conversation", headers=auth(user, segment="customers"), json={})
            r.raise_for_status()
            return str(r.json()["conversation_id"])

    conversations = await asyncio.gather(*(conversation(u) for u in users))
    before = await count_type(store, "TicketAssigned")

    async def first_message(user: str, conversation_id: str) -> None:
        async with gate:
            body = {"client_msg_id": "first", "text": f"Help me, I am {user}"}
            headers = auth(user, segment="customers")
            r = await http.post(f"/v1/conversations/{conversation_id}/messages", headers=headers, json=body)
            r.raise_for_status()

    began = time.perf_counter()
    await asyncio.gather(*(first_message(u, c) for u, c in zip(users, conversations, strict=True)))
    sent = time.perf_counter() - began

    async def all_assigned() -> bool:
        return await count_type(store, "TicketAssigned") - before >= tickets

    await until("every chat ticket assigned", all_assigned, 600)
    seconds = time.perf_counter() - began
    return {"tickets": tickets, "tickets_per_s": round(tickets / seconds, 1), "send_s": round(sent, 2)}


async def worker_idle(metrics_url: str) -> None:
    """Until the tickets worker has no event waiting (its consumer lag is 0 three times in a row): the
    probes then meet a worker busy with nothing but its 10,000 timers."""
    quiet = 0
    async with httpx.AsyncClient(timeout=5) as http:
        while quiet < 3:
            text = (await http.get(metrics_url)).text
            lag = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("ledgerline_worker_consumer_lag{") and 'kind="tickets"' in line
            )
            quiet = quiet + 1 if lag == 0 else 0
            await asyncio.sleep(0.5)


async def sla_delay(store: SqlEventStore, backlog: int, metrics_url: str) -> dict[str, Any]:
    progress(f"backlog of {backlog} open tickets")
    for start in range(0, backlog, 500):  # concurrent appends: the store commits them in groups
        await asyncio.gather(*(backlog_ticket(store, n) for n in range(start, min(backlog, start + 500))))

    async def timers_at_least(n: int) -> bool:
        async with store.engine.connect() as conn:
            query = select(func.count()).select_from(timers).where(timers.c.fired.is_(False))
            return int((await conn.execute(query)).scalar_one()) >= n

    began = time.perf_counter()
    await until("the backlog's timers", lambda: timers_at_least(backlog), 1800)
    await worker_idle(metrics_url)
    progress(f"backlog clocked and handled in {time.perf_counter() - began:.0f} s; {PROBES} probes")
    probes = []
    for n in range(PROBES):
        ticket_id = str(uuid.uuid4())
        [opened] = open_ticket(ticket_id, f"probe{n}", "suppliers", "web_form", f"Probe {n}", "urgent")
        await store.append(f"ticket-{ticket_id}", [NewEvent(opened, f"probe{n}")], expected_version=0)
        probes.append(ticket_id)
    delays = [await escalation_delay(store, ticket_id, PROBE_TARGET_SECONDS + 60) for ticket_id in probes]
    return {
        "open_tickets": backlog + PROBES,
        "delay_p50_s": pct(delays, 0.5),
        "delay_max_s": round(max(delays), 3),
        "within_1s": sum(1 for d in delays if d <= 1.0),
        "probes": len(delays),
    }


async def backlog_ticket(store: SqlEventStore, n: int) -> None:
    """A web-form ticket of a segment nobody serves: it stays open and unassigned, its clock running."""
    ticket_id = str(uuid.uuid4())
    [opened] = open_ticket(ticket_id, f"user{n}", "suppliers", "web_form", f"Backlog {n}", "normal")
    await store.append(f"ticket-{ticket_id}", [NewEvent(opened, f"user{n}")], expected_version=0)


async def escalation_delay(store: SqlEventStore, ticket_id: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = await store.read_stream(f"ticket-{ticket_id}")
        breach = next((r for r in records if r.type == "TicketSlaBreached"), None)
        escalated = next((r for r in records if r.type == "TicketEscalated"), None)
        if breach is not None and escalated is not None:
            due = datetime.fromisoformat(breach.payload["due_at"].replace("Z", "+00:00"))
            return (escalated.recorded_at - due).total_seconds()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"ticket {ticket_id} not escalated within {timeout} s")


async def backend(name: str, database_url: str, tickets: int, backlog: int, tmp: Path) -> dict[str, Any]:
    progress(f"{name}: starting gateway, projections and tickets")
    async with services(database_url, tmp) as (url, tickets_metrics):
        store = await SqlEventStore.open(database_url)
        try:
            limits = httpx.Limits(max_connections=CONCURRENCY + 8, max_keepalive_connections=CONCURRENCY + 8)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                progress(f"{name}: {tickets} chat tickets")
                result: dict[str, Any] = {"opened": await opened_through_chat(http, store, tickets)}
                result["sla"] = await sla_delay(store, backlog, tickets_metrics)
        finally:
            await store.close()
    progress(f"{name}: {result}")
    return result


async def run(tickets: int = 500, backlog: int = 10_000, only: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tickets-bench-") as tmp:
        if only in (None, "sqlite"):
            (Path(tmp) / "sqlite").mkdir()
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'sqlite' / 'bench.db'}"
            results["sqlite"] = await backend("sqlite", url, tickets, backlog, Path(tmp) / "sqlite")
        if only in (None, "postgres"):
            name = f"ledgerline_ticketsbench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                (Path(tmp) / "pg").mkdir()
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                results["postgres"] = await backend("postgres", url, tickets, backlog, Path(tmp) / "pg")
            finally:
                with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.tickets, args.backlog, args.only)), indent=2))


if __name__ == "__main__":
    main()
