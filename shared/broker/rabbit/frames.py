"""AMQP 0-9-1 frames of an event publish, encoded by hand.

pamqp (under aiormq) encodes a publish as three frame objects, each marshalled generically: ~16 µs of
the relay's CPU per event, for bytes that differ between events only in the routing key, the
message id, the type and the body. Here the method frame is built once per (exchange, routing key)
and cached, and the content header is packed from the four properties an event carries. A unit test
checks these bytes against pamqp's for the same publish (tests/unit/test_rabbit_frames.py).

Layout (AMQP 0-9-1, section 4.2.3 and the Basic class): each frame is type (octet), channel (short),
payload size (long), payload, 0xCE.
"""

from __future__ import annotations

import struct
from functools import lru_cache

FRAME_END = b"\xce"
_METHOD, _HEADER, _BODY = 1, 2, 3
_BASIC = 60
_PUBLISH = 40
# Property flags of the content header, the highest bit first: content-type (15), delivery-mode (12),
# message-id (7), type (5); the values follow in that order.
_FLAGS = 0x8000 | 0x1000 | 0x0080 | 0x0020
_FRAME_HEAD = struct.Struct(">BHI")
_HEADER_HEAD = struct.Struct(">HHQH")


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEAD.pack(kind, channel, len(payload)) + payload + FRAME_END


def shortstr(value: str) -> bytes:
    """An AMQP short string (length octet + UTF-8), e.g. for `content`'s content type."""
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {value[:40]!r}…")
    return bytes((len(data),)) + data


def publish_method_uncached(channel: int, exchange: str, routing_key: str) -> bytes:
    """Basic.Publish (not mandatory, not immediate)."""
    args = struct.pack(">HHH", _BASIC, _PUBLISH, 0) + shortstr(exchange) + shortstr(routing_key) + b"\x00"
    return _frame(_METHOD, channel, args)


# Events have a few hundred routing keys (type x partition): the same bytes every time.
publish_method = lru_cache(maxsize=4096)(publish_method_uncached)


def content(
    channel: int,
    body: bytes,
    content_type: bytes,
    message_id: str,
    message_type: str,
    delivery_mode: int,
    max_body_frame: int,
) -> bytes:
    """The content header (properties) and the body frames, split at `max_body_frame` bytes.

    `content_type` comes as an encoded short string (shortstr), since it is the same for every event."""
    header = (
        _HEADER_HEAD.pack(_BASIC, 0, len(body), _FLAGS)
        + content_type
        + bytes((delivery_mode,))
        + shortstr(message_id)
        + shortstr(message_type)
    )
    return _frame(_HEADER, channel, header) + _body_frames(channel, body, max_body_frame)


def bare_content(channel: int, body: bytes, max_body_frame: int) -> bytes:
    """A content header without properties (an ephemeral frame: receivers read the routing key and
    the body only) and the body frames."""
    return _frame(_HEADER, channel, _HEADER_HEAD.pack(_BASIC, 0, len(body), 0)) + _body_frames(
        channel, body, max_body_frame
    )


def _body_frames(channel: int, body: bytes, max_body_frame: int) -> bytes:
    """The body split at `max_body_frame` bytes, as aiormq splits it (no frame for an empty body)."""
    if len(body) <= max_body_frame:
        return _frame(_BODY, channel, body) if body else b""
    return b"".join(_frame(_BODY, channel, body[i : i + max_body_frame]) for i in range(0, len(body), max_body_frame))
