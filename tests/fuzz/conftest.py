"""Fuzzing (docs/reliability.md, "Fuzzing"): short in `make test`, longer in `make fuzz`.

FUZZ_EXAMPLES sets how many generated cases each schemathesis operation gets (default 3, `make fuzz`
uses 100); the hand-written hostile inputs (frames, broker events, forged tokens, oversize bodies) run
in full either way: they are few and cheap.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The e2e support modules (chat_support, realtime_support) are imported by name, as the e2e tests do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.fuzz)
