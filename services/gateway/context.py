"""What the routes use, built once per app in the lifespan and kept as `app.state.gateway`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.commands.directory import DirectoryService
from services.gateway.commands.service import ConversationService
from services.gateway.commands.tickets import TicketService
from services.gateway.consistency import ReadYourWrites
from services.gateway.files.store import FileStore
from services.gateway.ratelimit import RateLimiter
from shared.config import Settings


@dataclass(frozen=True, slots=True)
class Gateway:
    settings: Settings
    conversations: ConversationService
    directory: DirectoryService
    engine: AsyncEngine
    """The read engine: queries of the read models and the files table (not the store's writer)."""
    consistency: ReadYourWrites
    limiter: RateLimiter
    files: FileStore
    tickets: TicketService
