"""Access and bad input through HTTP: non-members get 404; bad tokens 401; bad requests get a clear
problem+json and append nothing (the store's head is compared before and after)."""

from __future__ import annotations

import time
from pathlib import Path

import chat_support
import jwt
import pytest
from chat_support import FILE_LIMIT, ChatStack, stack_on, token

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures
PROBLEM = "application/problem+json"


async def test_non_members_get_404_on_conversation_messages_and_files(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    up = await stack.http.post(
        "/v1/files", headers=stack.headers("alice"), files={"file": ("a.txt", b"secret notes\n", "text/plain")}
    )
    file_id = up.json()["file_id"]
    await stack.send("alice", c, "see attached", attachments=[file_id])
    for path in (f"/v1/conversations/{c}", f"/v1/conversations/{c}/messages", f"/v1/files/{file_id}"):
        r = await stack.call("GET", path, "mallory")
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, path
    denied = await stack.call("POST", f"/v1/conversations/{c}/messages", "mallory", json={"client_msg_id": "x"})
    assert denied.status_code == 404
    assert (await stack.call("GET", f"/v1/files/{file_id}", "bob")).content == b"secret notes\n"


async def test_forged_expired_and_unsigned_tokens_get_401(stack: ChatStack) -> None:
    now = int(time.time())
    unsigned = jwt.encode({"sub": "alice", "exp": now + 60}, key=None, algorithm="none")  # type: ignore[arg-type]
    for bad in (token("alice", secret="not-the-secret-0123456789abcdef0123"), token("alice", ttl=-60), unsigned, "x"):
        r = await stack.http.get("/v1/conversations", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        assert r.json()["status"] == 401 and "Traceback" not in r.text
    assert (await stack.http.get("/v1/conversations")).status_code == 401


async def test_bad_input_answers_a_problem_and_appends_nothing(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    await stack.send("alice", c, "one")
    await stack.send("bob", c, "warm")  # bob is now in the directory: no UserSeen during the checks
    head = await stack.head()
    path = f"/v1/conversations/{c}/messages"
    cases = [
        ("POST", path, {"client_msg_id": "big", "text": "x" * 16_001}, 413, "text"),
        ("POST", path, {"client_msg_id": "u", "text": "hi", "colour": "red"}, 422, "colour"),
        ("POST", path, {"client_msg_id": 5, "text": "hi"}, 422, "client_msg_id"),
        ("POST", path, {"client_msg_id": "a", "text": "hi", "attachments": ["nope"]}, 422, "attachments[0]"),
        ("POST", "/v1/conversations/nope/messages", {"client_msg_id": "n", "text": "hi"}, 404, None),
        ("POST", f"/v1/conversations/{c}/read", {"up_to_seq": 99}, 422, "up_to_seq"),
        ("POST", f"/v1/conversations/{c}/read", {"up_to_seq": "1"}, 422, "up_to_seq"),
        ("POST", "/v1/conversations", {"kind": "channel", "members": []}, 422, "kind"),
    ]
    for method, url, body, status, field in cases:
        r = await stack.call(method, url, "bob", json=body)
        assert (r.status_code, r.headers["content-type"]) == (status, PROBLEM), (body, r.text)
        problem = r.json()
        assert {"type", "title", "status", "detail"} <= problem.keys() and problem["status"] == status
        if field is not None:
            assert field in [e["field"] for e in problem["errors"]], problem
    not_json = await stack.http.post(
        path, headers={**stack.headers("bob"), "Content-Type": "application/json"}, content=b"{"
    )
    assert not_json.status_code == 422 and not_json.headers["content-type"] == PROBLEM
    huge = await stack.http.post(path, headers=stack.headers("bob"), json={"client_msg_id": "h", "text": "é" * 200_000})
    assert huge.status_code == 413
    oversize = await stack.http.post(
        "/v1/files", headers=stack.headers("bob"), files={"file": ("big.txt", b"a" * (FILE_LIMIT + 1), "text/plain")}
    )
    assert oversize.status_code == 413 and oversize.json()["limit"] == stack.settings.max_file_size
    assert await stack.head() == head


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_rate_limit_answers_429_with_retry_after(backend: str, embedded_nats: str, tmp_path: Path) -> None:
    async with stack_on(backend, embedded_nats, tmp_path, rate_limit_per_minute=5) as limited:
        codes = [(await limited.call("GET", "/v1/unread", "alice")).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        r = await limited.call("GET", "/v1/unread", "alice")
        assert int(r.headers["retry-after"]) >= 1 and r.headers["content-type"] == PROBLEM
        assert (await limited.call("GET", "/v1/unread", "bob")).status_code == 200  # per user
