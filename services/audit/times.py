"""Moments given on the command line (kept light: `ledgerline --help` imports it)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def moment(text: str) -> datetime:
    """An ISO-8601 time for --from/--to/--as-of; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from e
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
