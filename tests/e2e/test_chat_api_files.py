"""Files through HTTP: upload (type sniffed from the content, deduplicated, size-limited), download
with the original name, access for the uploader and the members of conversations that attach it."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import chat_support
import pytest
from chat_support import ChatStack

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(200))
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


async def upload(
    stack: ChatStack, user: str, name: str, content: bytes, mime: str = "application/octet-stream"
) -> dict:  # type: ignore[type-arg]
    r = await stack.http.post("/v1/files", headers=stack.headers(user), files={"file": (name, content, mime)})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_upload_sniffs_the_type_and_downloads_with_the_original_name(stack: ChatStack) -> None:
    meta = await upload(stack, "alice", "Договор №5.pdf", PDF, "image/png")  # the client's type is ignored
    assert meta["mime"] == "application/pdf" and meta["size"] == len(PDF)
    assert meta["sha256"] == hashlib.sha256(PDF).hexdigest()
    again = await upload(stack, "alice", "Договор №5.pdf", PDF)
    assert again["file_id"] == meta["file_id"]
    stored = stack.settings.resolved_files_dir / meta["sha256"][:2] / meta["sha256"][2:4] / meta["sha256"]
    assert stored.read_bytes() == PDF
    r = await stack.call("GET", f"/v1/files/{meta['file_id']}", "alice")
    assert r.status_code == 200 and r.content == PDF and r.headers["content-type"] == "application/pdf"
    assert f"filename*=UTF-8''{quote('Договор №5.pdf', safe='')}" in r.headers["content-disposition"]
    image = await upload(stack, "alice", "photo.bin", PNG)
    assert image["mime"] == "image/png"


async def test_unknown_content_is_refused_with_415(stack: ChatStack) -> None:
    await stack.call("GET", "/v1/unread", "alice")  # alice is in the directory before the head is taken
    head = await stack.head()
    r = await stack.http.post(
        "/v1/files",
        headers=stack.headers("alice"),
        files={"file": ("x.exe", b"MZ\x90\x00\x03\x00\x00\x00", "text/plain")},
    )
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"
    missing = await stack.http.post("/v1/files", headers=stack.headers("alice"), files={"other": ("a.txt", b"hi")})
    assert missing.status_code == 422
    assert await stack.head() == head


async def test_a_file_is_visible_to_members_once_a_message_attaches_it(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    meta = await upload(stack, "alice", "notes.csv", b"a,b\n1,2\n")
    assert meta["mime"] == "text/csv"
    path = f"/v1/files/{meta['file_id']}"
    assert (await stack.call("GET", path, "bob")).status_code == 404  # not shared yet
    bad = await stack.call(
        "POST", f"/v1/conversations/{c}/messages", "bob", json={"client_msg_id": "b1", "attachments": [meta["file_id"]]}
    )
    assert bad.status_code == 422  # someone else's file, never shared with bob
    await stack.send("alice", c, "the figures", attachments=[meta["file_id"]])
    page = (await stack.call("GET", f"/v1/conversations/{c}/messages", "alice")).json()
    assert page[-1]["attachments"][0]["name"] == "notes.csv"
    for _ in range(200):
        if (r := await stack.call("GET", path, "bob")).status_code == 200:
            break
    assert r.status_code == 200 and r.content == b"a,b\n1,2\n"
    assert (await stack.call("GET", path, "carol")).status_code == 404
