"""The realtime wire between the delivery worker and the gateways (docs/realtime.md).

Ephemeral subjects (core NATS; on RabbitMQ routing keys on the non-durable exchange
`ledgerline.ephemeral`):

    ledgerline.rt.user.<token>       frames for one user's sockets (the gateway holding them forwards)
    ledgerline.rt.presence.<token>   presence heartbeats of one user, from each gateway holding sockets

`<token>` is the user id when it is a plain token ([A-Za-z0-9_-], not starting with `~`), else `~`
and the hex of its UTF-8 bytes: a host system's user id may hold dots or spaces, which a subject
cannot. The body of a user-subject message is the frame, JSON, exactly as the socket sends it.

Both services import this module: it is the one definition of the wire (a candidate for shared/
once a third user appears).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

USER_PREFIX = "ledgerline.rt.user."
PRESENCE_PREFIX = "ledgerline.rt.presence."
PRESENCE_ALL = PRESENCE_PREFIX + "*"

_PLAIN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_~-]{0,199}$")

Frame = dict[str, Any]


def subject_token(user_id: str) -> str:
    if _PLAIN.match(user_id) and not user_id.startswith("~"):
        return user_id
    return "~" + user_id.encode().hex()


def user_subject(user_id: str) -> str:
    return USER_PREFIX + subject_token(user_id)


def presence_subject(user_id: str) -> str:
    return PRESENCE_PREFIX + subject_token(user_id)


def encode(frame: Frame) -> bytes:
    """Compact UTF-8 JSON; datetimes as ISO 8601 (orjson's RFC 3339 form is `isoformat()`'s for UTC)."""
    return orjson.dumps(frame)
