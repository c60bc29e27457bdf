"""Support metrics over a period [from, to) (docs/support-metrics.md defines every figure exactly).

Rows are selected in SQL by the period and the filters, and the figures computed here, because the
business-hours values need the SLA calendar's arithmetic (services/tickets/domain/calendar.py),
which is not SQL. A ticket counts for its current line, its segment and its handling agent
(rm_tickets.handler_id; docs/decisions/0006-support-metrics-attribution.md).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.support_state import ACTIVE
from services.projections.support_views import Backlog, Csat, Durations, Ratio, SupportMetrics
from services.projections.tables import TABLES
from services.tickets.domain.calendar import BusinessCalendar

_t = TABLES.support.tickets
SATISFIED = 4  # CSAT counts ratings of 4 and 5 as satisfied
# What the figures read of a ticket (not the whole row: a period may hold many thousands).
FACTS = (
    _t.c.opened_at,
    _t.c.first_response_at,
    _t.c.first_resolved_at,
    _t.c.replies_at_resolve,
    _t.c.first_reopened_at,
    _t.c.pending_periods,
)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime
    """Exclusive."""
    line: int | None = None
    segment: str | None = None
    agent: str | None = None

    def filters(self) -> list[ColumnElement[bool]]:
        out = []
        if self.line is not None:
            out.append(_t.c.line == self.line)
        if self.segment is not None:
            out.append(_t.c.segment == self.segment)
        if self.agent is not None:
            out.append(_t.c.handler_id == self.agent)
        return out

    def within(self, column: Any) -> list[ColumnElement[bool]]:
        return [column >= self.start, column < self.end, *self.filters()]


async def metrics(
    conn: AsyncConnection, p: Period, calendar: BusinessCalendar, reopen_window_seconds: int, now: datetime
) -> SupportMetrics:
    opened = (await conn.execute(select(*FACTS).where(*p.within(_t.c.opened_at)))).all()
    resolved = (await conn.execute(select(*FACTS).where(*p.within(_t.c.first_resolved_at)))).all()
    rated = (await conn.execute(select(_t.c.rating).where(*p.within(_t.c.rated_at)))).scalars().all()
    backlog = await _backlog(conn, p, min(p.end, now))
    responded = [r for r in opened if r.first_response_at is not None]
    # The calendar walk is CPU work (a few ms per hundred tickets): off the event loop, so that the
    # gateway keeps answering other requests meanwhile.
    frt, aht = await asyncio.to_thread(
        lambda: (
            _durations([(r.opened_at, r.first_response_at, []) for r in responded], calendar),
            _durations([(r.opened_at, r.first_resolved_at, _pauses(r)) for r in resolved], calendar),
        )
    )
    return SupportMetrics(
        p.start,
        p.end,
        p.line,
        p.segment,
        p.agent,
        len(opened),
        frt,
        aht,
        _ratio(sum(_first_contact(r, reopen_window_seconds) for r in resolved), len(resolved)),
        _ratio(sum(r.first_resolved_at is not None and r.first_resolved_at < p.end for r in opened), len(opened)),
        backlog,
        _csat(list(rated)),
    )


def _pauses(r: Any) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in r.pending_periods]


def _first_contact(r: Any, window: int) -> bool:
    """At most one agent reply before the first resolution, and no reopen within the window after it."""
    reopened = r.first_reopened_at is not None and (r.first_reopened_at - r.first_resolved_at).total_seconds() <= window
    return bool(r.replies_at_resolve <= 1 and not reopened)


Span = tuple[datetime, datetime, list[tuple[datetime, datetime]]]  # start, end, excluded periods


def _durations(spans: Sequence[Span], calendar: BusinessCalendar) -> Durations:
    raw = [(end - start).total_seconds() - sum((b - a).total_seconds() for a, b in gaps) for start, end, gaps in spans]
    business = [
        calendar.seconds_between(start, end) - sum(calendar.seconds_between(a, b) for a, b in gaps)
        for start, end, gaps in spans
    ]
    return Durations(len(spans), _mean(raw), _median(raw), _mean(business), _median(business))


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _ratio(numerator: int, denominator: int) -> Ratio:
    return Ratio(numerator, denominator, numerator / denominator if denominator else None)


def _csat(scores: list[int]) -> Csat:
    satisfied = sum(s >= SATISFIED for s in scores)
    share = satisfied / len(scores) if scores else None
    return Csat(len(scores), satisfied, share, _mean([float(s) for s in scores]))


async def _backlog(conn: AsyncConnection, p: Period, at: datetime) -> Backlog:
    """The tickets not resolved or closed now; overdue: a running (or breached) clock due before `at`."""
    active = [_t.c.status.in_(ACTIVE), *p.filters()]
    total = (await conn.execute(select(func.count()).select_from(_t).where(*active))).scalar_one()
    late = select(func.count()).select_from(_t).where(*active, _t.c.next_due_at < at)
    return Backlog(at, int(total), int((await conn.execute(late)).scalar_one()))
