"""A scripted day of 20 tickets: the metrics equal figures computed by hand (arithmetic in the
comments), on SQLite and PostgreSQL; a rebuild of the read models gives the same figures.

The day is Monday 2 March 2026, period [2026-03-02 00:00, 2026-03-03 00:00) UTC. The business
calendar is Mon–Fri 09:00–13:00 and 14:00–18:00 UTC (a lunch hour, so that business time differs
from wall-clock time inside the day too). Agents: a1, a2 (line 1), e1 (line 2).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import test_read_models_support as support
from test_read_models_support import Env
from ticket_writer import Desk

from services.projections.rebuild import rebuild
from services.projections.support_metrics import Period, metrics
from services.projections.support_views import Backlog, Csat, Durations, Ratio, SupportMetrics
from services.tickets.domain.calendar import BusinessCalendar

env = support.env
WEEK = 7 * 24 * 3600  # settings.support_reopen_window_seconds' default
CALENDAR = BusinessCalendar(
    timezone=ZoneInfo("UTC"), hours={d: ((time(9), time(13)), (time(14), time(18))) for d in range(5)}
)
DAY, NEXT = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)  # long after: the backlog is measured at `to`


def at(hhmm: str, day: int = 2, month: int = 3) -> datetime:
    h, m = hhmm.split(":")
    return datetime(2026, month, day, int(h), int(m), tzinfo=UTC)


async def _day(d: Desk) -> None:
    # T01: reply 08:30, resolved 09:30, rated 5.  FRT 1800 (business 0); AHT 5400 (business 09:00–09:30 = 1800)
    await d.open("T01", "u01", at("08:00"))
    await d.assign("T01", "a1", at("08:01"))
    await d.message("T01", "a1", at("08:30"))
    await d.to("T01", "resolved", at("09:30"), "a1")
    await d.rate("T01", 5, at("10:00"))
    # T02: two agent replies → not FCR.  FRT 600/600; AHT 3600/3600; rated 4
    await d.open("T02", "u02", at("09:00"))
    await d.assign("T02", "a1", at("09:01"))
    await d.message("T02", "a1", at("09:10"))
    await d.message("T02", "u02", at("09:20"))
    await d.message("T02", "a1", at("09:40"))
    await d.to("T02", "resolved", at("10:00"), "a1")
    await d.rate("T02", 4, at("10:30"))
    # T03: one reply, resolved 10:15, reopened 11:00 (within the window) → not FCR; resolved again 11:30.
    # FRT 900/900; AHT to the FIRST resolution 2700/2700; rated 2
    await d.open("T03", "u03", at("09:30"))
    await d.assign("T03", "a2", at("09:31"))
    await d.message("T03", "a2", at("09:45"))
    await d.to("T03", "resolved", at("10:15"), "a2")
    await d.to("T03", "reopened", at("11:00"), "u03")
    await d.message("T03", "a2", at("11:15"))
    await d.to("T03", "resolved", at("11:30"), "a2")
    await d.rate("T03", 2, at("12:00"))
    # T04: pending 10:30–11:30 is excluded.  FRT 1200/1200; AHT 7200 − 3600 = 3600 (business the same)
    await d.open("T04", "u04", at("10:00"))
    await d.assign("T04", "a1", at("10:01"))
    await d.message("T04", "a1", at("10:20"))
    await d.to("T04", "pending", at("10:30"), "a1")
    await d.to("T04", "open", at("11:30"), "u04")
    await d.to("T04", "resolved", at("12:00"), "a1")
    # T05: across lunch.  FRT 7200 (business 12:30–13:00 + 14:00–14:30 = 3600);
    # AHT 9000 (business 1800 + 14:00–15:00 3600 = 5400); rated 5
    await d.open("T05", "u05", at("12:30"))
    await d.assign("T05", "a2", at("12:31"))
    await d.message("T05", "a2", at("14:30"))
    await d.to("T05", "resolved", at("15:00"), "a2")
    await d.rate("T05", 5, at("15:10"))
    # T06: no reply; first-response clock due 12:00 → overdue at `to`
    await d.open("T06", "u06", at("11:00"))
    await d.clock("T06", "first_response", at("12:00"), at("11:00"))
    # T07: reply 13:30 (in the lunch hour: business 0) after its first-response clock's due time, so
    # that clock is fulfilled; the resolution clock runs until tomorrow 13:00 → open, not overdue
    await d.open("T07", "u07", at("13:00"))
    await d.assign("T07", "a1", at("13:01"))
    await d.clock("T07", "first_response", at("13:15"), at("13:00"))
    await d.clock("T07", "resolution", at("13:00", day=3), at("13:00"))
    await d.message("T07", "a1", at("13:30"))
    await d.fulfilled("T07", "first_response", at("13:30"))
    # T08: FRT 300/300; AHT 1800/1800; rated 3
    await d.open("T08", "u08", at("14:00"))
    await d.assign("T08", "a1", at("14:01"))
    await d.message("T08", "a1", at("14:05"))
    await d.to("T08", "resolved", at("14:30"), "a1")
    await d.rate("T08", 3, at("15:00"))
    # T09: resolved by a2 without a reply (a duplicate) and without being assigned: no FRT; AHT 1200/1200; FCR
    await d.open("T09", "u09", at("15:00"))
    await d.to("T09", "resolved", at("15:20"), "a2")
    # T10: escalated to line 2, e1 replies twice → not FCR.  FRT 1800/1800; AHT 5400/5400; rated 4
    await d.open("T10", "u10", at("16:00"))
    await d.assign("T10", "a1", at("16:01"))
    await d.escalate("T10", 2, at("16:10"))
    await d.assign("T10", "e1", at("16:15"))
    await d.message("T10", "e1", at("16:30"))
    await d.message("T10", "e1", at("17:00"))
    await d.to("T10", "resolved", at("17:30"), "e1")
    await d.rate("T10", 4, at("17:45"))
    # T11: reply 18:30 (business 17:30–18:00 = 1800): FRT 3600/1800; open, resolution due tomorrow 12:00
    await d.open("T11", "u11", at("17:30"))
    await d.assign("T11", "a2", at("17:31"))
    await d.clock("T11", "resolution", at("12:00", day=3), at("17:30"))
    await d.message("T11", "a2", at("18:30"))
    # T12 (suppliers): FRT 1800 (business 0); AHT 2700 (business 09:00–09:15 = 900); rated 5
    await d.open("T12", "s12", at("08:30"), segment="suppliers")
    await d.assign("T12", "a1", at("08:31"))
    await d.message("T12", "a1", at("09:00"))
    await d.to("T12", "resolved", at("09:15"), "a1")
    await d.rate("T12", 5, at("09:20"))
    # T13 (suppliers): pending 10:40–12:40, two replies → not FCR.  FRT 1800/1800;
    # AHT 16800 − 7200 = 9600; business (10:00–13:00 10800 + 14:00–14:40 2400) − 7200 = 6000
    await d.open("T13", "s13", at("10:00"), segment="suppliers")
    await d.assign("T13", "a2", at("10:01"))
    await d.message("T13", "a2", at("10:30"))
    await d.to("T13", "pending", at("10:40"), "a2")
    await d.message("T13", "s13", at("12:40"))
    await d.to("T13", "open", at("12:40"), "system:tickets")
    await d.message("T13", "a2", at("13:30"))
    await d.to("T13", "resolved", at("14:40"), "a2")
    # T14 (suppliers): pending all day, its clock paused → open, not overdue
    await d.open("T14", "s14", at("11:00"), segment="suppliers")
    await d.clock("T14", "first_response", at("12:00"), at("11:00"))
    await d.to("T14", "pending", at("11:30"), "sup")
    await d.paused("T14", "first_response", at("11:30"))
    # T15: first-response clock due 20:00 and breached → overdue
    await d.open("T15", "u15", at("19:00"))
    await d.clock("T15", "first_response", at("20:00"), at("19:00"))
    await d.breached("T15", "first_response", at("20:00"))
    # T16: after hours.  FRT 1800 (business 0); AHT 3600 (business 0); rated 1
    await d.open("T16", "u16", at("20:00"))
    await d.assign("T16", "a1", at("20:01"))
    await d.message("T16", "a1", at("20:30"))
    await d.to("T16", "resolved", at("21:00"), "a1")
    await d.rate("T16", 1, at("21:10"))
    # T17: opened on Sunday 22:00 (before the period), resolved today 09:30 → in AHT and FCR, not in
    # opened/FRT/resolution rate.  AHT 11.5 h = 41400 (business 09:00–09:30 = 1800); rated 5 today
    await d.open("T17", "u17", at("22:00", day=1))
    await d.assign("T17", "a2", at("22:01", day=1))
    await d.message("T17", "a2", at("09:00"))
    await d.to("T17", "resolved", at("09:30"), "a2")
    await d.rate("T17", 5, at("09:40"))
    # T18: FRT 1800 (business 0); AHT 3600 (business 0); reopened 8 days later (after the window) → still
    # FCR; reopened now, so it is in the backlog (no clock: not overdue)
    await d.open("T18", "u18", at("21:00"))
    await d.assign("T18", "a2", at("21:01"))
    await d.message("T18", "a2", at("21:30"))
    await d.to("T18", "resolved", at("22:00"), "a2")
    await d.to("T18", "reopened", at("22:30", day=10), "sup")
    # T19: opened 23:00, resolved tomorrow → opened but not resolved before `to`; no FRT
    await d.open("T19", "u19", at("23:00"))
    await d.to("T19", "resolved", at("08:00", day=3), "a1")
    # T20: tomorrow: outside the period in every figure (its rating too)
    await d.open("T20", "u20", at("00:30", day=3))
    await d.to("T20", "resolved", at("01:00", day=3), "a1")
    await d.rate("T20", 1, at("01:10", day=3))


# The whole desk.
# Opened in the period: T01–T16, T18, T19 = 18.
# FRT over the 13 answered (T01 02 03 04 05 07 08 10 11 12 13 16 18):
#   raw 1800 600 900 1200 7200 1800 300 1800 3600 1800 1800 1800 1800 → sum 26400, mean 26400/13,
#   sorted 300 600 900 1200 1800×7 3600 7200 → median (7th) 1800;
#   business 0 600 900 1200 3600 0 300 1800 1800 0 1800 0 0 → sum 12000, mean 12000/13,
#   sorted 0×5 300 600 … → median (7th) 600.
# AHT over the 13 first resolved in the period (T01 02 03 04 05 08 09 10 12 13 16 17 18):
#   raw 5400 3600 2700 3600 9000 1800 1200 5400 2700 9600 3600 41400 3600 → sum 93600, mean 7200,
#   sorted 1200 1800 2700 2700 3600 3600 3600 … → median 3600;
#   business 1800 3600 2700 3600 5400 1800 1200 5400 900 6000 0 1800 0 → sum 34200, mean 34200/13,
#   sorted 0 0 900 1200 1800 1800 1800 2700 … → median 1800.
# FCR: of those 13, not T02 T10 T13 (two replies) nor T03 (reopened within the window) → 9/13.
# Resolution rate: of the 18 opened, resolved before `to`: all but T06 T07 T11 T14 T15 T19 → 12/18.
# Backlog now: T06 T07 T11 T14 T15 T18 = 6 open; overdue before `to`: T06 (due 12:00), T15 (breached) = 2.
# CSAT rated in the period: 5 4 2 5 3 4 5 1 5 (T01 02 03 05 08 10 12 16 17) → 9, satisfied 6, mean 34/9.
ALL = SupportMetrics(
    DAY,
    NEXT,
    None,
    None,
    None,
    18,
    Durations(13, 26400 / 13, 1800.0, 12000 / 13, 600.0),
    Durations(13, 7200.0, 3600.0, 34200 / 13, 1800.0),
    Ratio(9, 13, 9 / 13),
    Ratio(12, 18, 12 / 18),
    Backlog(NEXT, 6, 2),
    Csat(9, 6, 6 / 9, 34 / 9),
)
# Suppliers: T12 T13 T14 opened; FRT 1800 1800 (business 0 1800); AHT T12 2700/900, T13 9600/6000;
# FCR T12 only → 1/2; resolved 2/3; backlog T14 (paused: not overdue); CSAT one 5.
SUPPLIERS = SupportMetrics(
    DAY,
    NEXT,
    None,
    "suppliers",
    None,
    3,
    Durations(2, 1800.0, 1800.0, 900.0, 900.0),
    Durations(2, 6150.0, 6150.0, 3450.0, 3450.0),
    Ratio(1, 2, 0.5),
    Ratio(2, 3, 2 / 3),
    Backlog(NEXT, 1, 0),
    Csat(1, 1, 1.0, 5.0),
)
# Agent a1 handles T01 T02 T04 T07 T08 T12 T16, and T19 (resolved by a1 tomorrow, unassigned).
# FRT 1800 600 1200 1800 300 1800 1800 → sum 9300, median 1800;
# business 0 600 1200 0 300 0 0 → sum 2100, sorted 0 0 0 0 300 600 1200 → median 0;
# AHT (T07 unresolved) 5400 3600 3600 1800 2700 3600 → mean 20700/6 = 3450, median (3600+3600)/2;
# business 1800 3600 3600 1800 900 0 → mean 11700/6 = 1950, sorted 0 900 1800 1800 3600 3600 → median 1800;
# FCR all but T02 → 5/6; resolved before `to` 6 of 8 (not T07, T19); backlog T07 (not overdue);
# CSAT 5 4 3 5 1 → 5 ratings, 3 satisfied, mean 18/5.
AGENT_A1 = SupportMetrics(
    DAY,
    NEXT,
    None,
    None,
    "a1",
    8,
    Durations(7, 9300 / 7, 1800.0, 2100 / 7, 0.0),
    Durations(6, 3450.0, 3600.0, 1950.0, 1800.0),
    Ratio(5, 6, 5 / 6),
    Ratio(6, 8, 6 / 8),
    Backlog(NEXT, 1, 0),
    Csat(5, 3, 3 / 5, 18 / 5),
)
# Line 2 holds T10 only (escalated): FRT 1800; AHT 5400; not FCR; resolved 1/1; CSAT one 4.
LINE_2 = SupportMetrics(
    DAY,
    NEXT,
    2,
    None,
    None,
    1,
    Durations(1, 1800.0, 1800.0, 1800.0, 1800.0),
    Durations(1, 5400.0, 5400.0, 5400.0, 5400.0),
    Ratio(0, 1, 0.0),
    Ratio(1, 1, 1.0),
    Backlog(NEXT, 0, 0),
    Csat(1, 1, 1.0, 4.0),
)


async def _figures(env: Env) -> list[SupportMetrics]:
    periods = [
        Period(DAY, NEXT),
        Period(DAY, NEXT, segment="suppliers"),
        Period(DAY, NEXT, agent="a1"),
        Period(DAY, NEXT, line=2),
    ]
    async with env.engine.connect() as conn:
        return [await metrics(conn, p, CALENDAR, WEEK, NOW) for p in periods]


async def test_a_scripted_day_gives_the_hand_computed_figures_and_a_rebuild_the_same(env: Env) -> None:
    await _day(Desk(env.store))
    await env.project(page=7)  # pages cut tickets in the middle: state carries across batches
    assert await _figures(env) == [ALL, SUPPLIERS, AGENT_A1, LINE_2]

    await rebuild(env.engine, env.store, ["support"], partitions=16)
    assert await _figures(env) == [ALL, SUPPLIERS, AGENT_A1, LINE_2]
