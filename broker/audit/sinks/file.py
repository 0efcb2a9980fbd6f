"""JSON lines appended to a file, rotated by size (path → path.1 → … → path.N, the oldest dropped).

A batch is one write followed by fsync; only then does the cursor move past it. A crash between the write
and the cursor update repeats the batch (at least once). All file work runs on one thread of its own, so a
slow disk never stalls the event loop. Files are created 0600: the trail names every caller.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broker.audit.chain import ChainedEvent

from .base import FailureKind, SinkError
from .formats import EventFormat


class FileSink:
    def __init__(
        self, name: str, path: Path, fmt: EventFormat, *, max_bytes: int, backups: int, fsync: bool = True
    ) -> None:
        self.name = name
        self.path = path
        self._format = fmt
        self._max_bytes = max_bytes
        self._backups = backups
        self._fsync = fsync
        self._fd: int | None = None
        self._size = 0
        self._acknowledged = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"audit-sink-{name}")

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            self._fd = fd
            self._size = os.fstat(fd).st_size
            if self._size and os.pread(fd, 1, self._size - 1) != b"\n":
                # a write cut short (disk full, crash) left half a line: end it, so the batch written again
                # starts on a line of its own and only the torn fragment fails to parse
                self._flush(fd, [b"\n"])
        return self._fd

    def _rotate(self) -> None:
        self._close()
        if self._backups == 0:
            os.truncate(self.path, 0)
            return
        for index in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def _write(self, lines: list[bytes]) -> None:
        fd = self._open()
        chunk: list[bytes] = []
        size = self._size
        for line in lines:
            # rotate before the file would outgrow max_bytes (a file holds at least one line)
            if size and size + len(line) > self._max_bytes:
                self._flush(fd, chunk)
                self._rotate()
                fd = self._open()
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        self._flush(fd, chunk)

    def _flush(self, fd: int, chunk: list[bytes]) -> None:
        view = memoryview(b"".join(chunk))
        while view:
            view = view[os.write(fd, view) :]
        if self._fsync and chunk:
            os.fsync(fd)
        self._size += sum(len(line) for line in chunk)

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def send(self, events: Sequence[ChainedEvent]) -> int:
        lines = [self._format.encode(e) + b"\n" for e in events]
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, lines)
        except OSError as err:
            raise SinkError(FailureKind.WRITE, f"{self.path}: {err.strerror or err}") from None
        self._acknowledged = events[-1].seq if events else self._acknowledged
        return self._acknowledged

    async def acknowledged(self) -> int:
        return self._acknowledged

    async def reset(self) -> None:
        # the batch is written again whole after this: a reader may see an event twice (at least once)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    async def close(self) -> None:
        await self.reset()
        self._executor.shutdown(wait=False)
