"""Presence across two gateways, and the offline webhook (signed, batched, retried) through the
realtime stack."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import chat_support
import pytest
from realtime_support import realtime_stack

from services.delivery.notifiers.dispatch import DispatchPolicy
from services.delivery.notifiers.webhook import SIGNATURE_HEADER, WebhookNotifier

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats
HOOK_SECRET = "hook-secret-for-tests"


async def test_presence_goes_online_and_offline_for_contacts_only(embedded_nats: str, tmp_path: Path) -> None:
    async with realtime_stack(tmp_path, embedded_nats) as rt:
        await rt.conversation("olga", "direct", ["pete"])
        async with rt.connect(0, "olga") as olga:
            async with rt.connect(1, "pete"):
                assert await olga.next("presence", user_id="pete") == {
                    "type": "presence",
                    "user_id": "pete",
                    "status": "online",
                }
                async with rt.connect(1, "quinn"):  # shares no conversation with olga
                    assert await olga.quiet("presence", 0.5) == []
            assert (await olga.next("presence", user_id="pete"))["status"] == "offline"


class _Hook:
    def __init__(self, fail_first: int) -> None:
        self.calls: list[tuple[dict[str, Any], bool]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()


@pytest.fixture
def hook() -> Iterator[tuple[str, _Hook]]:
    state = _Hook(fail_first=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            with state.lock:
                state.calls.append((json.loads(body), hmac.compare_digest(expected, self.headers[SIGNATURE_HEADER])))
                failing = len(state.calls) <= state.fail_first
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_offline_user_gets_one_signed_batch_retried_without_stopping_delivery(
    embedded_nats: str, tmp_path: Path, hook: tuple[str, _Hook]
) -> None:
    url, state = hook
    policy = DispatchPolicy(window=0.5, attempts=4, retry_base=0.1)
    async with realtime_stack(tmp_path, embedded_nats, notifier=WebhookNotifier(url, HOOK_SECRET), policy=policy) as rt:
        c = await rt.conversation("rita", "group", ["sam", "tess"])
        async with rt.connect(0, "sam") as sam:  # sam is online: no notification for him
            for n in range(3):
                await rt.send("rita", c, f"news {n}")
            for n in range(3):
                assert (await sam.next("message", conversation_id=c))["seq"] == n + 1
            async with asyncio.timeout(10):
                while len(state.calls) < 2:  # noqa: ASYNC110  # the hook runs in a thread: poll
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
    assert len(state.calls) == 2  # the failed try and its retry: one batch
    for body, signed in state.calls:
        assert signed and body["user_id"] == "tess" and body["type"] == "offline_messages"
        assert [n["seq"] for n in body["notifications"]] == [1, 2, 3]
