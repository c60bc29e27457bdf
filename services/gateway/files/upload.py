"""Reading a `multipart/form-data` upload as it streams in: the part named `file` goes to a
temporary file of the FileStore, hashed on the way, and reading stops as soon as it passes the
size limit (TooLarge, 413) — a 10 GB upload costs at most `limit` bytes of disk and no memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from services.gateway.errors import Invalid, TooLarge
from services.gateway.files.sniff import SNIFF_BYTES
from services.gateway.files.store import FileStore


@dataclass(slots=True)
class Upload:
    """The file part of an upload, stored in `temp` until committed."""

    name: str
    temp: Path
    size: int
    sha256: str
    head: bytes


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytes = b""
    header: bytes = b""
    value: bytes = b""


class _Reader:
    """python-multipart's callbacks, gathering the file part's chunks to write between reads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.part = _Part()
        self.name: str | None = None
        self.in_file = False
        self.done_file = False
        self.pending: list[bytes] = []
        self.size = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.part.header.lower()] = self.part.value
        self.part.header, self.part.value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"file" and not self.done_file:
            self.in_file = True
            self.name = options.get(b"filename", b"").decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.size += end - start
            if self.size > self.limit:
                raise TooLarge("file", self.limit, self.size)
            self.pending.append(data[start:end])

    def on_part_end(self) -> None:
        if self.in_file:
            self.in_file, self.done_file = False, True
        self.part = _Part()


async def receive_upload(request: Request, store: FileStore, limit: int) -> Upload:
    """The `file` part of the request, in a temporary file; Invalid or TooLarge otherwise."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Invalid("file", "send the file as multipart/form-data in a part named `file`")
    reader = _Reader(limit)
    callbacks = {
        name: getattr(reader, name)
        for name in (
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # its TypedDict of callbacks
    sink, temp = await store.open_temp()
    try:
        try:
            sha, head = await _stream(request, parser, reader, sink)
        except MultipartParseError as e:  # a broken body is the client's: 422, not 500 (tests/fuzz)
            raise Invalid("file", f"the multipart body is malformed: {e}") from None
    except BaseException:
        sink.close()
        await store.discard(temp)
        raise
    sink.close()
    if not reader.done_file or reader.name is None:
        await store.discard(temp)
        raise Invalid("file", "the form has no complete part named `file`")
    name = reader.name.replace("\x00", "").strip().replace("/", "_").replace("\\", "_")[:255] or "file"
    return Upload(name, temp, reader.size, sha, head)


async def _stream(request: Request, parser: MultipartParser, reader: _Reader, sink: IO[bytes]) -> tuple[str, bytes]:
    sha = hashlib.sha256()
    head = b""
    async for chunk in request.stream():
        parser.write(chunk)
        for piece in reader.pending:
            sha.update(piece)
            if len(head) < SNIFF_BYTES:
                head += piece[: SNIFF_BYTES - len(head)]
            sink.write(piece)  # a local disk write of one chunk (~64 KB): shorter than a thread hop
        reader.pending.clear()
    parser.finalize()
    return sha.hexdigest(), head
