"""A small TCP proxy for fault injection: a service talks to a real server (PostgreSQL, NATS…)
through it, and a test cuts the link as a network failure or a server crash would, then restores it.

`cut()` closes every open connection and stops listening, so new connections are refused (ECONNREFUSED,
as a stopped server); `freeze()` keeps every connection open but passes no byte either way, and
accepts new ones without connecting them (a network partition: nobody is told anything);
`restore()` undoes either: it listens again on the same port and lets bytes flow. The servers themselves are never
touched: other runs share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = _free_port(host)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        return self

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def cut_off(self) -> bool:
        return self._server is None

    async def cut(self) -> None:
        """Refuse new connections and drop every open one (both sides see the connection end)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            _abort(writer)
        for task in list(self._links):
            task.cancel()
        if self._links:
            await asyncio.gather(*self._links, return_exceptions=True)

    def freeze(self) -> None:
        """Silence: connections stay open, no data passes, new connections hang after the handshake."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Accept connections again, on the same port, and let data flow."""
        self._flowing.set()
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        # The work runs in a task of our own: cut() may cancel it, whereas cancelling asyncio's
        # connection handler task makes asyncio log the CancelledError as an error.
        self.accepted += 1
        link = asyncio.create_task(self._link(client_reader, client_writer))
        self._links.add(link)
        await asyncio.gather(link, return_exceptions=True)
        self._links.discard(link)

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        server_writer: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()
            try:
                server_reader, server_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return  # the target is down: the client sees its connection closed
            self._writers.add(server_writer)
            await asyncio.gather(
                _pipe(client_reader, server_writer, self._flowing),
                _pipe(server_reader, client_writer, self._flowing),
                return_exceptions=True,
            )
        finally:
            for writer in (client_writer, server_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    _abort(writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    try:
        while data := await reader.read(CHUNK):
            await flowing.wait()  # frozen: hold the bytes until restore()
            writer.write(data)
            await writer.drain()
    finally:
        # One side ended: end the other, so that no half-open connection lingers.
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
