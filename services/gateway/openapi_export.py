"""`python -m services.gateway.openapi_export [--check]`: write the gateway's OpenAPI document to
docs/openapi.json (`make openapi`), or with --check exit 1 when the committed one is stale."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.gateway.app import create_app
from shared.config import load_settings

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
# Only to build the app: the document does not depend on the secret, and nothing is served.
_PLACEHOLDER_SECRET = "openapi-export-placeholder-secret-0123456789"


def render() -> str:
    app = create_app(load_settings({}, jwt_secret=_PLACEHOLDER_SECRET))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/openapi.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if current != text:
            print(f"{DOCUMENT} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
