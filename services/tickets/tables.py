"""The tickets worker's own tables (migration 0007_tickets): what assignment and timers need.

- tk_agents: agents and supervisors from token claims (UserSeen / UserProfileChanged), their
  availability (explicit, from AgentAvailabilityChanged; else presence) and a round-robin counter.
  `position` is the store position of the claims applied: an older redelivered event changes nothing.
- tk_tickets: each ticket's line, segment, status and assignee (loads and queues are counted here),
  and the due time that orders the queue (the earliest running SLA clock).
- tk_timers: one row per running SLA clock and kind (`breach` at due_at, `warning` before it);
  `fired` is set once the timer's effect is stored; `claimed_until` is the lease of the process
  firing it. Rows survive restarts: the timer loop of any
  tickets process picks up what is due.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, PrimaryKeyConstraint, String, Table

from shared.store.tables import UtcDateTime, metadata

ID = 200  # shared.events.fields.ID_MAX

agents = Table(
    "tk_agents",
    metadata,
    Column("agent_id", String(ID), nullable=False),
    Column("segment", String(32), nullable=True),
    Column("lines", String(16), nullable=False),  # "1,2"
    Column("is_agent", Boolean, nullable=False),
    Column("is_supervisor", Boolean, nullable=False),
    Column("explicit_available", Boolean, nullable=True),  # None: follow presence
    Column("online", Boolean, nullable=False),
    Column("last_assigned", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    PrimaryKeyConstraint("agent_id", name="tk_agents_pkey"),
)

tickets = Table(
    "tk_tickets",
    metadata,
    Column("ticket_id", String(ID), nullable=False),
    Column("conversation_id", String(ID), nullable=True),
    Column("requester_id", String(ID), nullable=False),
    Column("segment", String(32), nullable=False),
    Column("line", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee", String(ID), nullable=True),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("queue_due_at", UtcDateTime, nullable=True),
    Column("version", BigInteger, nullable=False),
    PrimaryKeyConstraint("ticket_id", name="tk_tickets_pkey"),
    Index("tk_tickets_conversation", "conversation_id", "opened_at"),
    Index("tk_tickets_assignee", "assignee", "status"),
    Index("tk_tickets_queue", "line", "segment", "status", "assignee"),
)

timers = Table(
    "tk_timers",
    metadata,
    Column("ticket_id", String(ID), nullable=False),
    Column("clock", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # breach | warning
    Column("due_at", UtcDateTime, nullable=False),
    Column("fired", Boolean, nullable=False),
    Column("claimed_until", UtcDateTime, nullable=True),  # a process is firing it (a lease)
    PrimaryKeyConstraint("ticket_id", "clock", "kind", name="tk_timers_pkey"),
    Index("tk_timers_due", "fired", "due_at"),
)
