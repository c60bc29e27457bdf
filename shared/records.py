"""`record`: the dataclass for values made once per event on a hot path (read-all rows, appends,
delivery frames): slotted, and read-only to the type checker (`make lint`) rather than at run time.

A frozen dataclass's `__init__` sets each field through `object.__setattr__`: ~4.5 µs for a
15-field RecordedEvent against ~0.3 µs for a plain slotted one, a third of what the driver takes to
read the row (docs/decisions/0021-read-path-and-heap.md). Elsewhere `@dataclass(frozen=True)` stays
the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """A slotted dataclass that mypy treats as frozen: assigning one of its fields is a type error."""
    return dataclass(slots=True)(cls)
