"""Broker errors. Each carries the names and values an operator needs to act on it."""

from __future__ import annotations

from shared.errors import LedgerlineError
from shared.redact import mask_url


class BrokerError(LedgerlineError):
    """Base of the broker adapters' errors."""


class UnsupportedBrokerUrl(BrokerError):
    def __init__(self, url: str, supported: tuple[str, ...]) -> None:
        self.url = mask_url(url)  # the message ends up in logs: never the password
        self.supported = supported
        super().__init__(f"broker URL {self.url!r} has an unsupported scheme; use one of {', '.join(supported)}")


class BrokerUnavailable(BrokerError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)  # the message ends up in logs: never the password
        self.reason = reason.replace(url, self.url)
        super().__init__(f"broker at {self.url!r} is unavailable: {self.reason}")


class TopologyError(BrokerError):
    """A stream, consumer, exchange or queue could not be created as configured."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"cannot set up {name!r}: {reason}")


class PublishFailed(BrokerError):
    """The broker did not confirm an event; the caller republishes the batch (the event id de-duplicates)."""

    def __init__(self, event_id: str, destination: str, reason: str, confirmed: int, total: int) -> None:
        self.event_id = event_id
        self.destination = destination
        self.reason = reason
        self.confirmed = confirmed
        self.total = total
        super().__init__(f"event {event_id} to {destination!r} not confirmed ({reason}); {confirmed}/{total} confirmed")


def one_line(text: str, limit: int = 2000) -> str:
    """Error text fit for a message header: one line, bounded (headers cannot carry newlines)."""
    flat = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
