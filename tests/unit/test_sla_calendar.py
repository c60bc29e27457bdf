"""Business calendars and SLA policies: due times a support manager can check by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.sla import SlaTargets, load_sla_policy, parse_sla_policy
from shared.config import load_settings
from shared.errors import ConfigError

MSK = ZoneInfo("Europe/Moscow")  # UTC+3 all year: no daylight-saving surprises in the hand arithmetic
WORKDAY = ((time(9), time(13)), (time(14), time(18)))  # 9–13 and 14–18, an hour for lunch
OFFICE = BusinessCalendar(MSK, {d: WORKDAY for d in range(5)}, frozenset({date(2027, 1, 4)}))  # Monday 4 Jan: holiday


def msk(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MSK)


def test_24_7_counts_every_second() -> None:
    cal = BusinessCalendar.twenty_four_seven()
    start = datetime(2027, 1, 1, 23, 30, tzinfo=UTC)
    assert cal.add(start, 3600) == datetime(2027, 1, 2, 0, 30, tzinfo=UTC)
    assert cal.seconds_between(start, datetime(2027, 1, 2, 0, 30, tzinfo=UTC)) == 3600
    assert cal.is_open(start)


def test_due_time_across_a_night_a_weekend_and_a_holiday() -> None:
    # Friday 1 Jan 2027 17:30 + 1 business hour: 30 min on Friday (to 18:00), Saturday and Sunday closed,
    # Monday 4 Jan a holiday, so the remaining 30 min run from Tuesday 09:00: due Tuesday 09:30.
    assert OFFICE.add(msk(2027, 1, 1, 17, 30), 3600) == msk(2027, 1, 5, 9, 30)
    # Counted back: Friday 17:30-18:00 and Tuesday 09:00-09:30.
    assert OFFICE.seconds_between(msk(2027, 1, 1, 17, 30), msk(2027, 1, 5, 9, 30)) == 3600


def test_lunch_break_and_a_night_are_not_counted() -> None:
    # 12:45 + 1 h: 15 min before lunch, 45 min after it.
    assert OFFICE.add(msk(2027, 1, 5, 12, 45), 3600) == msk(2027, 1, 5, 14, 45)
    # Opened at 02:00: the clock starts at 09:00.
    assert OFFICE.add(msk(2027, 1, 5, 2, 0), 3600) == msk(2027, 1, 5, 10, 0)
    # A full working day is 8 hours; 9 hours run into the next morning.
    assert OFFICE.add(msk(2027, 1, 5, 9, 0), 9 * 3600) == msk(2027, 1, 6, 10, 0)
    assert OFFICE.seconds_between(msk(2027, 1, 5, 0, 0), msk(2027, 1, 6, 0, 0)) == 8 * 3600


def test_is_open() -> None:
    assert OFFICE.is_open(msk(2027, 1, 5, 9, 0))
    assert not OFFICE.is_open(msk(2027, 1, 5, 13, 30))
    assert not OFFICE.is_open(msk(2027, 1, 4, 10, 0))  # the holiday
    assert not OFFICE.is_open(msk(2027, 1, 2, 10, 0))  # Saturday


def test_a_daylight_saving_day_counts_the_hours_it_really_has() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    always_on_sunday = BusinessCalendar(berlin, {6: ((time(0), time(0)),)})  # all of Sunday
    # Sunday 29 March 2026: clocks go from 02:00 to 03:00, so that Sunday has 23 hours.
    start = datetime(2026, 3, 29, 0, 0, tzinfo=berlin)
    end = datetime(2026, 3, 30, 0, 0, tzinfo=berlin)
    assert always_on_sunday.seconds_between(start, end) == 23 * 3600


def test_overnight_shift_as_two_ranges() -> None:
    night = ((time(0), time(6)), (time(22), time(0)))
    cal = BusinessCalendar(MSK, {d: night for d in range(7)})
    # 23:00 + 2 h: one hour to midnight, one after it.
    assert cal.add(msk(2027, 1, 5, 23, 0), 7200) == msk(2027, 1, 6, 1, 0)
    # 05:00 + 2 h: one hour to 06:00, the second from 22:00.
    assert cal.add(msk(2027, 1, 5, 5, 0), 7200) == msk(2027, 1, 5, 23, 0)


@pytest.mark.parametrize(
    ("hours", "problem"),
    [
        ({}, "no open hours"),
        ({0: ((time(10), time(9)),)}, "ends before it starts"),
        ({0: ((time(9), time(12)), (time(11), time(13)))}, "overlap"),
        ({7: ((time(9), time(12)),)}, "weekday 7"),
    ],
)
def test_a_calendar_that_cannot_work_is_refused(hours: dict[int, tuple[tuple[time, time], ...]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BusinessCalendar(MSK, hours)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.add(datetime(2027, 1, 5, 9, 0), 60)


def test_builtin_policy_is_24_7_with_targets_per_priority() -> None:
    policy = load_sla_policy(load_settings({}))
    assert policy.calendar.always_open
    assert policy.targets_for("urgent", 1) == SlaTargets(first_response=900, next_response=1800, resolution=14400)
    assert policy.targets_for("normal", 2).first_response == 4 * 3600
    assert policy.warning_lead_seconds == 300


def test_policy_file_with_calendar_and_layered_targets(tmp_path: Path) -> None:
    path = tmp_path / "sla.json"
    path.write_text(
        json.dumps(
            {
                "calendar": {
                    "timezone": "Europe/Moscow",
                    "hours": {d: ["09:00-13:00", "14:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                    "holidays": ["2027-01-04"],
                },
                "warning_lead_seconds": 120,
                "targets": {
                    "default": {"first_response": 3600, "next_response": 7200, "resolution": 86400},
                    "urgent": {"first_response": 600},
                    "urgent/3": {"first_response": 300, "resolution": None},
                },
            }
        )
    )
    policy = load_sla_policy(load_settings({"LEDGERLINE_SLA_POLICY_FILE": str(path)}))
    assert policy.warning_lead_seconds == 120
    assert policy.calendar.add(msk(2027, 1, 1, 17, 30), 3600) == msk(2027, 1, 5, 9, 30)
    # "urgent/3" overrides first response and switches resolution off; next response falls through to
    # "urgent", which does not name it, so to "default".
    assert policy.targets_for("urgent", 3) == SlaTargets(first_response=300, next_response=7200, resolution=None)
    assert policy.targets_for("urgent", 1) == SlaTargets(first_response=600, next_response=7200, resolution=86400)
    # The file's targets replace the built-in ones: "low" gets the file's "default".
    assert policy.targets_for("low", 1) == SlaTargets(first_response=3600, next_response=7200, resolution=86400)


def test_a_policy_file_without_targets_keeps_the_builtin_ones(tmp_path: Path) -> None:
    path = tmp_path / "sla.json"
    path.write_text('{"calendar": {"timezone": "Europe/Moscow", "hours": {"mon": ["09:00-18:00"]}}}')
    policy = parse_sla_policy(path, default_warning_lead=45)
    assert policy.targets_for("urgent", 1).first_response == 900
    assert policy.warning_lead_seconds == 45
    assert not policy.calendar.is_open(msk(2027, 1, 5, 10, 0))  # a Tuesday: only Mondays are open


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "not JSON"),
        ('{"calendar": {"timezone": "Mars/Olympus", "hours": {"mon": ["09:00-18:00"]}}}', "unknown time zone"),
        ('{"calendar": {"hours": {"mon": ["9 to 6"]}}}', "is not HH:MM-HH:MM"),
        ('{"calendar": {"hours": {"mon": []}}}', "no open hours"),
        ('{"targets": {"critical": {"first_response": 60}}}', "target key 'critical'"),
        ('{"targets": {"default": {"first_response": -5}}}', "targets.default.first_response"),
        ('{"targets": {"default": {"first_reply": 60}}}', "first_reply"),
    ],
)
def test_a_bad_policy_file_names_the_problem(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "sla.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        parse_sla_policy(path, default_warning_lead=300)
    assert named in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        parse_sla_policy(tmp_path / "missing.json", default_warning_lead=300)
