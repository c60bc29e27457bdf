"""JetStream topology: the events stream, the dead-letter stream and the per-partition durable consumers.

Durability: both streams use file storage. The server flushes to disk on its own schedule unless it
runs with `jetstream { sync_interval: always }`: an acknowledged publish is otherwise not yet on
disk (see docs/broker.md). That is server configuration, not stream configuration, so `ledgerline up`
writes it into the embedded server's config and production operators set it.
"""

from __future__ import annotations

import json
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from shared.broker.errors import TopologyError
from shared.broker.nats.names import NatsNames
from shared.broker.port import ConsumerSpec

# Nats-Msg-Id de-duplication window. The relay republishes at most what it published since its last
# checkpoint, within seconds of a crash; two minutes (the server default) covers that with margin
# while keeping the server's id index small. Older duplicates are absorbed by the handler contract.
DUPLICATE_WINDOW_SECONDS = 120.0

# The broker-side delivery limit sits above the runtime's: the runtime dead-letters (with the error)
# at its own limit; the broker's limit only matters when a process dies on every delivery.
BROKER_MAX_DELIVER_MARGIN = 3

# JetStream API calls answer in milliseconds; five seconds means the server is in trouble.
API_TIMEOUT = 5.0


# JetStream API error codes meaning "cannot place that many copies": 10074 "replicas > 1 not supported
# in non-clustered mode" (a single server), 10005 "no suitable peers for placement" (too few nodes).
ERR_REPLICAS_NOT_PLACEABLE = (10074, 10005)


class ReplicasNotHonoured(TopologyError):
    """The server cannot keep the stream copies asked for (LEDGERLINE_NATS_REPLICAS)."""


async def ensure_streams(js: JetStreamContext, names: NatsNames, max_age: float | None, replicas: int = 1) -> bool:
    """Both streams with `replicas` copies each (LEDGERLINE_NATS_REPLICAS): 1 on a single server, 3 on
    a 3-node cluster so that a node may fail without losing acknowledged events. True when the events
    stream takes atomic batch publishes (NATS 2.12 and later; an older server ignores the setting and
    its answer does not echo it)."""
    info = await _ensure_stream(js, names.stream, [f"{names.subject_prefix}.>"], max_age, replicas, atomic=True)
    # Dead letters are kept until an operator removes them: no age limit.
    await _ensure_stream(js, names.dead_stream, [f"{names.dead_prefix}.>"], None, replicas)
    return bool(info.config.allow_atomic)


async def _ensure_stream(
    js: JetStreamContext, name: str, subjects: list[str], max_age: float | None, replicas: int, atomic: bool = False
) -> api.StreamInfo:
    config = api.StreamConfig(
        name=name,
        subjects=subjects,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=max_age,
        num_replicas=replicas,
        allow_atomic=True if atomic else None,
    )
    try:
        return await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        # Exists with another configuration (e.g. a changed max_age): apply ours.
        try:
            return await js.update_stream(config)
        except nats.js.errors.Error as err:
            raise _topology_error(name, err, replicas) from err
    except nats.js.errors.Error as err:
        raise _topology_error(name, err, replicas) from err


def _topology_error(name: str, err: nats.js.errors.Error, replicas: int) -> TopologyError:
    if isinstance(err, nats.js.errors.APIError) and replicas > 1 and err.err_code in ERR_REPLICAS_NOT_PLACEABLE:
        reason = (
            f"the NATS server cannot keep {replicas} copies of the stream (it answered: {err.description});"
            " use 1 on a single server, at most the number of nodes on a cluster"
        )
        return ReplicasNotHonoured(name, reason)
    return TopologyError(name, str(err))


def supports_filter_subjects(nc: NATS) -> bool:
    """Several filter subjects per consumer came with nats-server 2.10."""
    version = nc.connected_server_version
    return (version.major, version.minor) >= (2, 10)


def consumer_config(names: NatsNames, spec: ConsumerSpec, multi_filter: bool) -> api.ConsumerConfig:
    durable = names.durable(spec.kind, spec.partition)
    max_deliver = spec.max_deliver + BROKER_MAX_DELIVER_MARGIN
    config = api.ConsumerConfig(
        name=durable,
        durable_name=durable,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        max_deliver=max_deliver,
        # Every redelivery after exactly `ack_wait` (no growing back-off): a new owner of the partition
        # waits that long for a previous owner's unacked messages to expire, and the server then
        # delivers them before anything newer (shared/broker/consume.py, "Takeover").
        ack_wait=spec.ack_wait,
        # One batch outstanding at a time: a full batch held by a killed owner blocks newer messages.
        max_ack_pending=spec.batch_size,
        max_waiting=8,
        description=f"ledgerline worker {spec.kind}, partition {spec.partition}",
    )
    if spec.types is not None and multi_filter:
        config.filter_subjects = sorted(names.event_subject(t, spec.partition) for t in spec.types)
    else:
        # nats-server 2.9: one filter per consumer; the adapter acks the types the worker ignores.
        config.filter_subject = names.partition_filter(spec.partition)
    return config


async def ensure_consumer(nc: NATS, stream: str, config: api.ConsumerConfig) -> None:
    """Create the durable consumer, or update its editable fields when it exists.

    The request goes to `CONSUMER.CREATE.<stream>.<name>` without the filter token that nats-py would
    append: our filters hold wildcards, which may not appear in a request subject.
    """
    assert config.name is not None
    request: dict[str, Any] = {"stream_name": stream, "config": config.as_dict()}
    subject = f"$JS.API.CONSUMER.CREATE.{stream}.{config.name}"
    try:
        reply = await nc.request(subject, json.dumps(request).encode(), timeout=API_TIMEOUT)
    except nats.errors.Error as err:
        raise TopologyError(f"{stream}/{config.name}", str(err)) from err
    answer = json.loads(reply.data)
    if "error" in answer:
        raise TopologyError(f"{stream}/{config.name}", json.dumps(answer["error"]))
