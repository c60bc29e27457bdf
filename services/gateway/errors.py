"""The gateway's domain errors. They carry data and know nothing of HTTP: the routes map them.

Suggested mapping (the routes own it): NotFound 404, NotAllowed 403 (a non-member never gets it:
membership failures are NotFound, so that a conversation's existence is not revealed), Invalid 422,
Conflict 409, Unauthorized 401 with `WWW-Authenticate: Bearer`, TooLarge 413.
"""

from __future__ import annotations

from shared.errors import LedgerlineError


class GatewayError(LedgerlineError):
    """Base of the errors a command or the token check raises on purpose."""


class NotFound(GatewayError):
    """`what` (conversation, message, member …) with `id` does not exist *for the caller*."""

    def __init__(self, what: str, id: str) -> None:
        self.what = what
        self.id = id
        super().__init__(f"{what} {id!r} not found")


class NotAllowed(GatewayError):
    """The caller may see the resource but not do this to it (e.g. edit someone else's message)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Invalid(GatewayError):
    """One input is wrong: `field` names it (dotted path for nested inputs, e.g. `links[0].kind`)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class Conflict(GatewayError):
    """The command cannot apply to the resource's current state (retracted message, busy stream)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class Unauthorized(GatewayError):
    """The bearer token is missing or not acceptable; `reason` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TooLarge(GatewayError):
    """`what` is `size` long, beyond `limit` (characters for texts, bytes for files)."""

    def __init__(self, what: str, limit: int, size: int) -> None:
        self.what = what
        self.limit = limit
        self.size = size
        super().__init__(f"{what} is {size}, more than the limit of {limit}")
