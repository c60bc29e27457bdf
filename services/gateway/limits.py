"""The size limit of request bodies other than file uploads (those stream to disk with their own
limit): a JSON body beyond JSON_BODY_MAX is refused with 413 before it is parsed, by its declared
Content-Length or, for a chunked body, as soon as the bytes received pass the limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import TooLarge
from services.gateway.problems import gateway_error_handler

# The longest message (16,000 characters) as JSON escapes (\uXXXX, 6 bytes each) is 96 KB; the rest
# of a message body (links, attachments) is a few KB. 256 KiB leaves room and bounds parsing.
JSON_BODY_MAX = 256 * 1024
UPLOAD_PATH = "/v1/files"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = JSON_BODY_MAX) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send, int(declared))
            return
        received, exceeded = 0, False

        async def counting() -> Message:
            # Past the limit the app is told the body ended: it answers some error, which `replying`
            # swaps for the 413 (raising here would be turned into a 400 by FastAPI's body reader).
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                exceeded = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replying(message: Message) -> None:
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, receive, send, received)

        await self.app(scope, counting, replying)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        from starlette.requests import Request

        response = await gateway_error_handler(Request(scope), TooLarge("request body", self.limit, size))
        await response(scope, receive, send)
