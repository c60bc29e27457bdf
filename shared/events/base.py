"""The base of every event in the catalogue.

An event is a frozen pydantic model. `type` and `schema_version` are literal fields, so that the JSON
Schema of each event names them, but they travel in the envelope (their own columns in the store,
CloudEvents `type`), not in the stored payload: `payload_of(event)` leaves them out.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonDict

ENVELOPE_FIELDS = frozenset({"type", "schema_version"})
# The JSON Schema key that lists a model's personal-data fields, for other systems and for the audit.
PERSONAL_DATA_KEY = "x-personal-data"


def _mark_personal_data(schema: JsonDict, model: type[BaseModel]) -> None:
    """Adds `x-personal-data` (sorted field names) to the JSON Schema of a model that has any."""
    personal: frozenset[str] = getattr(model, "personal_fields", frozenset())
    if personal:
        schema[PERSONAL_DATA_KEY] = [name for name in sorted(personal)]


class Event(BaseModel):
    """Base class of all events. Subclasses set `type: Literal[...]` and `schema_version: Literal[n]`."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=False, json_schema_extra=_mark_personal_data
    )

    type: str
    schema_version: int

    # Names of fields that hold personal data (152-FZ): message texts, people's names, file names.
    # The audit issue encrypts these per person at append (crypto-shredding); see docs/personal-data.md.
    personal_fields: ClassVar[frozenset[str]] = frozenset()

    def payload(self) -> dict[str, Any]:
        """The stored form: every field but the envelope's, JSON-ready."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))


class EventPart(BaseModel):
    """Base of models nested in events (an attachment, an object link): frozen, strict like events."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_mark_personal_data)

    # Personal-data fields of the part; the event lists the field that holds the part as well.
    personal_fields: ClassVar[frozenset[str]] = frozenset()
