"""tk_agents: who takes tickets (from token claims), whether they are available now, and their load.

An agent is available when they said so (AgentAvailabilityChanged) or, having said nothing, while
they have a live session (presence heartbeats from the gateways).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tickets.domain.assignment import AgentLoad
from services.tickets.domain.state import ACTIVE
from services.tickets.tables import agents, tickets

AGENT_ROLES = frozenset({"agent"})
SUPERVISOR_ROLES = frozenset({"supervisor"})


async def save_claims(
    conn: AsyncConnection,
    user_id: str,
    roles: Sequence[str],
    segment: str | None,
    lines: Sequence[int],
    position: int,
    *,
    online: bool = False,
) -> None:
    """The user's claims as of `position`; an older event (a redelivery) changes nothing. `online`:
    whether presence already saw them (their heartbeat may come before their claims)."""
    is_agent, is_supervisor = bool(AGENT_ROLES & set(roles)), bool(SUPERVISOR_ROLES & set(roles))
    values = {
        "segment": segment,
        "lines": ",".join(str(n) for n in sorted(set(lines))),
        "is_agent": is_agent,
        "is_supervisor": is_supervisor,
        "position": position,
    }
    row = (await conn.execute(select(agents.c.position).where(agents.c.agent_id == user_id))).first()
    if row is None:
        if not (is_agent or is_supervisor):
            return  # plain users are not kept: the table stays the size of the desk
        await conn.execute(
            agents.insert().values(agent_id=user_id, explicit_available=None, online=online, last_assigned=0, **values)
        )
    elif row.position < position:
        await conn.execute(update(agents).where(agents.c.agent_id == user_id).values(**values))


async def set_explicit(conn: AsyncConnection, agent_id: str, available: bool) -> bool:
    """False when the agent is unknown here (their claims have not arrived: they are kept anyway)."""
    done = await conn.execute(update(agents).where(agents.c.agent_id == agent_id).values(explicit_available=available))
    if done.rowcount:
        return True
    await conn.execute(
        agents.insert().values(
            agent_id=agent_id,
            segment=None,
            lines="",
            is_agent=True,
            is_supervisor=False,
            explicit_available=available,
            online=False,
            last_assigned=0,
            position=0,
        )
    )
    return False


async def set_online(conn: AsyncConnection, agent_id: str, online: bool) -> bool:
    done = await conn.execute(update(agents).where(agents.c.agent_id == agent_id).values(online=online))
    return bool(done.rowcount)


async def pool(conn: AsyncConnection, line: int, segment: str) -> list[AgentLoad]:
    """The agents of `line` (and `segment`, below line 3) with their loads: open tickets assigned.
    Loads are counted for these agents only (index on assignee), so the cost follows the pool's
    size, not the backlog's."""
    query = select(agents).where(agents.c.is_agent, agents.c.lines.contains(str(line)))
    if line != 3:
        query = query.where(agents.c.segment == segment)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    counted = (
        select(tickets.c.assignee, func.count().label("n"))
        .where(tickets.c.assignee.in_([r.agent_id for r in rows]), tickets.c.status.in_(sorted(ACTIVE)))
        .group_by(tickets.c.assignee)
    )
    loads = {r.assignee: int(r.n) for r in (await conn.execute(counted)).all()}
    return [
        AgentLoad(
            agent_id=r.agent_id,
            segment=r.segment,
            lines=tuple(int(n) for n in r.lines.split(",") if n),
            available=r.explicit_available if r.explicit_available is not None else r.online,
            load=loads.get(r.agent_id, 0),
            last_assigned=int(r.last_assigned),
        )
        for r in rows
    ]


async def pools_of(conn: AsyncConnection, agent_id: str) -> list[tuple[int, str | None]]:
    """The (line, segment) queues an agent serves; segment None for line 3 (every segment)."""
    row = (await conn.execute(select(agents).where(agents.c.agent_id == agent_id))).first()
    if row is None or not row.is_agent:
        return []
    lines = [int(n) for n in row.lines.split(",") if n]
    return [(n, None if n == 3 else row.segment) for n in lines if n == 3 or row.segment is not None]


async def mark_assigned(conn: AsyncConnection, agent_id: str, counter: int) -> None:
    await conn.execute(update(agents).where(agents.c.agent_id == agent_id).values(last_assigned=counter))


async def supervisors(conn: AsyncConnection, segment: str) -> list[str]:
    query = select(agents.c.agent_id).where(
        agents.c.is_supervisor, or_(agents.c.segment.is_(None), agents.c.segment == segment)
    )
    return [r.agent_id for r in (await conn.execute(query)).all()]


__all__ = ["mark_assigned", "pool", "pools_of", "save_claims", "set_explicit", "set_online", "supervisors"]
