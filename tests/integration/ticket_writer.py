"""A writer of real ticket events (shared/events/tickets.py) for the support read-model tests: each
call appends one catalogue event through the store with the business time given. (No tests here.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events import tickets as ev
from shared.events.envelope import NewEvent
from shared.store.sql import SqlEventStore


@dataclass
class Desk:
    store: SqlEventStore
    status: dict[str, str] = field(default_factory=dict)
    requester: dict[str, str] = field(default_factory=dict)
    line: dict[str, int] = field(default_factory=dict)
    conversation: dict[str, str] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)

    async def _append(self, ticket: str, event: Any, at: datetime, actor: str = "system:tickets") -> None:
        await self.store.append(f"ticket-{ticket}", [NewEvent(event, actor, occurred_at=at)])

    async def open(
        self,
        ticket: str,
        requester: str,
        at: datetime,
        *,
        segment: str = "customers",
        priority: str = "normal",
        subject: str = "It does not work",
    ) -> None:
        conv = f"support-{requester}"
        self.status[ticket], self.requester[ticket], self.line[ticket] = "open", requester, 1
        self.conversation[ticket] = conv
        event = ev.TicketOpened(
            ticket_id=ticket,
            conversation_id=conv,
            requester_id=requester,
            segment=segment,
            channel="chat",
            subject=subject,
            priority=priority,
            line=1,
        )
        await self._append(ticket, event, at)

    async def message(self, ticket: str, author: str, at: datetime, *, seq: int | None = None) -> None:
        """A chat message of the ticket's conversation linked to it (`seq` when the test sent it)."""
        conv = self.conversation[ticket]
        if seq is None:
            seq = self.seqs[conv] = self.seqs.get(conv, 0) + 1
        event = ev.TicketMessageLinked(
            ticket_id=ticket, conversation_id=conv, message_id=str(uuid.uuid4()), seq=seq, author_id=author, public=True
        )
        await self._append(ticket, event, at)

    async def to(self, ticket: str, status: str, at: datetime, by: str = "system:tickets") -> None:
        event = ev.TicketStatusChanged(ticket_id=ticket, from_status=self.status[ticket], to_status=status, by=by)
        self.status[ticket] = status
        await self._append(ticket, event, at, by)

    async def assign(self, ticket: str, agent: str, at: datetime) -> None:
        line = self.line[ticket]
        await self._append(
            ticket, ev.TicketAssigned(ticket_id=ticket, agent_id=agent, line=line, assigned_by="sup"), at
        )

    async def escalate(self, ticket: str, to_line: int, at: datetime) -> None:
        event = ev.TicketEscalated(
            ticket_id=ticket, from_line=self.line[ticket], to_line=to_line, reason="manual", by="sup"
        )
        self.line[ticket] = to_line
        await self._append(ticket, event, at)

    async def note(self, ticket: str, author: str, text: str, at: datetime) -> None:
        event = ev.TicketNoteAdded(ticket_id=ticket, note_id=str(uuid.uuid4()), author_id=author, text=text)
        await self._append(ticket, event, at, author)

    async def rate(self, ticket: str, score: int, at: datetime, comment: str | None = None) -> None:
        requester = self.requester[ticket]
        await self._append(ticket, ev.TicketRated(ticket_id=ticket, score=score, comment=comment, by=requester), at)

    async def clock(self, ticket: str, clock: str, due: datetime, at: datetime) -> None:
        target = max(1, int((due - at).total_seconds()))
        event = ev.TicketSlaClockStarted(ticket_id=ticket, clock=clock, target_seconds=target, due_at=due)
        await self._append(ticket, event, at)

    async def fulfilled(self, ticket: str, clock: str, at: datetime) -> None:
        await self._append(ticket, ev.TicketSlaClockFulfilled(ticket_id=ticket, clock=clock, elapsed_seconds=1), at)

    async def paused(self, ticket: str, clock: str, at: datetime) -> None:
        event = ev.TicketSlaClockPaused(ticket_id=ticket, clock=clock, remaining_seconds=600)
        await self._append(ticket, event, at)

    async def breached(self, ticket: str, clock: str, due: datetime) -> None:
        await self._append(ticket, ev.TicketSlaBreached(ticket_id=ticket, clock=clock, due_at=due), due)
