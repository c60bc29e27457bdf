"""The base of every event in the catalogue.

An event is a frozen pydantic model. `type` and `schema_version` are literal fields, so that the JSON
Schema of each event names them, but they travel in the envelope (their own columns in the store,
CloudEvents `type`), not in the stored payload: `payload_of(event)` leaves them out.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

ENVELOPE_FIELDS = frozenset({"type", "schema_version"})


class Event(BaseModel):
    """Base class of all events. Subclasses set `type: Literal[...]` and `schema_version: Literal[n]`."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    type: str
    schema_version: int

    # Names of fields that hold personal data (152-FZ): message texts, people's names, file names.
    # The audit issue encrypts these per person at append (crypto-shredding); see docs/personal-data.md.
    personal_fields: ClassVar[frozenset[str]] = frozenset()

    def payload(self) -> dict[str, Any]:
        """The stored form: every field but the envelope's, JSON-ready."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))
