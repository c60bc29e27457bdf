"""Auto-assignment (pure): the least-loaded available agent of the ticket's line and segment.

Ties go round robin: among the least loaded, the one whose last assignment is the oldest (never
assigned counts as oldest; then by id, so that the choice is deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ENGINEER_LINE = 3  # line 3 serves every segment


@dataclass(frozen=True, slots=True)
class AgentLoad:
    agent_id: str
    segment: str | None
    lines: tuple[int, ...]
    available: bool
    load: int
    last_assigned: int  # a counter value at the agent's last auto-assignment; 0 = never


def serves(agent: AgentLoad, line: int, segment: str) -> bool:
    """Lines 1 and 2 have a pool per segment; line 3 is engineers for all segments."""
    return line in agent.lines and (line == ENGINEER_LINE or agent.segment == segment)


def pick_agent(agents: Iterable[AgentLoad], line: int, segment: str, capacity: int) -> str | None:
    """The agent to give a ticket of `line`/`segment` to, or None when nobody can take it now."""
    candidates = [a for a in agents if a.available and a.load < capacity and serves(a, line, segment)]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (a.load, a.last_assigned, a.agent_id)).agent_id
