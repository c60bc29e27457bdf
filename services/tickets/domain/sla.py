"""SLA policy: targets per priority and line on a business calendar (docs/support-sla.md).

The policy is configuration, not state: the tickets worker reads it when it starts a clock and
writes the resulting due time into the clock's event (TicketSlaClockStarted / Resumed), so a later
change of policy never rewrites the due times of history, and the read models take due times from
the events instead of recomputing them.

`LEDGERLINE_SLA_POLICY_FILE` names a JSON file:

    {
      "calendar": {"timezone": "Europe/Moscow",
                   "hours": {"mon": ["09:00-13:00", "14:00-18:00"], "tue": ["09:00-18:00"], ...},
                   "holidays": ["2027-01-01", "2027-01-07"]},
      "warning_lead_seconds": 600,
      "targets": {"default": {"first_response": 3600, "next_response": 7200, "resolution": 86400},
                  "urgent": {"first_response": 900, "resolution": 14400},
                  "urgent/3": {"first_response": 600}}
    }

`"calendar": "24/7"` (or no calendar) counts every second. A file's "targets" replace the built-in
ones (DEFAULT_TARGETS) as a whole; without "targets" the built-in ones apply. Each clock is looked up
as "<priority>/<line>", then "<priority>", then "default", the first entry naming it wins; a clock
named as null, or named nowhere, does not run. Targets are business seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.tickets.domain.calendar import BusinessCalendar
from shared.config import Settings
from shared.errors import ConfigError

Priority = Literal["low", "normal", "high", "urgent"]
ClockName = Literal["first_response", "next_response", "resolution"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

MINUTE, HOUR = 60, 3600


@dataclass(frozen=True, slots=True)
class SlaTargets:
    first_response: int | None
    next_response: int | None
    resolution: int | None

    def of(self, clock: ClockName) -> int | None:
        value: int | None = getattr(self, clock)
        return value


# Built-in targets (24/7): what a desk without a policy file gets.
DEFAULT_TARGETS: dict[str, SlaTargets] = {
    "urgent": SlaTargets(first_response=15 * MINUTE, next_response=30 * MINUTE, resolution=4 * HOUR),
    "high": SlaTargets(first_response=1 * HOUR, next_response=2 * HOUR, resolution=8 * HOUR),
    "normal": SlaTargets(first_response=4 * HOUR, next_response=8 * HOUR, resolution=24 * HOUR),
    "low": SlaTargets(first_response=8 * HOUR, next_response=16 * HOUR, resolution=72 * HOUR),
}


# A policy entry: the clocks it names (None switches a clock off); unnamed clocks fall through.
Entry = Mapping[ClockName, int | None]


def _entry(targets: SlaTargets) -> Entry:
    return {
        "first_response": targets.first_response,
        "next_response": targets.next_response,
        "resolution": targets.resolution,
    }


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    calendar: BusinessCalendar
    warning_lead_seconds: int
    entries: Mapping[str, Entry]  # "default", "<priority>", "<priority>/<line>"

    def targets_for(self, priority: Priority, line: int) -> SlaTargets:
        chain = [self.entries.get(k) for k in (f"{priority}/{line}", priority, "default")]
        found = [e for e in chain if e is not None]

        def pick(clock: ClockName) -> int | None:
            return next((e[clock] for e in found if clock in e), None)

        return SlaTargets(pick("first_response"), pick("next_response"), pick("resolution"))


class _TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_response: int | None = Field(None, gt=0)
    next_response: int | None = Field(None, gt=0)
    resolution: int | None = Field(None, gt=0)


class _CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = "UTC"
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]]
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("hours")
    @classmethod
    def _ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for ranges in value.values():
            for r in ranges:
                _parse_range(r)
        return value


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calendar: _CalendarFile | Literal["24/7"] = "24/7"
    warning_lead_seconds: int | None = Field(None, ge=0)
    targets: dict[str, _TargetsFile] = {}

    @field_validator("targets")
    @classmethod
    def _keys(cls, value: dict[str, _TargetsFile]) -> dict[str, _TargetsFile]:
        for key in value:
            priority, _, line = key.partition("/")
            if key != "default" and (priority not in PRIORITIES or (line and line not in {"1", "2", "3"})):
                raise ValueError(f"target key {key!r} is not 'default', '<priority>' or '<priority>/<line 1..3>'")
        return value


def _parse_range(text: str) -> tuple[time, time]:
    try:
        start, end = text.split("-")
        begin = time.fromisoformat(start.strip())
        finish = time(0, 0) if end.strip() == "24:00" else time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"hours range {text!r} is not HH:MM-HH:MM") from None
    return begin, finish


def load_sla_policy(settings: Settings) -> SlaPolicy:
    """The built-in policy (24/7, DEFAULT_TARGETS), or the file's; ConfigError names what is wrong."""
    if settings.sla_policy_file is None:
        defaults = {k: _entry(t) for k, t in DEFAULT_TARGETS.items()}
        return SlaPolicy(BusinessCalendar.twenty_four_seven(), settings.sla_warning_lead_seconds, defaults)
    return parse_sla_policy(settings.sla_policy_file, default_warning_lead=settings.sla_warning_lead_seconds)


def parse_sla_policy(path: Path, *, default_warning_lead: int) -> SlaPolicy:
    where = f"LEDGERLINE_SLA_POLICY_FILE {path}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        spec = _PolicyFile.model_validate(raw)
    except OSError as e:
        raise ConfigError([f"{where}: cannot read it ({e.strerror})"]) from None
    except json.JSONDecodeError as e:
        raise ConfigError([f"{where}: not JSON ({e.msg} at line {e.lineno})"]) from None
    except ValidationError as e:
        raise ConfigError(
            [f"{where}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        ) from None
    try:
        calendar = _calendar(spec.calendar)
    except ValueError as e:
        raise ConfigError([f"{where}: calendar: {e}"]) from None
    # A file's targets replace the built-in ones as a whole, so its "default" reaches every priority.
    entries: dict[str, Entry] = {} if spec.targets else {k: _entry(t) for k, t in DEFAULT_TARGETS.items()}
    for key, entry in spec.targets.items():
        named: dict[ClockName, int | None] = {}
        for clock in entry.model_fields_set:
            named[clock] = getattr(entry, clock)  # type: ignore[index]  # fields are exactly the clock names
        entries[key] = named
    lead = spec.warning_lead_seconds if spec.warning_lead_seconds is not None else default_warning_lead
    return SlaPolicy(calendar, lead, entries)


def _calendar(spec: _CalendarFile | Literal["24/7"]) -> BusinessCalendar:
    if spec == "24/7":
        return BusinessCalendar.twenty_four_seven()
    assert isinstance(spec, _CalendarFile)
    hours = {WEEKDAYS.index(day): tuple(_parse_range(r) for r in ranges) for day, ranges in spec.hours.items()}
    return BusinessCalendar(ZoneInfo(spec.timezone), hours, frozenset(spec.holidays))
