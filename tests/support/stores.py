"""Real audit stores for tests: SQLite in a temporary directory (PostgreSQL is the audit suite's own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from broker.app.stores import make_sql_store
from broker.audit import SqlAuditStore
from broker.settings import AuditSettings


def sqlite_settings(directory: Path, **overrides: Any) -> AuditSettings:
    """Settings of a SQLite store in `directory` that commits at once (no group-commit linger to wait out)."""
    return AuditSettings(
        **{"sqlite_path": directory / "audit.sqlite3", "group_commit_max_delay_ms": 1.0, **overrides}
    )


@asynccontextmanager
async def sqlite_store(directory: Path, **overrides: Any) -> AsyncIterator[SqlAuditStore]:
    store = make_sql_store(sqlite_settings(directory, **overrides))
    await store.open()
    try:
        yield store
    finally:
        await store.close()
