"""What the SQL store needs from a database: transactions for the writer, reads, and a time encoding.

SQL is written once with `?` placeholders; a backend translates it (PostgreSQL wants $1, $2, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol


class Row(Protocol):
    """sqlite3.Row and asyncpg.Record both read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


class Tx(Protocol):
    """One open write transaction."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run one statement (use RETURNING and `fetch` to learn which rows it touched)."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Backend(Protocol):
    name: str

    def param(self, kind: str) -> str:
        """A placeholder typed as "text", "int" or "time" where the SQL gives no column to infer it from
        (the rows of a VALUES list): PostgreSQL needs the cast, SQLite does not."""
        ...

    def encode_time(self, moment: datetime) -> Any: ...

    def decode_time(self, value: Any) -> datetime: ...

    async def connect(self) -> None:
        """Connect and bring the schema to the latest migration; BrokerError 503 when it cannot."""
        ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """A read outside any write transaction (it sees every committed write)."""
        ...
