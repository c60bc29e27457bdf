"""Deterministic event ids: the same business fact always gets the same UUID.

The event id is the event store's idempotency key (appending an id twice stores it once) and the
broker's de-duplication id. A client that retries a send after a timeout, or a worker that
re-handles a redelivered message (tickets' SLA timer, the gateway's Delivered/Read), must not
create a second event: so those ids are derived with UUIDv5 from the parts that identify the fact,
never drawn at random.

The namespace below was generated once (uuid4) and must never change: changing it would give every
retried command a new id and break idempotency across a deploy.
"""

from __future__ import annotations

import uuid

import orjson

LEDGERLINE_NAMESPACE = uuid.UUID("69d2e414-234c-47e8-9644-8e9505c32193")


def deterministic_id(*parts: str) -> uuid.UUID:
    """A UUIDv5 of `parts` under the Ledgerline namespace.

    The parts are encoded as a JSON array, so that ("a:b", "c") and ("a", "b:c") differ: no
    separator character can make two different tuples collide.
    """
    if not parts:
        raise ValueError("deterministic_id needs at least one part")
    return uuid.uuid5(LEDGERLINE_NAMESPACE, orjson.dumps(parts).decode("utf-8"))


def message_event_id(conversation_id: str | uuid.UUID, sender_id: str, client_msg_id: str) -> uuid.UUID:
    """The id of the MessageSent event for a client's send: a retried send yields the same id.

    `client_msg_id` is chosen by the client per message; it is scoped by conversation and sender so
    that two clients cannot collide (or deduplicate each other's messages) by reusing one.
    """
    return deterministic_id("MessageSent", str(conversation_id), sender_id, client_msg_id)


def message_id(conversation_id: str | uuid.UUID, sender_id: str, client_msg_id: str) -> uuid.UUID:
    """The message id of a client's send: stable across retries, distinct from its event id."""
    return deterministic_id("message", str(conversation_id), sender_id, client_msg_id)
