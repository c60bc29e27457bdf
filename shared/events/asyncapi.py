"""The AsyncAPI 3.0 document of the event catalogue, as other systems see it on either broker.

One channel per event type and broker (the partition is a channel parameter), each carrying every
registered version of that type as a CloudEvent whose `data` refers to the type's JSON Schema file
next to this document. Built by `schema_export`, which writes it to schemas/asyncapi.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.events.base import Event
from shared.events.cloudevents import CONTENT_TYPE, cloudevent_type
from shared.events.partition import DEFAULT_PARTITIONS

ASYNCAPI_FILE = "asyncapi.json"
ASYNCAPI_VERSION = "3.0.0"
# The catalogue's document version: bump the major part when an event version is removed (never, so far).
DOCUMENT_VERSION = "1.0.0"
NATS_STREAM = "LEDGERLINE_EVENTS"
NATS_SUBJECT_PREFIX = "ledgerline.events"
RABBIT_EXCHANGE = "ledgerline.events"

_DESCRIPTION = f"""Events of Ledgerline, the event-sourced messaging backend, as CloudEvents 1.0
(structured JSON).

Every event goes to one partition p in 0..P-1, p = crc32(utf-8 stream id) mod P, so that all events
of one stream share a partition and arrive in stream order. P is fixed when the broker topology is
first created (default {DEFAULT_PARTITIONS}) and is in each event's `partition` extension.

NATS JetStream: stream `{NATS_STREAM}`, subject `{NATS_SUBJECT_PREFIX}.<Type>.<p>`; subscribe to
`{NATS_SUBJECT_PREFIX}.>` for everything or `{NATS_SUBJECT_PREFIX}.MessageSent.*` for one type.
The `Nats-Msg-Id` header is the event id (JetStream de-duplication).

RabbitMQ: topic exchange `{RABBIT_EXCHANGE}`, routing key `<Type>.<p>`; bind `#` for everything or
`MessageSent.*` for one type. The AMQP `message_id` property is the event id.

Delivery is at least once: de-duplicate on the CloudEvents `id`; `position` orders all events.
Fields listed under `x-personal-data` in a schema hold personal data (152-FZ)."""


def schema_file(type_: str, version: int) -> str:
    return f"{type_}.v{version}.json"


def _key(model: type[Event]) -> tuple[str, int]:
    return model.model_fields["type"].default, model.model_fields["schema_version"].default


def cloudevent_schema() -> dict[str, Any]:
    """The CloudEvents envelope Ledgerline sends (see shared.events.cloudevents)."""
    uuid_string = {"type": "string", "format": "uuid"}
    time = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC, microseconds"}
    return {
        "type": "object",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "data",
            "position",
            "streamversion",
            "actor",
            "recordedat",
            "partition",
            "prevhash",
            "hash",
        ],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": uuid_string | {"description": "the event id; the same on every redelivery"},
            "source": {"type": "string", "pattern": "^ledgerline/", "description": "ledgerline/<service>"},
            "type": {"type": "string", "pattern": "^ledgerline\\.[A-Za-z][A-Za-z0-9]*\\.v[1-9][0-9]*$"},
            "subject": {"type": "string", "description": "the stream id, e.g. conversation-<uuid>"},
            "time": time | {"description": "when it happened (occurred_at)"},
            "datacontenttype": {"const": "application/json"},
            "data": {"type": "object", "description": "the event payload; see the type's schema"},
            "position": {"type": "integer", "minimum": 1, "description": "global, gapless order"},
            "streamversion": {"type": "integer", "minimum": 1, "description": "order within the stream"},
            "correlationid": uuid_string | {"description": "omitted when none"},
            "causationid": uuid_string | {"description": "omitted when none"},
            "actor": {"type": "string", "description": "a user id or system:<service>"},
            "recordedat": time | {"description": "when the store recorded it"},
            "partition": {"type": "integer", "minimum": 0, "description": "crc32(subject) mod P"},
            "prevhash": {"type": "string", "description": "hash of the previous event in the chain"},
            "hash": {"type": "string", "description": "SHA-256 over this event's canonical form"},
            "metadata": {"type": "string", "description": "a JSON object as a string; omitted when empty"},
        },
    }


def _message(model: type[Event]) -> dict[str, Any]:
    type_, version = _key(model)
    summary = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ") or type_
    return {
        "name": type_,
        "title": f"{type_} v{version}",
        "summary": " ".join(summary.split()),
        "contentType": CONTENT_TYPE,
        "correlationId": {"location": "$message.payload#/correlationid"},
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": cloudevent_type(type_, version)},
                        "data": {"$ref": schema_file(type_, version)},
                    },
                },
            ]
        },
    }


def _channels(type_: str, message_ids: list[str]) -> dict[str, dict[str, Any]]:
    messages = {m: {"$ref": f"#/components/messages/{m}"} for m in message_ids}
    partition = {"$ref": "#/components/parameters/partition"}
    return {
        f"nats.{type_}": {
            "address": f"{NATS_SUBJECT_PREFIX}.{type_}.{{partition}}",
            "title": f"{type_} on NATS JetStream (stream {NATS_STREAM})",
            "servers": [{"$ref": "#/servers/nats"}],
            "parameters": {"partition": partition},
            "messages": messages,
        },
        f"rabbitmq.{type_}": {
            "address": f"{type_}.{{partition}}",
            "title": f"{type_} on RabbitMQ (exchange {RABBIT_EXCHANGE}, routing key)",
            "servers": [{"$ref": "#/servers/rabbitmq"}],
            "parameters": {"partition": partition},
            "messages": messages,
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": RABBIT_EXCHANGE, "type": "topic", "durable": True, "vhost": "/"},
                    "bindingVersion": "0.3.0",
                }
            },
        },
    }


def _operations(channel_ids: Iterable[str], channels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        f"receive.{channel_id}": {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channels[channel_id]["messages"]],
        }
        for channel_id in channel_ids
    }


def asyncapi_document(models: Iterable[type[Event]]) -> dict[str, Any]:
    """The AsyncAPI document for `models` (every registered version of every type)."""
    by_type: dict[str, list[type[Event]]] = {}
    for model in sorted(models, key=_key):
        by_type.setdefault(_key(model)[0], []).append(model)
    messages: dict[str, Any] = {}
    channels: dict[str, dict[str, Any]] = {}
    for type_, versions in by_type.items():
        ids = [f"{type_}.v{_key(m)[1]}" for m in versions]
        messages.update({message_id: _message(m) for message_id, m in zip(ids, versions, strict=True)})
        channels.update(_channels(type_, ids))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": "Ledgerline events", "version": DOCUMENT_VERSION, "description": _DESCRIPTION},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {"host": "localhost:4222", "protocol": "nats", "description": f"stream {NATS_STREAM}"},
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": f"topic exchange {RABBIT_EXCHANGE}",
            },
        },
        "channels": channels,
        "operations": _operations(sorted(channels), channels),
        "components": {
            "schemas": {"CloudEvent": cloudevent_schema()},
            "messages": messages,
            "parameters": {
                "partition": {
                    "description": f"crc32(utf-8 stream id) mod P; P is {DEFAULT_PARTITIONS} unless the "
                    "deployment chose otherwise when it created the broker topology",
                    "examples": ["0", str(DEFAULT_PARTITIONS - 1)],
                }
            },
        },
    }
