"""Versioned schema migrations at start-up, on both backends."""

from __future__ import annotations

import asyncio

import pytest
from audit_support import T0, SettingsFactory, issue

from broker.app.stores import make_sql_store
from broker.audit import SCHEMA_VERSION, SchemaTooNew, SqlAuditStore
from broker.audit.backend import Row


async def versions(store: SqlAuditStore) -> list[Row]:
    return await store.backend.fetch("SELECT version, description FROM schema_version ORDER BY version")


async def test_from_empty_then_rerun(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with make_sql_store(settings, clock=lambda: T0) as first:
        rows = await versions(first)
        assert [r["version"] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
        kept = await issue(first)
    # a restart finds the schema current: nothing re-applied, nothing lost
    async with make_sql_store(settings, clock=lambda: T0) as again:
        assert [r["version"] for r in await versions(again)] == list(range(1, SCHEMA_VERSION + 1))
        stored = await again.get_issuance(kept.id)
        assert stored is not None and stored.event == "issued"


async def test_replicas_starting_at_once_migrate_once(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    stores = [make_sql_store(settings, clock=lambda: T0) for _ in range(4)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            assert [r["version"] for r in await versions(s)] == list(range(1, SCHEMA_VERSION + 1))
        # all of them write to the same tables
        await asyncio.gather(*(issue(s, caller=f"replica-{i}") for i, s in enumerate(stores)))
        assert len(await stores[0].backend.fetch("SELECT id FROM issuances")) == 4
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_newer_schema_is_refused(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with make_sql_store(settings) as store, store.backend.transaction() as tx:
        await tx.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (SCHEMA_VERSION + 1, "from the future", store.backend.encode_time(T0)),
        )
    with pytest.raises(SchemaTooNew):
        await make_sql_store(settings).open()
