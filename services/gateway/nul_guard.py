"""Refuse U+0000 (NUL) anywhere in a request's path, query or JSON body with 422, before any route.

PostgreSQL's text and jsonb cannot hold NUL: a NUL reaching a query or an append failed there with
500 (found by schemathesis, tests/fuzz/test_fuzz_openapi.py). No user id, text or title needs one, so
it is refused at the door, on SQLite too (the same answer on both databases). A JSON body carries NUL
only as the escape `\\u0000` (a raw NUL byte is not JSON); the scan skips an escaped backslash before
it (`\\\\u0000` is the six characters `\\u0000` as text, which is fine). File uploads are bytes and
are not scanned.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import Invalid
from services.gateway.limits import UPLOAD_PATH
from services.gateway.problems import gateway_error_handler

# `\u0000` preceded by an even number of backslashes (zero included): an escape, not escaped text.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await self._refuse(scope, receive, send, "path")
            return
        if b"%00" in scope.get("query_string", b""):
            await self._refuse(scope, receive, send, "query")
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if scope["path"] == UPLOAD_PATH or b"json" not in content_type:
            await self.app(scope, receive, send)
            return
        body, messages = b"", []
        while True:  # bounded: BodyLimit, outside this middleware, cuts a body past its limit
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if b"\\u0000" in body and _JSON_NUL.search(body):  # the plain search first: the regex is ~10x slower
            await self._refuse(scope, receive, send, "body")
            return
        replay = iter(messages)

        async def replaying() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replaying, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, where: str) -> None:
        from starlette.requests import Request

        error = Invalid(where, "must not contain NUL characters (U+0000)")
        response = await gateway_error_handler(Request(scope), error)
        await response(scope, receive, send)
