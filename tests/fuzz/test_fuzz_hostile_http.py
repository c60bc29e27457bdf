"""Oversize bodies, files and texts, and tokens forged in each known way: each answers its documented 4xx
as problem+json (never a stack trace) and appends nothing (the store's head is compared before and after)."""

from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import chat_support
import httpx
import jwt
import pytest
import pytest_asyncio
from chat_support import FILE_LIMIT, SECRET, ChatStack, stack_on, token
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures
PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, what: str) -> None:
    assert r.status_code == status, (what, r.status_code, r.text[:300])
    assert r.headers["content-type"] == PROBLEM, (what, r.headers.get("content-type"))
    body = r.json()
    assert body["status"] == status and body["title"] and "type" in body and "detail" in body, (what, body)
    assert "Traceback" not in r.text, what


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "name": "Alice", "roles": ["user"], "iat": now, "exp": now + 600} | overrides


def b64(part: dict[str, Any] | bytes) -> str:
    raw = part if isinstance(part, bytes) else json.dumps(part).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hmac_token(header: dict[str, Any], body: dict[str, Any], key: bytes, digest: str = "sha256") -> str:
    """Signed by hand: PyJWT will not sign with a key it finds too short or with a PEM as HMAC key."""
    signing_input = f"{b64(header)}.{b64(body)}"
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), digest).digest())}"


