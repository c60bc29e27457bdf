"""The SLA timer loop: fire what is due in tk_timers, exactly once in effect.

Every POLL_SECONDS (at once while there is a backlog) each tickets process claims due, unfired
timers, oldest first: a short transaction sets `claimed_until` (a lease of CLAIM_SECONDS) on rows
that nobody holds (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two processes take different rows;
SQLite has one writer at a time). The claim is committed before the timers fire, because firing
rewrites the ticket's timer rows. A process that dies holding a claim leaves it to expire: another
process (or this one, restarted) fires the timer then. Firing twice is harmless: the breach's events
have ids derived from (ticket, clock, due time) and are decided on the ticket's stream, where the
first firing already shows. Rows survive restarts, so a deadline that passed while no tickets
process ran fires as soon as one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.tickets.desk import Desk
from services.tickets.tables import timers
from shared.events.tickets import Clock
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

# How late a timer may fire at worst (plus its handling): the goal is within a second of the deadline.
POLL_SECONDS = 0.1
BATCH = 200
# Timers of different tickets fired at once: a burst of deadlines is not served one append at a time.
FIRE_CONCURRENCY = 16
# Long enough to fire a batch; a dead process's timers wait this long for another one.
CLAIM_SECONDS = 30.0


class TimerLoop:
    def __init__(self, engine: AsyncEngine, desk: Desk, metrics: MetricsRegistry, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._desk = desk
        self._now = now
        self._skip_locked = engine.dialect.name == "postgresql"
        self._fired = metrics.counter("tickets_timers_fired", "SLA timers fired, by kind", ["kind"])
        self._late = metrics.histogram("tickets_timer_delay_seconds", "From a timer's due time to its firing")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                fired = await self.fire_due()
            except Exception as e:  # the loop outlives a failed round (database restart, …): rows stay due
                log.warning("timer_round_failed", error=repr(e))
                fired = 0
            if fired < BATCH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):  # not wait_for: it can swallow a cancel (3.11)
                        await stop.wait()

    async def fire_due(self) -> int:
        """Claim and fire the due timers (up to BATCH); how many were claimed."""
        now = self._now()
        claimed = await self._claim(now)
        gate = asyncio.Semaphore(FIRE_CONCURRENCY)

        async def fire(ticket_id: str, clock: Clock, kind: str, due_at: datetime) -> None:
            async with gate:
                await self._fire(ticket_id, clock, kind, due_at, now)

        await asyncio.gather(*(fire(*timer) for timer in claimed))
        return len(claimed)

    async def _claim(self, now: datetime) -> list[tuple[str, Clock, str, datetime]]:
        query = (
            select(timers.c.ticket_id, timers.c.clock, timers.c.kind, timers.c.due_at)
            .where(
                timers.c.fired.is_(False),
                timers.c.due_at <= now,
                or_(timers.c.claimed_until.is_(None), timers.c.claimed_until < now),
            )
            .order_by(timers.c.due_at)
            .limit(BATCH)
        )
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        until = now + timedelta(seconds=CLAIM_SECONDS)
        async with self._engine.begin() as conn:
            due = (await conn.execute(query)).all()
            for r in due:
                await conn.execute(
                    update(timers)
                    .where(timers.c.ticket_id == r.ticket_id, timers.c.clock == r.clock, timers.c.kind == r.kind)
                    .values(claimed_until=until)
                )
        return [(r.ticket_id, cast(Clock, r.clock), r.kind, r.due_at) for r in due]

    async def _fire(self, ticket_id: str, clock: Clock, kind: str, due_at: datetime, now: datetime) -> None:
        try:
            if kind == "breach":
                await self._desk.breach(ticket_id, clock, now)
            else:
                await self._desk.warn(ticket_id, clock, due_at)
        except Exception as e:  # one ticket's failure must not hold the others: its claim expires, it fires again
            log.warning("timer_failed", ticket_id=ticket_id, clock=clock, kind=kind, error=repr(e))
            return
        self._fired.labels(kind).inc()
        self._late.observe(max(0.0, (now - due_at).total_seconds()))
        async with self._engine.begin() as conn:
            await conn.execute(
                update(timers)
                .where(
                    timers.c.ticket_id == ticket_id,
                    timers.c.clock == clock,
                    timers.c.kind == kind,
                    timers.c.due_at == due_at,
                )
                .values(fired=True)
            )
