"""Fixtures for the janitor and leader election: clients of the simulator, a real SQLite audit store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.app.stores import make_sql_store
from broker.audit import SqlAuditStore
from broker.settings import AuditSettings


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlAuditStore]:
    """A real SQLite audit store in tmp_path."""
    settings = AuditSettings(
        sqlite_path=tmp_path / "audit.sqlite3", group_commit_max_delay_ms=1.0, retention_days=1
    )
    audit = make_sql_store(settings)
    await audit.open()
    yield audit
    await audit.close()
