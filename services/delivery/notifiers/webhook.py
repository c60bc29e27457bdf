"""The HTTP webhook notifier: POST one JSON batch per user to the host system, signed.

Body: `{"type": "offline_messages", "user_id": ..., "notifications": [{conversation_id, message_id,
seq, sender_id, text, sent_at}, ...]}`. Header `X-Ledgerline-Signature: sha256=<hex>`: HMAC-SHA256 of
the exact body bytes with the shared secret, so the host can check who sent it. Any answer other than
2xx, or no answer within TIMEOUT, is a failure (the dispatcher retries).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict

import httpx

from services.delivery.notifiers.port import Notification

SIGNATURE_HEADER = "X-Ledgerline-Signature"
# The host's endpoint should only enqueue; a slow one is retried rather than waited on for long.
TIMEOUT = 5.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(self, url: str, secret: str, *, timeout: float = TIMEOUT) -> None:
        self._url = url
        self._secret = secret
        self._http = httpx.AsyncClient(timeout=timeout)

    async def notify(self, user_id: str, batch: Sequence[Notification]) -> None:
        doc = {"type": "offline_messages", "user_id": user_id, "notifications": [asdict(n) for n in batch]}
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        response = await self._http.post(self._url, content=body, headers=headers)
        response.raise_for_status()

    async def close(self) -> None:
        await self._http.aclose()
