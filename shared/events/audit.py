"""Audit stream (`audit`): every look at the audit trail is itself recorded.

Nothing here is marked personal: an auditor's id is an account key, and `filters` hold ids, event
types and time bounds (the audit API has no free-text search; if one is added, mark `filters`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt

from shared.events.base import Event
from shared.events.fields import FILTERS_MAX, Count, FilterValue, Id
from shared.events.registry import registry

# Filter names are the audit API's query parameter names: snake_case identifiers.
FilterName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


@registry.register
class AuditQueried(Event):
    type: Literal["AuditQueried"] = "AuditQueried"
    schema_version: Literal[1] = 1

    auditor_id: Id
    action: Literal["query", "replay", "export", "verify"]
    filters: dict[FilterName, FilterValue | StrictInt | None] = Field(default_factory=dict, max_length=FILTERS_MAX)
    record_count: Count
