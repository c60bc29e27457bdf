"""8 concurrent senders × 200 messages into one group over HTTP: seq 1..1600 contiguous, none lost
or doubled; a retry with the same client_msg_id answers the original."""

from __future__ import annotations

import asyncio

import chat_support
import pytest
from chat_support import ChatStack

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures

SENDERS, PER_SENDER = 8, 200


async def test_eight_concurrent_senders_get_contiguous_seqs_and_retries_answer_the_original(stack: ChatStack) -> None:
    senders = [f"s{n}" for n in range(SENDERS)]
    g = await stack.conversation(senders[0], "group", senders[1:], title="busy")
    path = f"/v1/conversations/{g}/messages"

    async def sender(user: str) -> list[tuple[str, int, str]]:
        out = []
        for n in range(PER_SENDER):
            body = {"client_msg_id": f"{user}-{n}", "text": f"{user} says {n}"}
            r = await stack.call("POST", path, user, json=body)
            while r.status_code == 409:  # a cross-process conflict ran out of retries: the client retries
                r = await stack.call("POST", path, user, json=body)
            assert r.status_code == 201, r.text
            out.append((body["client_msg_id"], r.json()["seq"], r.json()["message_id"]))
        return out

    results = [m for batch in await asyncio.gather(*(sender(u) for u in senders)) for m in batch]
    assert sorted(seq for _, seq, _ in results) == list(range(1, SENDERS * PER_SENDER + 1))
    head = await stack.head()
    retried = await asyncio.gather(
        *(
            stack.call("POST", path, client_id.split("-")[0], json={"client_msg_id": client_id, "text": "again"})
            for client_id, _, _ in results[::97]
        )
    )
    assert [(r.status_code, r.json()["seq"], r.json()["message_id"]) for r in retried] == [
        (201, seq, message_id) for _, seq, message_id in results[::97]
    ]
    assert await stack.head() == head  # the retries appended nothing
    # The other senders' last messages reach this reader through the projection: poll, bounded.
    deadline = asyncio.get_running_loop().time() + 10
    while len(page := (await stack.call("GET", f"{path}?after_seq=1590", senders[0])).json()) < 10:
        assert asyncio.get_running_loop().time() < deadline, page
        await asyncio.sleep(0.05)
    assert [m["seq"] for m in page] == list(range(1591, 1601))
