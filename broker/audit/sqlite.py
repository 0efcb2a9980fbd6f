"""The embedded backend: one SQLite file in WAL mode, via aiosqlite (a thread per connection).

Durability: `synchronous=FULL`. In WAL mode NORMAL survives a process crash but may lose the last commits on
power loss or a kernel crash — and the write-ahead record is exactly what start-up repair needs after a node
dies mid-issuance. FULL fsyncs the WAL on every commit; group commit shares that fsync among concurrent
issuances, so it costs one fsync per batch, not per token.

One connection writes (only the group-commit writer and start-up migration use it); a second, query-only
connection reads, and WAL lets it read while the writer commits.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from broker.domain.errors import audit_unavailable

from .backend import Row, Tx
from .migrations import SchemaTooNew, migrate
from .paging import from_micros, to_micros
from .records import utc_now


class _SqliteTx:
    # execute_fetchall: one hop to the connection's thread per statement (a cursor would cost three)
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._conn.execute_fetchall(sql, tuple(args))

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, tuple(args)))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])


def _create_private(path: Path) -> None:
    # 0600 before SQLite opens it: the trail names every caller; SQLite gives -wal/-shm the same mode
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


async def _rollback(conn: aiosqlite.Connection) -> None:
    # nothing may be open any more (a failed COMMIT or statement can end the transaction itself)
    with suppress(sqlite3.Error):
        await conn.execute("ROLLBACK")


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000, connect_timeout: float = 5.0) -> None:
        self.path = path
        self._busy_ms = busy_timeout_ms
        self._connect_timeout = connect_timeout
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    def param(self, kind: str) -> str:
        return "?"

    def encode_time(self, moment: datetime) -> int:
        return to_micros(moment)

    def decode_time(self, value: Any) -> datetime:
        return from_micros(int(value))

    async def _open_connection(self, *, query_only: bool) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=self._busy_ms / 1000)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            # 64 MiB of page cache per connection (the default is 2 MiB): index pages of a million-record
            # trail stay in memory, which is what keeps inserts and keyset queries fast at that size
            await conn.execute("PRAGMA cache_size = -65536")
            if query_only:
                await conn.execute("PRAGMA query_only = ON")
            else:
                mode = await self._switch_to_wal(conn)
                if mode != "wal":
                    raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode!r})")
                await conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _switch_to_wal(self, conn: aiosqlite.Connection) -> str:
        # Changing the journal mode needs an exclusive lock and SQLite answers "database is locked" at once,
        # without its busy handler, while another process does the same: retry within the busy timeout.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_ms / 1000
        while True:
            try:
                async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                    row = await cur.fetchone()
                return "" if row is None else str(row[0]).lower()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.02)

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                if not self.path.parent.is_dir():
                    raise FileNotFoundError(f"directory {self.path.parent} does not exist")
                if not self.path.exists():
                    await asyncio.to_thread(_create_private, self.path)
                self._writer = await self._open_connection(query_only=False)
                async with self.transaction() as tx:
                    await migrate(tx, self, utc_now())
                self._reader = await self._open_connection(query_only=True)
        except SchemaTooNew:
            await self.close()
            raise
        except (OSError, sqlite3.Error, TimeoutError) as err:
            await self.close()
            raise audit_unavailable(f"cannot open SQLite audit store {self.path}: {err}") from err

    async def close(self) -> None:
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        if writer is not None:
            # keep the planner's statistics fresh for the next start; analysis_limit bounds the work on a
            # big file to a sample (the SQLite documentation's advice for PRAGMA optimize)
            with suppress(sqlite3.Error):
                await writer.execute("PRAGMA analysis_limit = 1000")
                await writer.execute("PRAGMA optimize")
        for conn in (reader, writer):
            if conn is not None:
                with suppress(sqlite3.Error):
                    await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        conn = self._writer
        if conn is None:
            raise sqlite3.OperationalError("audit store is closed")
        # IMMEDIATE: take the write lock up front, so a busy file fails here and not half-way through
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(conn)
            await conn.execute("COMMIT")
        except BaseException:
            # shielded: a timed-out batch must still release the write lock for the next one
            await asyncio.shield(_rollback(conn))
            raise

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        conn = self._reader
        if conn is None:
            raise sqlite3.OperationalError("audit store is closed")
        return list(await conn.execute_fetchall(sql, tuple(args)))