def forged_hs256_tokens() -> dict[str, str]:
    """name → a token the gateway (HS256 with SECRET) must refuse."""
    now = int(time.time())
    good_sig = jwt.encode(claims(), SECRET, algorithm="HS256").rsplit(".", 1)[1]
    return {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
        "alg none, signature kept": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.{good_sig}",
        "wrong secret": jwt.encode(claims(), "not-the-secret-0123456789abcdef0123", algorithm="HS256"),
        "HS512 with the secret": hmac_token({"alg": "HS512", "typ": "JWT"}, claims(), SECRET.encode(), "sha512"),
        "claims changed after signing": ".".join(
            [*jwt.encode(claims(), SECRET, algorithm="HS256").split(".")[:1], b64(claims(sub="mallory")), good_sig]
        ),
        "expired": jwt.encode(claims(exp=now - 60), SECRET, algorithm="HS256"),
        "not yet valid": jwt.encode(claims(nbf=now + 3600), SECRET, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET, algorithm="HS256"),
        "missing sub": jwt.encode({k: v for k, v in claims().items() if k != "sub"}, SECRET, algorithm="HS256"),
        "sub not a string": jwt.encode(claims(sub=12345), SECRET, algorithm="HS256"),
        "sub empty": jwt.encode(claims(sub="  "), SECRET, algorithm="HS256"),
        "sub too long": jwt.encode(claims(sub="a" * 5000), SECRET, algorithm="HS256"),
        "exp not a number": jwt.encode(claims(exp="tomorrow"), SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
        "one segment": "garbage",
        "bad base64": "%%%.%%%.%%%",
        "header not json": f"{b64(b'nope')}.{b64(claims())}.{good_sig}",
        "huge": "a" * 20_000,
    }


async def test_forged_tokens_get_401_and_change_nothing(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    before = await stack.head()
    for name, forged in forged_hs256_tokens().items():
        headers = {"Authorization": f"Bearer {forged}"}
        r = await stack.http.get("/v1/conversations", headers=headers)
        assert_problem(r, 401, name)
        assert r.headers["www-authenticate"] == "Bearer", name
        body = {"client_msg_id": uuid.uuid4().hex, "text": "forged"}
        assert_problem(await stack.http.post(f"/v1/conversations/{c}/messages", headers=headers, json=body), 401, name)
    for header in ("Basic YWxpY2U6cHc=", "Bearer", "Bearer  ", "alice", ""):
        r = await stack.http.get("/v1/conversations", headers={"Authorization": header})
        assert_problem(r, 401, repr(header))
    assert await stack.head() == before


async def test_roles_of_the_wrong_type_grant_nothing(stack: ChatStack) -> None:
    """`roles: "supervisor"` (a string, not a list) must not pass for the supervisor role."""
    for roles in ("supervisor", {"supervisor": True}, [["supervisor"]], 7):
        forged = jwt.encode(claims(roles=roles), SECRET, algorithm="HS256")
        r = await stack.http.get("/v1/support/queues", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code in (403, 404), (roles, r.status_code, r.text[:200])
        assert r.headers["content-type"] == PROBLEM


@pytest_asyncio.fixture(loop_scope="module")
async def rsa_stack(embedded_nats: str, tmp_path: Path) -> AsyncIterator[tuple[ChatStack, rsa.RSAPrivateKey, bytes]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_file = tmp_path / "jwt.pub"
    key_file.write_bytes(public)
    async with stack_on("sqlite", embedded_nats, tmp_path, jwt_public_key_file=key_file) as s:
        yield s, key, public


async def test_key_confusion_and_foreign_keys_are_refused_when_a_public_key_is_configured(
    rsa_stack: tuple[ChatStack, rsa.RSAPrivateKey, bytes],
) -> None:
    s, key, public = rsa_stack
    good = jwt.encode(claims(), key, algorithm="RS256")
    assert (await s.http.get("/v1/conversations", headers={"Authorization": f"Bearer {good}"})).status_code == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {
        "HS256 signed with the public key's PEM (key confusion)": hmac_token(
            {"alg": "HS256", "typ": "JWT"}, claims(), public
        ),
        "HS256 signed with the shared secret (also set: the key file wins)": jwt.encode(
            claims(), SECRET, algorithm="HS256"
        ),
        "RS256 signed by another key": jwt.encode(claims(), other, algorithm="RS256"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
        "expired RS256": jwt.encode(claims(exp=int(time.time()) - 60), key, algorithm="RS256"),
    }
    before = await s.head()
    for name, bad in forged.items():
        assert_problem(await s.http.get("/v1/conversations", headers={"Authorization": f"Bearer {bad}"}), 401, name)
        r = await s.http.post(
            "/v1/conversations", headers={"Authorization": f"Bearer {bad}"}, json={"kind": "group", "members": []}
        )
        assert_problem(r, 401, name)
    assert await s.head() == before


async def test_oversize_bodies_texts_and_files_get_413_or_422_and_change_nothing(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "group", ["bob"], title="Team")
    sent = await stack.send("alice", c, "short")
    before = await stack.head()
    messages = f"/v1/conversations/{c}/messages"
    too_long = "x" * (stack.settings.max_text_length + 1)
    cases: list[tuple[str, str, dict[str, Any], tuple[int, ...]]] = [
        ("POST", messages, {"client_msg_id": "big", "text": too_long}, (413, 422)),
        ("POST", messages, {"client_msg_id": "big-escapes", "text": "\u044f" * 16_001}, (413, 422)),
        ("POST", messages, {"client_msg_id": "c" * 65, "text": "hi"}, (422,)),
        ("POST", messages, {"client_msg_id": "", "text": "hi"}, (422,)),
        ("PATCH", f"{messages}/{sent['message_id']}", {"text": too_long}, (413, 422)),
        ("POST", "/v1/conversations", {"kind": "group", "members": ["u"], "title": "t" * 100_000}, (413, 422)),
        ("PATCH", f"/v1/conversations/{c}", {"description": "d" * 200_000}, (413, 422)),
        ("POST", "/v1/conversations", {"kind": "group", "members": [f"u{i}" for i in range(30_000)]}, (413, 422)),
        ("POST", messages, {"client_msg_id": "links", "text": "hi", "links": [{"kind": "k", "id": "i"}] * 10_000},
         (413, 422)),
    ]  # fmt: skip
    for method, path, body, statuses in cases:
        r = await stack.call(method, path, "alice", json=body)
        assert r.status_code in statuses, (method, path, r.status_code, r.text[:200])
        assert_problem(r, r.status_code, f"{method} {path}")

    # A JSON body past the body limit: by its Content-Length, and chunked (no length announced).
    huge = b'{"client_msg_id": "x", "text": "' + b"y" * 400_000 + b'"}'
    headers = stack.headers("alice") | {"content-type": "application/json"}
    assert_problem(await stack.http.post(messages, headers=headers, content=huge), 413, "declared length")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(huge), 16_384):
            yield huge[i : i + 16_384]

    assert_problem(await stack.http.post(messages, headers=headers, content=chunks()), 413, "chunked")

    # A file past the limit, announced and streamed.
    blob = b"\x89PNG\r\n\x1a\n" + b"\0" * (FILE_LIMIT + 1)
    r = await stack.http.post(
        "/v1/files", headers=stack.headers("alice"), files={"file": ("big.png", blob, "image/png")}
    )
    assert_problem(r, 413, "file")
    # A multipart upload without the `file` part, and one that is not multipart at all.
    r = await stack.http.post(
        "/v1/files", headers=stack.headers("alice"), files={"other": ("a.txt", b"hi", "text/plain")}
    )
    assert_problem(r, 422, "no file part")
    r = await stack.http.post(
        "/v1/files", headers=stack.headers("alice") | {"content-type": "text/plain"}, content=b"x"
    )
    assert r.status_code in (400, 415, 422) and r.headers["content-type"] == PROBLEM, r.text[:200]

    # Huge query strings and path segments.
    r = await stack.call("GET", "/v1/search", "alice", params={"q": "q" * 60_000})
    assert r.status_code in (200, 413, 414, 422), r.status_code
    r = await stack.call("GET", f"/v1/conversations/{'z' * 10_000}", "alice")
    assert r.status_code in (404, 422) and r.headers["content-type"] == PROBLEM, r.status_code

    assert await stack.head() == before
    listed = (await stack.call("GET", messages, "bob")).json()
    assert [m["text"] for m in listed] == ["short"]


async def test_a_malformed_multipart_upload_gets_422_not_500(stack: ChatStack) -> None:
    """Found by schemathesis (test_fuzz_openapi): a body that breaks the multipart grammar raised
    python-multipart's parse error out of the route (500)."""
    await stack.call("GET", "/v1/conversations", "alice")  # the first call records alice in the directory
    before = await stack.head()
    headers = stack.headers("alice") | {"content-type": "multipart/form-data; boundary=9cc651cd2c8d"}
    for body in (b"--9cc651cd2c8d\r\nFalse--9cc651cd2c8d--\r\n", b"--9cc651cd2c8dXX\r\n", b"\x00" * 100):
        r = await stack.http.post("/v1/files", headers=headers, content=body)
        assert_problem(r, 422, repr(body))
    assert await stack.head() == before


async def test_nul_characters_get_a_4xx_not_a_500(stack: ChatStack) -> None:
    """Found by schemathesis (test_fuzz_openapi) on PostgreSQL, whose text and jsonb refuse U+0000:
    `GET /v1/tickets?assignee=%00` and message fields holding NUL answered 500."""
    c = await stack.conversation("alice", "group", ["bob"], title="Team")
    messages = f"/v1/conversations/{c}/messages"
    agent = {"Authorization": f"Bearer {token('agent-1', roles=['agent'], segment='b2b', lines=[1])}"}
    await stack.http.get("/v1/tickets", headers=agent)  # the first call records the agent in the directory
    before = await stack.head()
    for params in ({"assignee": "\x00"}, {"status": "open\x00"}, {"line": "1", "segment": "b2b\x00"}):
        r = await stack.http.get("/v1/tickets", headers=agent, params=params)
        assert r.status_code in (200, 422), (params, r.status_code, r.text[:200])
    for params in ({"q": "a\x00b"}, {"q": "x", "conversation_id": "\x00"}):
        r = await stack.call("GET", "/v1/search", "alice", params=params)
        assert r.status_code in (200, 404, 422), (params, r.status_code, r.text[:200])
    r = await stack.call("GET", "/v1/users", "alice", params={"q": "\x00"})
    assert r.status_code in (200, 422), r.text[:200]
    for body in (
        {"client_msg_id": "nul-text", "text": "a\x00b"},
        {"client_msg_id": "nul\x00id", "text": "hi"},
        {"client_msg_id": "nul-attach", "text": "hi", "attachments": ["\x00"]},
        {"client_msg_id": "nul-reply", "text": "hi", "reply_to": "\x00"},
        {"client_msg_id": "nul-link", "text": "hi", "links": [{"kind": "k\x00", "id": "\x00", "title": "\x00"}]},
    ):
        r = await stack.call("POST", messages, "alice", json=body)
        assert r.status_code in (404, 422), (body, r.status_code, r.text[:200])
        assert r.headers["content-type"] == PROBLEM
    for body in ({"title": "a\x00"}, {"description": "\x00"}):
        r = await stack.call("PATCH", f"/v1/conversations/{c}", "alice", json=body)
        assert r.status_code == 422, (body, r.status_code, r.text[:200])
    r = await stack.call("POST", "/v1/conversations", "alice", json={"kind": "group", "members": ["\x00"]})
    assert r.status_code == 422, r.text[:200]
    # Escaped text that only looks like the escape is a message like any other.
    r = await stack.call("POST", messages, "alice", json={"client_msg_id": "code", "text": 'printf("\\u0000")'})
    assert r.status_code == 201, r.text[:200]
    assert await stack.head() == before + 1


async def test_seq_bounds_past_64_bits_get_422_not_500(stack: ChatStack) -> None:
    """Found by schemathesis (test_fuzz_openapi) on PostgreSQL: `after_seq` past the column's integer answered 500."""
    c = await stack.conversation("alice", "direct", ["bob"])
    for params in ({"after_seq": 2**63}, {"after_seq": 10**30}, {"before_seq": 2**64, "limit": 5}):
        r = await stack.call("GET", f"/v1/conversations/{c}/messages", "alice", params=params)
        assert_problem(r, 422, str(params))
    ok = await stack.call("GET", f"/v1/conversations/{c}/messages", "alice", params={"after_seq": 2**31 - 1})
    assert ok.status_code == 200 and ok.json() == []


async def test_watermarks_past_32_bits_get_a_4xx_not_a_500(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    await stack.send("bob", c, "hi")
    before = await stack.head()
    for receipt in ("delivered", "read"):
        for seq in (2**31, 2**63, 10**30):
            r = await stack.call("POST", f"/v1/conversations/{c}/{receipt}", "alice", json={"up_to_seq": seq})
            assert r.status_code in (409, 422), (receipt, seq, r.status_code, r.text[:200])
            assert r.headers["content-type"] == PROBLEM
    assert await stack.head() == before
