"""The notifier's settings (LEDGERLINE_NOTIFY_WEBHOOK_URL, LEDGERLINE_NOTIFY_WEBHOOK_SECRET,
LEDGERLINE_NOTIFY_BATCH_SECONDS). The webhook is enabled only when both the URL and the secret are set."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings


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
    return NotifySettings(
        settings.notify_webhook_url or None, settings.notify_webhook_secret or "", settings.notify_batch_seconds
    )
