"""What the worker runtime checks before a handler sees an event from the broker: that its type and
schema version are in the catalogue and its payload validates against that model.

The relay only publishes what the event store accepted, but anything with access to the broker can
publish onto the stream (a buggy tool, an old producer, an attacker). A handler given such an event
may crash on it (retried, then dead-lettered with a confusing error) or, worse, skip it as a type it
does not project and advance its checkpoint to the event's claimed position, silently skipping every
real event below it. Screening dead-letters it at once with a reason that names the problem
(docs/decisions/0013-fuzzing-and-event-screening.md).
"""

from __future__ import annotations

from pydantic import ValidationError

from shared.events.envelope import RecordedEvent
from shared.events.registry import UnknownEventType

MAX_REASON_ERRORS = 3


def invalid_reason(event: RecordedEvent) -> str | None:
    """None when `event` decodes to its catalogue model (upcast from an older version); else why not."""
    try:
        event.event  # noqa: B018  (decoding is the check)
    except UnknownEventType as e:
        return f"invalid event: {e}"
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}"
            for err in e.errors()[:MAX_REASON_ERRORS]
        )
        return f"invalid event: {event.type} v{event.schema_version} payload breaks its schema: {problems}"
    except (ValueError, TypeError, KeyError) as e:  # an upcaster given a payload it cannot read
        return f"invalid event: {event.type} v{event.schema_version} cannot be upcast: {type(e).__name__}: {e}"
    return None
