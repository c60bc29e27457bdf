"""Business calendars: when the support desk counts SLA time (docs/support-sla.md).

A calendar is open during a few ranges of local time per weekday, closed on holidays (local dates),
in one time zone; or open around the clock (24/7). SLA targets are business seconds: a first-response
target of one hour on a ticket opened at 17:30 on a 9–18 calendar falls due at 09:30 the next
business day.

Arithmetic walks the local calendar day by day and measures each open range in UTC, so a day with a
daylight-saving change counts the hours it really has. Ranges end at the given local time; an end of
00:00 means the end of that day (so an overnight shift is two ranges: 22:00–00:00 and 00:00–06:00).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A calendar with no open hour in this many days is a configuration error, not a long wait.
HORIZON_DAYS = 3 * 366
MIDNIGHT = time(0, 0)

Ranges = tuple[tuple[time, time], ...]


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    timezone: ZoneInfo
    hours: Mapping[int, Ranges] = field(default_factory=dict)  # weekday (0 = Monday) -> open ranges
    holidays: frozenset[date] = frozenset()
    always_open: bool = False

    def __post_init__(self) -> None:
        if self.always_open:
            return
        ordered: dict[int, Ranges] = {}
        for weekday, ranges in self.hours.items():
            if not 0 <= weekday <= 6:
                raise ValueError(f"weekday {weekday} is not 0 (Monday) .. 6 (Sunday)")
            ordered[weekday] = tuple(sorted(ranges))
            previous_end: time | None = None
            for start, end in ordered[weekday]:
                if end != MIDNIGHT and end <= start:
                    raise ValueError(f"range {start:%H:%M}-{end:%H:%M} ends before it starts")
                if previous_end is not None and (previous_end == MIDNIGHT or start < previous_end):
                    raise ValueError(f"ranges overlap at {start:%H:%M} on weekday {weekday}")
                previous_end = end
        object.__setattr__(self, "hours", ordered)  # sorted, so that the walk below meets ranges in time order
        if not any(self.hours.get(d) for d in range(7)):
            raise ValueError("the calendar has no open hours: give some ranges, or make it 24/7")

    @classmethod
    def twenty_four_seven(cls) -> BusinessCalendar:
        return cls(timezone=ZoneInfo("UTC"), always_open=True)

    def is_open(self, at: datetime) -> bool:
        if self.always_open:
            return True
        return any(begin <= at < end for begin, end in self._open_ranges(_utc(at), _utc(at) + timedelta(seconds=1)))

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment at which `seconds` of business time have passed since `start` (UTC)."""
        start = _utc(start)
        if self.always_open or seconds <= 0:
            return start + timedelta(seconds=max(seconds, 0))
        remaining = timedelta(seconds=seconds)
        for begin, end in self._open_ranges(start, None):
            span = end - begin
            if remaining <= span:
                return begin + remaining
            remaining -= span
        raise AssertionError("unreachable: _open_ranges without an end never stops")  # pragma: no cover

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Business seconds in [start, end); 0 when end is not after start."""
        start, end = _utc(start), _utc(end)
        if end <= start:
            return 0.0
        if self.always_open:
            return (end - start).total_seconds()
        return sum((e - b).total_seconds() for b, e in self._open_ranges(start, end))

    def _open_ranges(self, start: datetime, until: datetime | None) -> Iterator[tuple[datetime, datetime]]:
        """Open ranges in UTC, clipped to [start, until), in time order; without `until`, endless."""
        day = start.astimezone(self.timezone).date() - timedelta(
            days=1
        )  # a range of the day before may run past midnight UTC
        empty_days = 0
        while True:
            produced = False
            if day not in self.holidays:
                for open_at, close_at in self.hours.get(day.weekday(), ()):
                    begin = _at(day, open_at, self.timezone)
                    end = _at(day + timedelta(days=1), MIDNIGHT, self.timezone) if close_at == MIDNIGHT else None
                    end = end or _at(day, close_at, self.timezone)
                    if until is not None and begin >= until:
                        return
                    begin, end = max(begin, start), min(end, until) if until is not None else end
                    if begin < end:
                        produced = True
                        yield begin, end
            empty_days = 0 if produced else empty_days + 1
            if empty_days > HORIZON_DAYS:
                raise ValueError(f"the calendar has no open hours within {HORIZON_DAYS} days of {start.isoformat()}")
            day += timedelta(days=1)
            if until is not None and _at(day, MIDNIGHT, self.timezone) >= until:
                return


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz).astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("calendar arithmetic needs timezone-aware datetimes")
    return moment.astimezone(UTC)
