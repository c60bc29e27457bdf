"""Generate docs/configuration.md from the Settings model, so the reference never drifts from the code.

Run `python -m shared.config_doc` (or `make docs`); a test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared.config import ENV_PREFIX, Settings

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

HEADER = """# Configuration reference

Every setting is an environment variable with the prefix `LEDGERLINE_`. Settings are validated when a
service starts: an unknown `LEDGERLINE_*` variable (a typo) or an invalid value stops it with a message
naming each problem (exit code 2 from the CLI).

This file is generated from `shared/config.py` by `make docs`; do not edit it by hand.

| variable | default | meaning |
| --- | --- | --- |
"""


def render() -> str:
    lines = [HEADER]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "—" if default is None else f"`{default}`"
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description or ''} |\n")
    return "".join(lines)


def main() -> int:
    DOC_PATH.write_text(render())
    print(f"wrote {DOC_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
