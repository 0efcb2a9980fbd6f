"""The shared backend for several replicas: PostgreSQL via an asyncpg pool.

Each replica's group-commit writer holds one pooled connection per batch; reads use the rest of the pool.
Migrations run under a transaction-scoped advisory lock, so replicas that start together queue behind the
first one and then find the schema current.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from broker.domain.errors import audit_unavailable

from .backend import Row, Tx
from .migrations import SchemaTooNew, migrate
from .records import utc_now

_CASTS = {"text": "::text", "int": "::integer", "time": "::timestamptz"}


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders → $1, $2, ... (our SQL has no `?` inside literals)."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, start=1))


def advisory_key(schema: str) -> int:
    """A stable signed 64-bit lock id per schema: replicas of one broker serialise, other schemas do not."""
    digest = hashlib.sha256(f"kube-token-broker/audit/{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._conn.execute(numbered(sql), *args)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(await self._conn.fetch(numbered(sql), *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(numbered(sql), rows)


class PostgresBackend:
    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    def param(self, kind: str) -> str:
        return "?" + _CASTS[kind]

    def encode_time(self, moment: datetime) -> datetime:
        return moment

    def decode_time(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout * 2):
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings={
                        "search_path": self.schema,
                        "application_name": f"kube-token-broker-audit/{self.schema}",
                    },
                )
            async with self._connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(self.schema))
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await migrate(_PgTx(conn), self, utc_now())
        except SchemaTooNew:
            await self.close()
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
            await self.close()
            raise audit_unavailable(
                f"cannot open PostgreSQL audit store: {type(err).__name__}: {err}",
            ) from err

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise asyncpg.InterfaceError("audit store is closed")
        async with pool.acquire(timeout=self._connect_timeout) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._connection() as conn, conn.transaction():
            yield _PgTx(conn)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self._connection() as conn:
            return list(await conn.fetch(numbered(sql), *args))
