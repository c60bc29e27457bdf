"""The content-addressed file store: a file's bytes live at `<root>/ab/cd/<sha256>`.

An upload is written to a temporary file under `<root>/tmp` (same file system, so the final
`os.replace` is an atomic rename: a reader never sees half a file), hashed while it streams, and
then renamed to its address. The same content uploaded twice is stored once (the second temporary
file is deleted). File system calls run in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import IO


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    async def open_temp(self) -> tuple[IO[bytes], Path]:
        def create() -> tuple[IO[bytes], Path]:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
            return os.fdopen(fd, "wb"), Path(name)

        return await asyncio.to_thread(create)

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def commit(self, temp: Path, sha256: str) -> Path:
        """Move the finished temporary file to its address (or drop it when the content is known)."""

        def move() -> Path:
            target = self.path_of(sha256)
            if target.exists():
                temp.unlink(missing_ok=True)
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            return target

        return await asyncio.to_thread(move)

    async def discard(self, temp: Path) -> None:
        await asyncio.to_thread(temp.unlink, True)

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()
