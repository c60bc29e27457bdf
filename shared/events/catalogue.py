"""Every event of the catalogue: importing this module registers them all in `registry`.

The global registry imports it by itself on first use, so `RecordedEvent.event` works anywhere;
import it explicitly where the full list matters at import time (schema export, tests).
"""

from __future__ import annotations

from shared.events import audit, conversation, tickets, users
from shared.events.registry import registry

__all__ = ["audit", "conversation", "registry", "tickets", "users"]
