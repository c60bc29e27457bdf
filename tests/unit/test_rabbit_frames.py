"""The hand-encoded publish frames are byte for byte what pamqp (aiormq's encoder) sends."""

from __future__ import annotations

import uuid

import pytest
from pamqp import commands, frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from shared.broker.rabbit import frames

CONTENT_TYPE = "application/cloudevents+json"


def pamqp_publish(channel: int, exchange: str, key: str, body: bytes, message_id: str, kind: str, chunk: int) -> bytes:
    properties = commands.Basic.Properties(
        content_type=CONTENT_TYPE, message_id=message_id, message_type=kind, delivery_mode=2
    )
    parts = [
        frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=key, mandatory=False), channel),
        frame.marshal(ContentHeader(0, len(body), properties), channel),
    ]
    parts += [frame.marshal(ContentBody(body[i : i + chunk]), channel) for i in range(0, len(body), chunk)]
    return b"".join(parts)


@pytest.mark.parametrize("size", [1, 1_100, 131_064, 131_065, 400_000])
@pytest.mark.parametrize("channel", [1, 300])
def test_a_publish_encodes_as_pamqp_does(size: int, channel: int) -> None:
    chunk = 131_072 - 8  # frame_max less the frame's own 8 bytes, as aiormq splits
    body = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    message_id, key = str(uuid.uuid4()), "MessageSent.13"
    ours = frames.publish_method(channel, "ledgerline.events", key) + frames.content(
        channel, body, frames.shortstr(CONTENT_TYPE), message_id, "MessageSent", 2, chunk
    )
    assert ours == pamqp_publish(channel, "ledgerline.events", key, body, message_id, "MessageSent", chunk)


def test_properties_beyond_ascii_are_utf8_and_too_long_strings_are_refused() -> None:
    ours = frames.publish_method(1, "ledgerline.events", "MessageSent.0") + frames.content(
        1, b"{}", frames.shortstr(CONTENT_TYPE), "id-ё", "Тип", 2, 1000
    )
    assert ours == pamqp_publish(1, "ledgerline.events", "MessageSent.0", b"{}", "id-ё", "Тип", 1000)
    with pytest.raises(ValueError, match="longer than 255"):
        frames.shortstr("x" * 256)


@pytest.mark.parametrize("size", [0, 300, 131_065])
def test_an_ephemeral_publish_without_properties_encodes_as_pamqp_does(size: int) -> None:
    chunk = 131_072 - 8
    body = b"\x01" * size
    ours = frames.publish_method_uncached(2, "ledgerline.ephemeral", "ledgerline.rt.user.amy") + frames.bare_content(
        2, body, chunk
    )
    theirs = [
        frame.marshal(commands.Basic.Publish(exchange="ledgerline.ephemeral", routing_key="ledgerline.rt.user.amy"), 2),
        frame.marshal(ContentHeader(0, len(body), commands.Basic.Properties()), 2),
    ]
    theirs += [frame.marshal(ContentBody(body[i : i + chunk]), 2) for i in range(0, len(body), chunk)]
    assert ours == b"".join(theirs)
