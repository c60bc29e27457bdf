"""A minimal HTTP/1.1 client for load that must not measure itself.

httpx costs a load generator several hundred µs of CPU per request; on the 2-core machine the
realtime bench's client took half a core at 240 requests/s and could not offer 500/s (docs/realtime.md).
This client keeps `size` keep-alive connections, writes a request as one prebuilt bytes object and
reads the status line, the headers it needs (Content-Length) and the body: tens of µs per request.
It speaks only what the gateway answers (Content-Length bodies, no chunked encoding, no redirects);
anything else fails loudly as LeanHttpError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class LeanHttpError(Exception):
    pass


# What a send that got no answer raises (OSError includes TimeoutError).
SEND_ERRORS = (OSError, asyncio.IncompleteReadError, LeanHttpError)


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise LeanHttpError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        length = None
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                raise LeanHttpError("chunked answers are not supported")
        body = await self.reader.readexactly(length) if length else b""
        return int(parts[1]), body

    def close(self) -> None:
        self.writer.close()


class LeanPool:
    """`size` keep-alive connections to one host; `send` waits for a free one."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._host_header = parts.netloc
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)  # a slot; connected on first use

    def request_bytes(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """The whole request as bytes, to hand to `send` (also again, for a retry)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, request: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
        """(status, body). A connection that failed or timed out is dropped and its slot reconnects
        next time. Raises one of SEND_ERRORS."""
        conn = await self._idle.get()
        try:
            async with asyncio.timeout(timeout):
                if conn is None:
                    conn = _Connection(*await asyncio.open_connection(self._host, self._port))
                result = await conn.exchange(request)
        except BaseException:
            if conn is not None:
                conn.close()
            self._idle.put_nowait(None)
            raise
        self._idle.put_nowait(conn)
        return result

    def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.close()


@contextlib.asynccontextmanager
async def lean_pool(url: str, size: int) -> AsyncIterator[LeanPool]:
    pool = LeanPool(url, size)
    try:
        yield pool
    finally:
        pool.close()
