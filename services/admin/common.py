"""What the admin commands share: settings, an engine, progress on stderr."""

from __future__ import annotations

import sys
import time

from shared.config import Settings, load_settings
from shared.logging import configure_logging


def admin_settings(command: str) -> Settings:
    """Settings for an admin command; its logs go to stderr so stdout stays machine-readable."""
    settings = load_settings()
    configure_logging(f"cli.{command}", "warning" if settings.log_level == "info" else settings.log_level, "console")
    return settings


class ProgressLine:
    """A single updating line on stderr (only when stderr is a terminal, or when forced)."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self._label = label
        self._enabled = enabled
        self._started = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self._enabled or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        rate = done / max(now - self._started, 1e-9)
        percent = 100.0 * done / total if total else 100.0
        end = "\n" if done >= total else ""
        print(f"\r{self._label}: {done:,}/{total:,} ({percent:5.1f}%, {rate:,.0f}/s)", end=end, file=sys.stderr)
        sys.stderr.flush()
