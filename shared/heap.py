"""The cyclic garbage collector's settings for Ledgerline's processes (docs/decisions/0021-read-path-and-heap.md).

CPython frees most objects by reference counting; the cyclic collector runs besides, and each of its
full collections walks every container the process holds. A started service holds ~150,000 of them
(modules, classes, pydantic and SQLAlchemy schemas, the app's routes) that live as long as the
process, and one full collection of those took ~100 ms on the 2-core VM: a pause in the middle of
requests, and a read-all spending a third of its time in the collector. `settle()` moves what
exists once the process has started into the permanent generation (`gc.freeze()`), which
collections skip, and lets more young objects accumulate before a young collection: a read-all page
of 1,000 events allocates tens of thousands, nearly all freed by reference counting anyway.
"""

from __future__ import annotations

import gc

# Allocations (minus deallocations) of containers between young collections; CPython's default 700.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Call once a process has imported its modules and built its parts (may be called again)."""
    gc.collect()  # first: garbage cycles frozen now would stay forever
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
