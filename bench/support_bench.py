"""The support read model on SQLite and PostgreSQL: projection throughput of ticket events, the
rebuild of the `support` projection, and the latency of the metrics (a 30-day period, 24/7 and a
business calendar) and of the queues.

Tickets are spread over 30 days, 8 events each (opened, assigned, clock started, requester message,
agent reply, clock fulfilled, resolved, rated); every tenth stays open (in the queues).

    .venv/bin/python -m bench.support_bench [--tickets N] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from services.projections.projector import Projector
from services.projections.rebuild import rebuild
from services.projections.support_metrics import Period, metrics
from services.projections.support_queries import queues
from services.tickets.domain.calendar import BusinessCalendar
from shared.events import tickets as ev
from shared.events.envelope import NewEvent
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}
BATCH = 256  # the worker runtime's batch size
START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 30
OFFICE = BusinessCalendar(
    timezone=ZoneInfo("Europe/Moscow"),
    hours={d: ((time(9), time(18)),) for d in range(5)},
)


def _events(i: int, at: datetime) -> list[NewEvent]:
    t, user = f"b{i:06}", f"u{i % 500}"

    def new(event: Any, minutes: int) -> NewEvent:
        return NewEvent(event, "system:tickets", occurred_at=at + timedelta(minutes=minutes))

    conv = f"conv-{user}"
    out = [
        new(
            ev.TicketOpened(
                ticket_id=t,
                conversation_id=conv,
                requester_id=user,
                segment="customers",
                channel="chat",
                subject="bench",
                priority="normal",
                line=1,
            ),
            0,
        ),
        new(ev.TicketAssigned(ticket_id=t, agent_id=f"a{i % 20}", line=1, assigned_by="system:tickets"), 1),
        new(
            ev.TicketSlaClockStarted(
                ticket_id=t, clock="resolution", target_seconds=86400, due_at=at + timedelta(days=1)
            ),
            1,
        ),
        new(
            ev.TicketMessageLinked(
                ticket_id=t, conversation_id=conv, message_id=str(uuid.uuid4()), seq=1, author_id=user, public=True
            ),
            2,
        ),
        new(
            ev.TicketMessageLinked(
                ticket_id=t,
                conversation_id=conv,
                message_id=str(uuid.uuid4()),
                seq=2,
                author_id=f"a{i % 20}",
                public=True,
            ),
            10 + i % 50,
        ),
    ]
    if i % 10:
        out += [
            new(ev.TicketSlaClockFulfilled(ticket_id=t, clock="resolution", elapsed_seconds=60), 90),
            new(ev.TicketStatusChanged(ticket_id=t, from_status="open", to_status="resolved", by="a1"), 90),
            new(ev.TicketRated(ticket_id=t, score=1 + i % 5, by=user), 120),
        ]
    return out


async def _timed(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    """Median milliseconds of `runs` calls."""
    times = []
    for _ in range(runs):
        started = perf_counter()
        await fn()
        times.append((perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


async def backend(url: str, tickets: int) -> dict[str, Any]:
    migrate(url)
    store = await SqlEventStore.open(url)
    engine = create_engine(url, pool_size=2)
    try:
        step = timedelta(days=DAYS) / tickets
        for i in range(tickets):
            await store.append(f"ticket-b{i:06}", _events(i, START + i * step))
        head = (await store.head()).position
        projector, after, started = Projector(engine, projections=("support",)), 0, perf_counter()
        while page := await store.read_all(after, BATCH):
            await projector.apply(page)
            after = page[-1].position
        projected = perf_counter() - started
        started = perf_counter()
        await rebuild(engine, store, ["support"], partitions=16)
        rebuilt = perf_counter() - started
        period, now = Period(START, START + timedelta(days=DAYS)), datetime.now(UTC)
        async with engine.connect() as conn:
            flat = await _timed(lambda: metrics(conn, period, BusinessCalendar.twenty_four_seven(), 604800, now))
            office = await _timed(lambda: metrics(conn, period, OFFICE, 604800, now))
            queue = await _timed(lambda: queues(conn, None, now))
        return {
            "events": head,
            "project_events_per_s": round(head / projected),
            "rebuild_s": round(rebuilt, 2),
            "metrics_30d_24x7_ms": flat,
            "metrics_30d_office_ms": office,
            "queues_ms": queue,
        }
    finally:
        await store.close()
        await engine.dispose()


async def run(tickets: int = 2000, only: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="support-bench-") as tmp:
        if only in (None, "sqlite"):
            results["sqlite"] = await backend(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", tickets)
        if only in (None, "postgres"):
            name = f"ledgerline_supportbench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                results["postgres"] = await backend(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", tickets)
            finally:
                with psycopg.connect(**PG_ADMIN) as conn:  # type: ignore[arg-type]
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    for name, figures in asyncio.run(run(args.tickets, args.only)).items():
        print(name, "  ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
