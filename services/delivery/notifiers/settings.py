"""The notifier's settings, read through one typed accessor.

shared/config.py does not define them yet (requested: LEDGERLINE_NOTIFY_WEBHOOK_URL,
LEDGERLINE_NOTIFY_WEBHOOK_SECRET, LEDGERLINE_NOTIFY_BATCH_SECONDS); until it does, they read as their
defaults and the webhook is disabled (it needs both the URL and the secret). An unknown
LEDGERLINE_* variable stops a service, so they cannot be read from the environment behind the settings' back.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings

DEFAULT_BATCH_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class NotifySettings:
    webhook_url: str | None
    webhook_secret: str
    batch_seconds: float

    @property
    def webhook_enabled(self) -> bool:
        # An unsigned call would let anyone on the network forge notifications: both or nothing.
        return bool(self.webhook_url) and bool(self.webhook_secret)


def notify_settings(settings: Settings) -> NotifySettings:
    url = getattr(settings, "notify_webhook_url", None)
    secret = getattr(settings, "notify_webhook_secret", None)
    batch = getattr(settings, "notify_batch_seconds", DEFAULT_BATCH_SECONDS)
    return NotifySettings(
        str(url) if url else None,
        str(secret or ""),
        float(batch) if isinstance(batch, int | float) else DEFAULT_BATCH_SECONDS,
    )
